//! The plain data types that flow through the engine, and their JSON wire form on the Kafka topics
//! (schemas/*.schema.json). Decoding turns a message into a typed [`Event`] or a [`DecodeError`] that names the
//! field and the reason, so a bad message can go to the dead-letters topic instead of being dropped.

use crate::data::customers::{ClubStatus, CustomerRow, NewsFrequency};
use crate::data::{format_article_id, format_day, format_hex32, parse_article_id, parse_date_str, parse_hex32, Article, CustomerKey, Dataset, Day};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// One purchase row as the engine sees it: event time is the day, then `seq`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TxEvent {
    pub day: Day,
    pub customer: CustomerKey,
    pub article_id: u32,
    pub price: f32,
    pub channel: u8,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Transaction(TxEvent),
    /// A catalogue row: new articles may arrive at any time (cold start).
    Article(Box<Article>),
    Customer(CustomerRow),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("not valid JSON for a {topic} message: {message}")]
    Json { topic: &'static str, message: String },
    #[error("field `{field}`: {reason} (got {value:?})")]
    Field { field: &'static str, value: String, reason: String },
    #[error("message has no payload")]
    Empty,
}

/// A dataset as the event stream replay publishes: articles, customers, then every purchase in order.
pub fn dataset_events(data: &Dataset) -> impl Iterator<Item = Event> + '_ {
    let articles = data.articles.rows.iter().map(|a| Event::Article(Box::new(a.clone())));
    let customers = (0..data.customers.len() as crate::data::CustomerIdx).map(|c| Event::Customer(data.customers.row(&data.ids, c)));
    let purchases = (0..data.transactions.len()).map(|i| Event::Transaction(TxEvent::of_row(data, i)));
    articles.chain(customers).chain(purchases)
}

/// Wire form of a `transactions` message.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxMsg<'a> {
    // Borrowed from the message when it holds no escapes (`\u002d` is valid JSON and must decode too).
    #[serde(borrow)]
    pub t_dat: Cow<'a, str>,
    #[serde(borrow)]
    pub customer_id: Cow<'a, str>,
    #[serde(borrow)]
    pub article_id: Cow<'a, str>,
    pub price: f64,
    pub sales_channel_id: i64,
    pub seq: u64,
}

impl TxEvent {
    /// Row `i` of the dataset's day-sorted transactions; `seq` is the row's position.
    pub fn of_row(data: &Dataset, i: usize) -> Self {
        let tx = &data.transactions;
        TxEvent { day: tx.day[i], customer: *data.ids.key(tx.customer[i]), article_id: data.articles.id(tx.article[i]), price: tx.price[i], channel: tx.channel[i], seq: i as u64 }
    }

    pub fn to_json(&self) -> Result<Vec<u8>, EncodeError> {
        if !self.price.is_finite() {
            return Err(EncodeError::NonFinite { what: "transaction", field: "price".into(), value: f64::from(self.price) });
        }
        let day = format_day(self.day);
        let cust = format_hex32(&self.customer.0);
        let art = format_article_id(self.article_id);
        let msg = TxMsg {
            t_dat: Cow::Borrowed(&day),
            customer_id: Cow::Borrowed(&cust),
            article_id: Cow::Borrowed(&art),
            price: f64::from(self.price),
            sales_channel_id: i64::from(self.channel),
            seq: self.seq,
        };
        encode("transaction", &msg)
    }
}

