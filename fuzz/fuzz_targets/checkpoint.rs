//! The checkpoint decoder on arbitrary bytes: whole files (header, version, checksum) and, past the checksum,
//! bodies of either readable format version. A checkpoint decodes into a state whose parts agree, or is
//! refused as damaged; never a panic or an index out of range later.
#![no_main]

use engine::checkpoint::{decode, decode_body, FORMAT_VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let _ = decode(input);
    let Some((&pick, body)) = input.split_first() else { return };
    let version = if pick & 1 == 0 { FORMAT_VERSION } else { 5 };
    if let Ok(c) = decode_body(version, body) {
        assert_eq!(c.state.ids.len(), c.state.users.len());
    }
});
