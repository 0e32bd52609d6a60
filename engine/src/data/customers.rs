//! customers.csv: one row per customer, keyed by the 64-hex customer id (interned). Customers seen only in
//! transactions get default attributes and are counted.

use super::error::{FieldError, Result};
use super::fields::{format_hex32, parse_age, parse_flag, parse_hex32};
use super::ids::{CustomerIds, CustomerIdx, CustomerKey};
use super::rejects::{LoadOptions, Reject};
use rustc_hash::FxHashMap;
use std::path::Path;

pub const CUSTOMER_COLUMNS: [&str; 7] =
    ["customer_id", "FN", "Active", "club_member_status", "fashion_news_frequency", "age", "postal_code"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClubStatus {
    Active,
    PreCreate,
    LeftClub,
    #[default]
    Missing,
}

impl ClubStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClubStatus::Active => "ACTIVE",
            ClubStatus::PreCreate => "PRE-CREATE",
            ClubStatus::LeftClub => "LEFT CLUB",
            ClubStatus::Missing => "",
        }
    }
    fn parse(raw: &[u8]) -> std::result::Result<Self, FieldError> {
        Ok(match raw {
            b"ACTIVE" => ClubStatus::Active,
            b"PRE-CREATE" => ClubStatus::PreCreate,
            b"LEFT CLUB" => ClubStatus::LeftClub,
            b"" => ClubStatus::Missing,
            _ => return Err(FieldError::new("club_member_status", raw, "expected ACTIVE, PRE-CREATE, LEFT CLUB or empty")),
        })
    }
}

/// The real file spells "none" two ways (`NONE` and `None`); both are kept as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NewsFrequency {
    NoneUpper,
    NoneTitle,
    Regularly,
    Monthly,
    #[default]
    Missing,
}

impl NewsFrequency {
    pub fn as_str(self) -> &'static str {
        match self {
            NewsFrequency::NoneUpper => "NONE",
            NewsFrequency::NoneTitle => "None",
            NewsFrequency::Regularly => "Regularly",
            NewsFrequency::Monthly => "Monthly",
            NewsFrequency::Missing => "",
        }
    }
    fn parse(raw: &[u8]) -> std::result::Result<Self, FieldError> {
        Ok(match raw {
            b"NONE" => NewsFrequency::NoneUpper,
            b"None" => NewsFrequency::NoneTitle,
            b"Regularly" => NewsFrequency::Regularly,
            b"Monthly" => NewsFrequency::Monthly,
            b"" => NewsFrequency::Missing,
            _ => return Err(FieldError::new("fashion_news_frequency", raw, "expected NONE, None, Regularly, Monthly or empty")),
        })
    }
}

/// No postal code (customer known only from transactions).
pub const NO_POSTAL: u32 = u32::MAX;

/// Column store of customer attributes, indexed by [`CustomerIdx`].
#[derive(Debug, Clone, Default)]
pub struct Customers {
    pub fn_flag: Vec<bool>,
    pub active: Vec<bool>,
    pub club: Vec<ClubStatus>,
    pub news: Vec<NewsFrequency>,
    pub age: Vec<Option<u8>>,
    pub postal: Vec<u32>,
    pub postal_codes: Vec<[u8; 32]>,
    /// Rows that came from the customers file (the rest were added for unknown ids).
    pub from_file: usize,
}

/// One customer's attributes (the generator's and tests' row form).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRow {
    pub key: [u8; 32],
    pub fn_flag: bool,
    pub active: bool,
    pub club: ClubStatus,
    pub news: NewsFrequency,
    pub age: Option<u8>,
    pub postal: [u8; 32],
}

impl CustomerRow {
    pub fn to_fields(&self) -> [String; 7] {
        let flag = |b: bool| if b { "1.0".to_string() } else { String::new() };
        [
            format_hex32(&self.key),
            flag(self.fn_flag),
            flag(self.active),
            self.club.as_str().to_string(),
            self.news.as_str().to_string(),
            self.age.map(|a| a.to_string()).unwrap_or_default(),
            format_hex32(&self.postal),
        ]
    }
}

impl Customers {
    pub fn load(path: &Path, opts: &LoadOptions, ids: &mut CustomerIds) -> Result<(Self, Vec<Reject>)> {
        let mut c = Customers::default();
        let mut postal_index: FxHashMap<[u8; 32], u32> = FxHashMap::default();
        let rejects = super::table_reader::read_rows(path, &CUSTOMER_COLUMNS, opts, &mut |_, f| {
            let key = parse_hex32("customer_id", f[0])?;
            let fn_flag = parse_flag("FN", f[1])?;
            let active = parse_flag("Active", f[2])?;
            let club = ClubStatus::parse(f[3])?;
            let news = NewsFrequency::parse(f[4])?;
            let age = parse_age(f[5])?;
            let postal = parse_hex32("postal_code", f[6])?;
            let (idx, new) = ids.intern(CustomerKey(key));
            if !new || idx as usize != c.fn_flag.len() {
                return Err(FieldError::new("customer_id", f[0], "duplicate customer_id"));
            }
            let next = postal_index.len() as u32;
            let p = *postal_index.entry(postal).or_insert_with(|| {
                c.postal_codes.push(postal);
                next
            });
            c.push(fn_flag, active, club, news, age, p);
            Ok(())
        })?;
        c.from_file = c.fn_flag.len();
        Ok((c, rejects))
    }

    fn push(&mut self, fn_flag: bool, active: bool, club: ClubStatus, news: NewsFrequency, age: Option<u8>, postal: u32) {
        self.fn_flag.push(fn_flag);
        self.active.push(active);
        self.club.push(club);
        self.news.push(news);
        self.age.push(age);
        self.postal.push(postal);
    }

    /// Adds default rows so that every interned customer has attributes.
    pub fn extend_defaults(&mut self, total: usize) {
        while self.fn_flag.len() < total {
            self.push(false, false, ClubStatus::Missing, NewsFrequency::Missing, None, NO_POSTAL);
        }
    }

    pub fn len(&self) -> usize {
        self.fn_flag.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fn_flag.is_empty()
    }

    pub fn row(&self, ids: &CustomerIds, idx: CustomerIdx) -> CustomerRow {
        let i = idx as usize;
        CustomerRow {
            key: ids.key(idx).0,
            fn_flag: self.fn_flag[i],
            active: self.active[i],
            club: self.club[i],
            news: self.news[i],
            age: self.age[i],
            postal: self.postal_codes.get(self.postal[i] as usize).copied().unwrap_or([0; 32]),
        }
    }
}