/// A message could not be written: a value its wire form cannot carry (JSON has no infinity or NaN).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("{what}: {message}")]
    Json { what: &'static str, message: String },
    #[error("{what}: {field} = {value} is not a finite number")]
    NonFinite { what: &'static str, field: String, value: f64 },
}

fn encode<T: Serialize + ?Sized>(what: &'static str, v: &T) -> Result<Vec<u8>, EncodeError> {
    serde_json::to_vec(v).map_err(|e| EncodeError::Json { what, message: e.to_string() })
}

fn field_err(field: &'static str, value: impl ToString, reason: impl ToString) -> DecodeError {
    DecodeError::Field { field, value: value.to_string(), reason: reason.to_string() }
}

fn json_err(topic: &'static str) -> impl Fn(serde_json::Error) -> DecodeError {
    move |e| DecodeError::Json { topic, message: e.to_string() }
}

pub fn decode_transaction(payload: &[u8]) -> Result<TxEvent, DecodeError> {
    let m: TxMsg = serde_json::from_slice(payload).map_err(json_err("transactions"))?;
    let day = parse_date_str(&m.t_dat).map_err(|e| field_err("t_dat", &m.t_dat, e.reason))?;
    let customer = CustomerKey(parse_hex32("customer_id", m.customer_id.as_bytes()).map_err(|e| field_err("customer_id", &m.customer_id, e.reason))?);
    let article_id = parse_article_id(m.article_id.as_bytes()).map_err(|e| field_err("article_id", &m.article_id, e.reason))?;
    // Checked in the type it is stored in: 1e300 is a finite f64 but +inf as f32.
    if !((m.price as f32).is_finite() && m.price >= 0.0) {
        return Err(field_err("price", m.price, "expected a price >= 0 that fits a 32-bit float (at most 3.4e38)"));
    }
    let channel = crate::data::check_channel(m.sales_channel_id).map_err(|e| field_err("sales_channel_id", m.sales_channel_id, e.reason))?;
    Ok(TxEvent { day, customer, article_id, price: m.price as f32, channel, seq: m.seq })
}

/// An `articles` message is an [`Article`] as JSON (its serde form).
pub fn article_to_json(a: &Article) -> Result<Vec<u8>, EncodeError> {
    encode("article", a)
}

pub fn decode_article(payload: &[u8]) -> Result<Article, DecodeError> {
    serde_json::from_slice(payload).map_err(json_err("articles"))
}

/// Wire form of a `customers` message; empty CSV fields are `null`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerMsg {
    pub customer_id: String,
    #[serde(rename = "FN")]
    pub fn_flag: bool,
    #[serde(rename = "Active")]
    pub active: bool,
    pub club_member_status: Option<String>,
    pub fashion_news_frequency: Option<String>,
    pub age: Option<u8>,
    pub postal_code: Option<String>,
}

pub fn customer_to_json(c: &CustomerRow) -> Result<Vec<u8>, EncodeError> {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let m = CustomerMsg {
        customer_id: format_hex32(&c.key),
        fn_flag: c.fn_flag,
        active: c.active,
        club_member_status: opt(c.club.as_str()),
        fashion_news_frequency: opt(c.news.as_str()),
        age: c.age,
        postal_code: (c.postal != [0; 32]).then(|| format_hex32(&c.postal)),
    };
    encode("customer", &m)
}

pub fn decode_customer(payload: &[u8]) -> Result<CustomerRow, DecodeError> {
    let m: CustomerMsg = serde_json::from_slice(payload).map_err(json_err("customers"))?;
    let key = parse_hex32("customer_id", m.customer_id.as_bytes()).map_err(|e| field_err("customer_id", &m.customer_id, e.reason))?;
    let club = match m.club_member_status.as_deref() {
        None | Some("") => ClubStatus::Missing,
        Some("ACTIVE") => ClubStatus::Active,
        Some("PRE-CREATE") => ClubStatus::PreCreate,
        Some("LEFT CLUB") => ClubStatus::LeftClub,
        Some(other) => return Err(field_err("club_member_status", other, "expected ACTIVE, PRE-CREATE, LEFT CLUB or null")),
    };
    let news = match m.fashion_news_frequency.as_deref() {
        None | Some("") => NewsFrequency::Missing,
        Some("NONE") => NewsFrequency::NoneUpper,
        Some("None") => NewsFrequency::NoneTitle,
        Some("Regularly") => NewsFrequency::Regularly,
        Some("Monthly") => NewsFrequency::Monthly,
        Some(other) => return Err(field_err("fashion_news_frequency", other, "expected NONE, None, Regularly, Monthly or null")),
    };
    if let Some(age) = m.age {
        if age > 120 {
            return Err(field_err("age", age, "expected an age of at most 120"));
        }
    }
    let postal = match m.postal_code.as_deref() {
        None | Some("") => [0; 32],
        Some(p) => parse_hex32("postal_code", p.as_bytes()).map_err(|e| field_err("postal_code", p, e.reason))?,
    };
    Ok(CustomerRow { key, fn_flag: m.fn_flag, active: m.active, club, news, age: m.age, postal })
}

