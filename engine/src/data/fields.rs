//! Parsers for the individual H&M field formats, shared by the CSV and parquet readers so both accept and
//! reject exactly the same values.

use super::error::FieldError;
use chrono::{Datelike, NaiveDate};

/// Event day: days since 1970-01-01. Day granularity is all the data has.
pub type Day = u16;

const EPOCH_CE_DAYS: i32 = 719_163; // NaiveDate(1970-01-01).num_days_from_ce()

pub fn day_from_date(d: NaiveDate) -> Option<Day> {
    Day::try_from(d.num_days_from_ce() - EPOCH_CE_DAYS).ok()
}

pub fn date_from_day(day: Day) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(i32::from(day) + EPOCH_CE_DAYS).expect("u16 day is always a valid date")
}

pub fn format_day(day: Day) -> String {
    date_from_day(day).format("%Y-%m-%d").to_string()
}

/// `YYYY-MM-DD`; a trailing ` 00:00:00` time (as some exports write dates) is accepted.
pub fn parse_date(raw: &[u8]) -> Result<Day, FieldError> {
    let err = |reason| FieldError::new("t_dat", raw, reason);
    let b = match raw.len() {
        10 => raw,
        19 if &raw[10..] == b" 00:00:00" => &raw[..10],
        _ => return Err(err("expected a date YYYY-MM-DD")),
    };
    if b[4] != b'-' || b[7] != b'-' {
        return Err(err("expected a date YYYY-MM-DD"));
    }
    let num = |s: &[u8]| -> Option<u32> {
        s.iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
    };
    let (Some(y), Some(m), Some(d)) = (num(&b[..4]), num(&b[5..7]), num(&b[8..10])) else {
        return Err(err("expected a date YYYY-MM-DD"));
    };
    let date = NaiveDate::from_ymd_opt(y as i32, m, d).ok_or_else(|| err("not a calendar date"))?;
    if !(FIRST_YEAR..=LAST_YEAR).contains(&date.year()) {
        return Err(err(OUT_OF_WINDOW));
    }
    day_from_date(date).ok_or_else(|| err(OUT_OF_WINDOW))
}

/// The years a purchase may be dated in: a date from the wrong century (1970-01-02, 2149-06-06) is bad input,
/// not a move of the engine's event time.
pub const FIRST_YEAR: i32 = 2000;
pub const LAST_YEAR: i32 = 2099;
const OUT_OF_WINDOW: &str = "date outside the valid window 2000-01-01 ..= 2099-12-31";

pub fn parse_date_str(s: &str) -> Result<Day, FieldError> {
    parse_date(s.as_bytes())
}

/// Article ids are 10 digits with a leading zero in the original files; files re-saved by pandas drop it.
/// Both are accepted; internally the id is an integer.
pub fn parse_article_id(raw: &[u8]) -> Result<u32, FieldError> {
    parse_u32_digits(raw).ok_or_else(|| FieldError::new("article_id", raw, "expected an article id of up to 10 digits"))
}

pub fn format_article_id(id: u32) -> String {
    format!("{id:010}")
}

/// Serde form of an article id: the 10-digit text of the files and topics (`#[serde(with = ...)]`).
pub mod article_id_text {
    pub fn serialize<S: serde::Serializer>(id: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_article_id(*id))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        super::parse_article_id(text.as_bytes()).map_err(|e| serde::de::Error::custom(format!("article_id: {} (got {text:?})", e.reason)))
    }
}

/// Digits only, at most 10, fits in u32. Also accepts a pandas-style `123.0`.
pub fn parse_u32_digits(raw: &[u8]) -> Option<u32> {
    let raw = raw.strip_suffix(b".0").unwrap_or(raw);
    if raw.is_empty() || raw.len() > 10 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in raw {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    u32::try_from(v).ok()
}

pub fn parse_price(raw: &[u8]) -> Result<f32, FieldError> {
    let err = |reason| FieldError::new("price", raw, reason);
    let v: f64 = fast_float2::parse(raw).map_err(|_| err("expected a number"))?;
    // Checked in the type it is stored in: 1e300 is a finite f64 but +inf as f32.
    let stored = v as f32;
    if !stored.is_finite() || v < 0.0 {
        return Err(err("expected a non-negative price that fits a 32-bit float (at most 3.4e38)"));
    }
    Ok(stored)
}

/// 1 = store, 2 = online.
pub fn parse_channel(raw: &[u8]) -> Result<u8, FieldError> {
    match raw {
        b"1" | b"1.0" => Ok(1),
        b"2" | b"2.0" => Ok(2),
        _ => Err(FieldError::new("sales_channel_id", raw, "expected 1 (store) or 2 (online)")),
    }
}

pub fn check_channel(v: i64) -> Result<u8, FieldError> {
    match v {
        1 | 2 => Ok(v as u8),
        _ => Err(FieldError::new("sales_channel_id", v.to_string().as_bytes(), "expected 1 (store) or 2 (online)")),
    }
}

/// 64 hex chars → 32 bytes (customer ids and postal codes are hashes). Branch-free over a lookup table: this
/// runs once per transaction row.
#[inline]
pub fn parse_hex32(column: &'static str, raw: &[u8]) -> Result<[u8; 32], FieldError> {
    let Ok(raw64) = <&[u8; 64]>::try_from(raw) else {
        return Err(FieldError::new(column, raw, "expected 64 hex characters"));
    };
    let mut out = [0u8; 32];
    let mut bad = 0u8;
    for i in 0..32 {
        let h = HEX_LUT[raw64[2 * i] as usize];
        let l = HEX_LUT[raw64[2 * i + 1] as usize];
        bad |= h | l;
        out[i] = (h << 4) | (l & 0x0f);
    }
    if bad & 0xf0 != 0 {
        return Err(FieldError::new(column, raw, "expected 64 hex characters"));
    }
    Ok(out)
}

/// Hex digit value, or 0xff for any other byte.
const HEX_LUT: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = match c as u8 {
            b'0'..=b'9' => c as u8 - b'0',
            b'a'..=b'f' => c as u8 - b'a' + 10,
            b'A'..=b'F' => c as u8 - b'A' + 10,
            _ => 0xff,
        };
        c += 1;
    }
    t
};

