//! The checkpoint decoder on arbitrary bytes: whole files (header, version, checksum) and, past the checksum,
//! bodies of each readable format version. A checkpoint decodes into a state whose parts agree, or is
//! refused as damaged; never a panic or an index out of range later: a decoded state takes purchases of its
//! own customers and articles, and a day's list rebuild, as a running engine would.
#![no_main]

use engine::checkpoint::{decode, decode_body, FORMAT_VERSION};
use engine::events::TxEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let _ = decode(input);
    let Some((&pick, body)) = input.split_first() else { return };
    let version = match pick % 3 {
        0 => 6,
        1 => 5,
        _ => FORMAT_VERSION,
    };
    let Ok(mut c) = decode_body(version, body) else { return };
    let s = &mut c.state;
    assert_eq!(s.ids.len(), s.users.len());
    // A few purchases: each customer (up to 8) buys a known article, on the state's day and the next.
    let (customers, articles) = (s.users.len().min(8), s.catalog.len());
    for i in 0..customers {
        let customer = *s.ids.key(i as u32);
        let article_id = if articles > 0 { s.catalog.rows[(i * 7919) % articles].article_id } else { 108775015 };
        let day = s.clock.saturating_add((i % 2) as u16);
        let t = TxEvent { day, customer, article_id, price: 0.02, channel: 2, seq: i as u64 };
        assert_eq!(s.apply_tx(&t), i as u32);
    }
    s.advance_to(s.clock.saturating_add(1));
});