/// Which candidate sources proposed an item (a bit set, so merging is an OR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Sources(pub u16);

pub const SOURCE_NAMES: [&str; 9] = ["repurchase", "copurchase", "same_product", "trending", "trending_age", "popular", "two_tower", "similar", "text"];

impl Sources {
    pub fn with(self, id: usize) -> Self {
        Sources(self.0 | (1 << id))
    }
    pub fn has(self, id: usize) -> bool {
        self.0 & (1 << id) != 0
    }
    pub fn names(self) -> Vec<&'static str> {
        SOURCE_NAMES.iter().enumerate().filter(|(i, _)| self.has(*i)).map(|(_, n)| *n).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The customer's basket (their rows of one day) closed.
    Basket,
    /// Emitted after every purchase event.
    Event,
    /// Asked for over HTTP (never published).
    Query,
}

/// One ranked item, in engine indices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecItem {
    pub article: crate::data::ArticleIdx,
    pub score: f32,
    pub sources: Sources,
}

/// A customer's ranked list, produced when their basket closes (or per event).
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub customer: CustomerKey,
    /// Event day of the basket that triggered it.
    pub as_of: Day,
    /// `seq` of the last transaction included.
    pub seq: u64,
    pub trigger: Trigger,
    pub items: Vec<RecItem>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecItemMsg {
    pub article_id: String,
    pub score: f32,
    pub sources: Vec<String>,
}

/// Wire form of a `recommendations` message.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecommendationMsg {
    pub customer_id: String,
    pub as_of: String,
    pub seq: u64,
    pub trigger: Trigger,
    pub model_versions: std::collections::BTreeMap<String, String>,
    pub items: Vec<RecItemMsg>,
}

impl Recommendation {
    /// The wire message's bytes; a score that is not a finite number is an error (JSON would write `null`).
    pub fn encode(&self, article_id: impl Fn(crate::data::ArticleIdx) -> u32, model_versions: &std::collections::BTreeMap<String, String>) -> Result<Vec<u8>, EncodeError> {
        if let Some(bad) = self.items.iter().find(|i| !i.score.is_finite()) {
            return Err(EncodeError::NonFinite { what: "list", field: format!("score of article {}", format_article_id(article_id(bad.article))), value: f64::from(bad.score) });
        }
        encode("list", &self.to_msg(article_id, model_versions))
    }

    /// The wire message; `article_id` maps engine indices to catalogue ids.
    pub fn to_msg(&self, article_id: impl Fn(crate::data::ArticleIdx) -> u32, model_versions: &std::collections::BTreeMap<String, String>) -> RecommendationMsg {
        RecommendationMsg {
            customer_id: format_hex32(&self.customer.0),
            as_of: format_day(self.as_of),
            seq: self.seq,
            trigger: self.trigger,
            model_versions: model_versions.clone(),
            items: self
                .items
                .iter()
                .map(|i| RecItemMsg {
                    article_id: format_article_id(article_id(i.article)),
                    score: i.score,
                    sources: i.sources.names().into_iter().map(String::from).collect(),
                })
                .collect(),
        }
    }
}

/// Wire form of a `dead-letters` message: the original bytes (base64, and as text when UTF-8), where they came
/// from, and why they were refused.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    pub source_topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: String,
    pub payload_base64: String,
    /// Size of the original value in bytes.
    pub payload_bytes: u64,
    /// SHA-256 of the original value, lowercase hex (identifies it when `truncated`).
    pub payload_sha256: String,
    /// The original value was longer than [`DEAD_LETTER_MAX_PAYLOAD`]: `payload` and `payload_base64` hold its
    /// first bytes only (a dead letter must fit a Kafka message, or one oversized input would stop the engine).
    pub truncated: bool,
    pub reason: String,
}