pub fn format_hex32(key: &[u8; 32]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for &b in key {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Writes the 64 hex chars into `out` (used by the fast writers).
pub fn write_hex32(key: &[u8; 32], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in key {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

/// Optional float flag column (`FN`, `Active`): `1.0`, `1` or empty.
pub fn parse_flag(column: &'static str, raw: &[u8]) -> Result<bool, FieldError> {
    match raw {
        b"" => Ok(false),
        b"1" | b"1.0" => Ok(true),
        b"0" | b"0.0" => Ok(false),
        _ => Err(FieldError::new(column, raw, "expected 1.0 or empty")),
    }
}

/// Age: integer or pandas float (`49.0`), or empty.
pub fn parse_age(raw: &[u8]) -> Result<Option<u8>, FieldError> {
    if raw.is_empty() {
        return Ok(None);
    }
    match parse_u32_digits(raw) {
        Some(a) if a <= 120 => Ok(Some(a as u8)),
        _ => Err(FieldError::new("age", raw, "expected an age 0..120 or empty")),
    }
}

pub fn parse_i32(column: &'static str, raw: &[u8]) -> Result<i32, FieldError> {
    let raw2 = raw.strip_suffix(b".0").unwrap_or(raw);
    std::str::from_utf8(raw2)
        .ok()
        .and_then(|s| s.parse::<i32>().ok())
        .ok_or_else(|| FieldError::new(column, raw, "expected an integer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_reject_garbage() {
        let d = parse_date(b"2020-09-22").unwrap();
        assert_eq!(format_day(d), "2020-09-22");
        assert_eq!(parse_date(b"2020-09-22 00:00:00").unwrap(), d);
        assert_eq!(parse_date(b"2020-09-23").unwrap(), d + 1);
        assert!(parse_date(b"2020-02-30").is_err());
        assert!(parse_date(b"2020/09/22").is_err());
        assert!(parse_date(b"20-09-22").is_err());
    }

    #[test]
    fn article_ids_with_and_without_leading_zero() {
        assert_eq!(parse_article_id(b"0663713001").unwrap(), 663713001);
        assert_eq!(parse_article_id(b"663713001").unwrap(), 663713001);
        assert_eq!(format_article_id(663713001), "0663713001");
        assert!(parse_article_id(b"66371300x").is_err());
        assert!(parse_article_id(b"").is_err());
        assert!(parse_article_id(b"99999999999").is_err());
    }

    #[test]
    fn prices_channels_hex() {
        assert!((parse_price(b"0.0508305084745762").unwrap() - 0.050_830_51).abs() < 1e-7);
        assert!((parse_price(b"1.69491525423729e-05").unwrap() - 1.694_915e-5).abs() < 1e-10);
        assert!(parse_price(b"-1").is_err());
        assert!(parse_price(b"abc").is_err());
    }

    #[test]
    fn overflow_a_price_finite_as_f64_but_infinite_as_stored_is_refused() {
        for raw in [&b"1e300"[..], b"3.5e38", b"inf", b"NaN"] {
            let e = parse_price(raw).unwrap_err();
            assert_eq!(e.column, "price", "{raw:?}");
        }
        assert!(parse_price(b"3.3e38").is_ok());
        assert_eq!(parse_channel(b"2").unwrap(), 2);
        assert!(parse_channel(b"3").is_err());
        let id = "00000dbacae5abe5e23885899a1fa44253a17956c6d1c3d25f88aa139fdfc657";
        let k = parse_hex32("customer_id", id.as_bytes()).unwrap();
        assert_eq!(format_hex32(&k), id);
        assert!(parse_hex32("customer_id", &id.as_bytes()[1..]).is_err());
    }

    #[test]
    fn ages_and_flags() {
        assert_eq!(parse_age(b"49.0").unwrap(), Some(49));
        assert_eq!(parse_age(b"49").unwrap(), Some(49));
        assert_eq!(parse_age(b"").unwrap(), None);
        assert!(parse_age(b"x").is_err());
        assert!(parse_flag("FN", b"1.0").unwrap());
        assert!(!parse_flag("FN", b"").unwrap());
        assert!(parse_flag("FN", b"yes").is_err());
    }
}
