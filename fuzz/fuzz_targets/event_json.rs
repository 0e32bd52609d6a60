//! The wire decoders (transactions, articles, customers) on arbitrary message bytes. A message decodes to an
//! event or a typed error; a decoded event encodes again and decodes to itself.
#![no_main]

use engine::events::{article_to_json, customer_to_json, decode_article, decode_customer, decode_transaction};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|payload: &[u8]| {
    if let Ok(tx) = decode_transaction(payload) {
        let again = tx.to_json().expect("a decoded purchase encodes");
        assert_eq!(decode_transaction(&again), Ok(tx));
    }
    if let Ok(a) = decode_article(payload) {
        let again = article_to_json(&a).expect("a decoded article encodes");
        assert_eq!(decode_article(&again), Ok(a));
    }
    if let Ok(c) = decode_customer(payload) {
        let again = customer_to_json(&c).expect("a decoded customer encodes");
        assert_eq!(decode_customer(&again), Ok(c));
    }
});