/// The most bytes of an original value (and of its key) a dead letter carries: twice over (text and base64)
/// it stays far below Kafka's default 1 MB message limit.
pub const DEAD_LETTER_MAX_PAYLOAD: usize = 64 * 1024;

impl DeadLetter {
    pub fn to_json(&self) -> Result<Vec<u8>, EncodeError> {
        encode("dead letter", self)
    }

    pub fn new(source_topic: &str, partition: i32, offset: i64, key: Option<&[u8]>, payload: &[u8], reason: String) -> Self {
        use base64::Engine;
        use sha2::Digest;
        let truncated = payload.len() > DEAD_LETTER_MAX_PAYLOAD;
        let kept = &payload[..payload.len().min(DEAD_LETTER_MAX_PAYLOAD)];
        let digest = sha2::Sha256::digest(payload);
        DeadLetter {
            source_topic: source_topic.to_string(),
            partition,
            offset,
            key: key.map(|k| String::from_utf8_lossy(&k[..k.len().min(DEAD_LETTER_MAX_PAYLOAD)]).into_owned()),
            payload: String::from_utf8_lossy(kept).into_owned(),
            payload_base64: base64::engine::general_purpose::STANDARD.encode(kept),
            payload_bytes: payload.len() as u64,
            payload_sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
            truncated,
            reason,
        }
    }
}

/// Wire form of a `model-updates` message.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelUpdate {
    pub kind: String,
    pub version: String,
    pub path: String,
    pub trained_until: String,
    pub metrics: std::collections::BTreeMap<String, f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx() -> TxEvent {
        TxEvent { day: 18_500, customer: CustomerKey([0xab; 32]), article_id: 108_775_015, price: 0.0508, channel: 2, seq: 7 }
    }

    #[test]
    fn transaction_round_trips_through_json() {
        let t = tx();
        let json = t.to_json().unwrap();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.contains("\"article_id\":\"0108775015\""), "{text}");
        assert_eq!(decode_transaction(&json).unwrap(), t);
    }

    #[test]
    fn bad_transactions_name_the_field() {
        let good = String::from_utf8(tx().to_json().unwrap()).unwrap();
        let bad_channel = good.replace("\"sales_channel_id\":2", "\"sales_channel_id\":3");
        assert!(matches!(decode_transaction(bad_channel.as_bytes()), Err(DecodeError::Field { field: "sales_channel_id", .. })));
        let bad_date = good.replace("2020", "2020x");
        assert!(matches!(decode_transaction(bad_date.as_bytes()), Err(DecodeError::Field { field: "t_dat", .. })));
        let extra = good.replace("\"seq\"", "\"bogus\":1,\"seq\"");
        assert!(matches!(decode_transaction(extra.as_bytes()), Err(DecodeError::Json { .. })));
        assert!(matches!(decode_transaction(b"not json"), Err(DecodeError::Json { .. })));
    }

    #[test]
    fn valid_json_with_escapes_decodes_like_the_plain_form() {
        let good = String::from_utf8(tx().to_json().unwrap()).unwrap();
        // `-` as `\u002d`, `a` as `\u0061`, `0` as `\u0030`: the same message, spelled with escapes.
        let escaped = good.replacen('-', "\\u002d", 2).replacen("abab", "\\u0061bab", 1).replacen("\"0108", "\"\\u0030108", 1);
        assert!(escaped.matches("\\u00").count() == 4, "{escaped}");
        assert_eq!(decode_transaction(escaped.as_bytes()).unwrap(), tx());
    }

    #[test]
    fn overflow_a_price_of_1e300_is_refused_not_stored_as_infinity() {
        let good = String::from_utf8(tx().to_json().unwrap()).unwrap();
        for price in ["1e300", "3.5e38", "-0.5"] {
            let bad = good.replace("0.05079999938607216", price).replace("0.0508", price);
            assert!(bad.contains(price), "{bad}");
            assert!(matches!(decode_transaction(bad.as_bytes()), Err(DecodeError::Field { field: "price", .. })), "{price}");
        }
    }

    #[test]
    fn customer_and_article_round_trip() {
        let c = CustomerRow { key: [1; 32], fn_flag: true, active: false, club: ClubStatus::PreCreate, news: NewsFrequency::NoneTitle, age: Some(31), postal: [2; 32] };
        assert_eq!(decode_customer(&customer_to_json(&c).unwrap()).unwrap(), c);
        let c2 = CustomerRow { club: ClubStatus::Missing, news: NewsFrequency::Missing, age: None, postal: [0; 32], ..c };
        assert_eq!(decode_customer(&customer_to_json(&c2).unwrap()).unwrap(), c2);
        let a = Article { article_id: 42, product_code: 1, prod_name: "x, \"y\"".into(), ..Article::default() };
        let json = article_to_json(&a).unwrap();
        assert!(String::from_utf8_lossy(&json).starts_with(r#"{"article_id":"0000000042","product_code":1,"#));
        assert_eq!(decode_article(&json).unwrap(), a);
        let bad = String::from_utf8(json).unwrap().replace("0000000042", "x42");
        assert!(matches!(decode_article(bad.as_bytes()), Err(DecodeError::Json { message, .. }) if message.contains("article_id")));
    }

    #[test]
    fn dead_letter_keeps_the_exact_bytes() {
        use base64::Engine;
        let bytes = [0xff, 0x00, b'a'];
        let d = DeadLetter::new("transactions", 3, 99, Some(b"k"), &bytes, "bad".into());
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(&d.payload_base64).unwrap(), bytes);
        assert!(!d.truncated);
        assert_eq!(d.payload_bytes, 3);
    }

    #[test]
    fn poison_pill_an_oversized_value_is_kept_truncated_with_its_size_and_hash() {
        use base64::Engine;
        let big = vec![b'x'; 600_000];
        let d = DeadLetter::new("transactions", 0, 5, Some(&big), &big, "too big".into());
        let json = d.to_json().unwrap();
        assert!(json.len() < 300_000, "{} bytes", json.len());
        assert!(d.truncated);
        assert_eq!(d.payload_bytes, 600_000);
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(&d.payload_base64).unwrap(), &big[..DEAD_LETTER_MAX_PAYLOAD]);
        // sha256 of 600,000 'x' bytes differs from the kept prefix's: it names the original.
        let small = DeadLetter::new("transactions", 0, 5, None, &big[..DEAD_LETTER_MAX_PAYLOAD], "x".into());
        assert_ne!(d.payload_sha256, small.payload_sha256);
        assert_eq!(d.payload_sha256.len(), 64);
        assert_eq!(DeadLetter::new("t", 0, 0, None, b"abc", "x".into()).payload_sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn a_value_json_cannot_carry_is_an_encode_error_not_an_empty_message() {
        let item = |score| RecItem { article: 0, score, sources: Sources::default().with(0) };
        let r = Recommendation { customer: CustomerKey([1; 32]), as_of: 18_500, seq: 3, trigger: Trigger::Basket, items: vec![item(1.0), item(f32::INFINITY)] };
        let e = r.encode(|_| 42, &Default::default()).unwrap_err().to_string();
        assert!(e.contains("score of article 0000000042") && e.contains("inf"), "{e}");
        let ok = Recommendation { items: vec![item(1.0)], ..r };
        let msg: RecommendationMsg = serde_json::from_slice(&ok.encode(|_| 42, &Default::default()).unwrap()).unwrap();
        assert_eq!(msg.items[0].article_id, "0000000042");
        let e = TxEvent { price: f32::NAN, ..tx() }.to_json().unwrap_err().to_string();
        assert!(e.contains("price = NaN"), "{e}");
    }
}
