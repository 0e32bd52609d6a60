//! articles.csv: the catalogue, with the real file's 25 columns. Articles seen only in transactions are
//! appended with default attributes and counted (real samples name such articles).

use super::error::{FieldError, Result};
use super::fields::{parse_article_id, parse_i32, parse_u32_digits};
use super::rejects::{LoadOptions, Reject};
use std::path::Path;

/// Dense index of an article in [`Articles::rows`].
pub type ArticleIdx = u32;

pub const ARTICLE_COLUMNS: [&str; 25] = [
    "article_id",
    "product_code",
    "prod_name",
    "product_type_no",
    "product_type_name",
    "product_group_name",
    "graphical_appearance_no",
    "graphical_appearance_name",
    "colour_group_code",
    "colour_group_name",
    "perceived_colour_value_id",
    "perceived_colour_value_name",
    "perceived_colour_master_id",
    "perceived_colour_master_name",
    "department_no",
    "department_name",
    "index_code",
    "index_name",
    "index_group_no",
    "index_group_name",
    "section_no",
    "section_name",
    "garment_group_no",
    "garment_group_name",
    "detail_desc",
];

/// Also the value of an `articles` topic message (JSON, fields in file order, the id as 10-digit text).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Article {
    #[serde(with = "super::fields::article_id_text")]
    pub article_id: u32,
    pub product_code: u32,
    pub prod_name: String,
    pub product_type_no: i32,
    pub product_type_name: String,
    pub product_group_name: String,
    pub graphical_appearance_no: i32,
    pub graphical_appearance_name: String,
    pub colour_group_code: i32,
    pub colour_group_name: String,
    pub perceived_colour_value_id: i32,
    pub perceived_colour_value_name: String,
    pub perceived_colour_master_id: i32,
    pub perceived_colour_master_name: String,
    pub department_no: i32,
    pub department_name: String,
    pub index_code: String,
    pub index_name: String,
    pub index_group_no: i32,
    pub index_group_name: String,
    pub section_no: i32,
    pub section_name: String,
    pub garment_group_no: i32,
    pub garment_group_name: String,
    pub detail_desc: String,
}

impl Article {
    /// Placeholder attributes for an article that appears only in transactions.
    pub fn unknown(article_id: u32) -> Self {
        Article {
            article_id,
            product_code: article_id / 1000,
            prod_name: "(unknown article)".into(),
            product_type_no: -1,
            product_type_name: "Unknown".into(),
            product_group_name: "Unknown".into(),
            graphical_appearance_no: -1,
            colour_group_code: -1,
            perceived_colour_value_id: -1,
            perceived_colour_master_id: -1,
            department_no: -1,
            index_group_no: -1,
            section_no: -1,
            garment_group_no: -1,
            ..Default::default()
        }
    }

    /// Field values as written to CSV, in [`ARTICLE_COLUMNS`] order.
    pub fn to_fields(&self) -> [String; 25] {
        [
            super::fields::format_article_id(self.article_id),
            self.product_code.to_string(),
            self.prod_name.clone(),
            self.product_type_no.to_string(),
            self.product_type_name.clone(),
            self.product_group_name.clone(),
            self.graphical_appearance_no.to_string(),
            self.graphical_appearance_name.clone(),
            self.colour_group_code.to_string(),
            self.colour_group_name.clone(),
            self.perceived_colour_value_id.to_string(),
            self.perceived_colour_value_name.clone(),
            self.perceived_colour_master_id.to_string(),
            self.perceived_colour_master_name.clone(),
            self.department_no.to_string(),
            self.department_name.clone(),
            self.index_code.clone(),
            self.index_name.clone(),
            self.index_group_no.to_string(),
            self.index_group_name.clone(),
            self.section_no.to_string(),
            self.section_name.clone(),
            self.garment_group_no.to_string(),
            self.garment_group_name.clone(),
            self.detail_desc.clone(),
        ]
    }

    fn from_fields(f: &[&[u8]]) -> std::result::Result<Self, FieldError> {
        let s = |i: usize| String::from_utf8_lossy(f[i]).into_owned();
        let int = |i: usize| parse_i32(ARTICLE_COLUMNS[i], f[i]);
        Ok(Article {
            article_id: parse_article_id(f[0])?,
            product_code: parse_u32_digits(f[1])
                .ok_or_else(|| FieldError::new("product_code", f[1], "expected a product code"))?,
            prod_name: s(2),
            product_type_no: int(3)?,
            product_type_name: s(4),
            product_group_name: s(5),
            graphical_appearance_no: int(6)?,
            graphical_appearance_name: s(7),
            colour_group_code: int(8)?,
            colour_group_name: s(9),
            perceived_colour_value_id: int(10)?,
            perceived_colour_value_name: s(11),
            perceived_colour_master_id: int(12)?,
            perceived_colour_master_name: s(13),
            department_no: int(14)?,
            department_name: s(15),
            index_code: s(16),
            index_name: s(17),
            index_group_no: int(18)?,
            index_group_name: s(19),
            section_no: int(20)?,
            section_name: s(21),
            garment_group_no: int(22)?,
            garment_group_name: s(23),
            detail_desc: s(24),
        })
    }
}

/// The article table: rows by dense index, and the id → index table. The engine's `state::Catalog` is one of
/// these plus what candidate sources read per event.
#[derive(Debug, Clone, Default)]
pub struct Articles {
    pub rows: Vec<Article>,
    index: super::article_ids::ArticleIds,
    /// Rows that came from the articles file (the rest were added for unknown ids).
    pub from_file: usize,
}

impl Articles {
    /// The table of `rows` (ids distinct; a later duplicate's id maps to the later row).
    pub fn from_rows(rows: Vec<Article>) -> Self {
        let mut index = super::article_ids::ArticleIds::default();
        for (i, a) in rows.iter().enumerate() {
            index.insert(a.article_id, i as ArticleIdx);
        }
        let from_file = rows.len();
        Articles { rows, index, from_file }
    }

    /// Adds `a` (its id must be new) and returns its index.
    pub fn push(&mut self, a: Article) -> ArticleIdx {
        let i = self.rows.len() as ArticleIdx;
        self.index.insert(a.article_id, i);
        self.rows.push(a);
        i
    }

    /// Hints that `article_id` will be looked up soon.
    #[inline]
    pub fn prefetch_id(&self, article_id: u32) {
        self.index.prefetch(article_id)
    }

    pub fn heap_bytes(&self) -> usize {
        let strings: usize = self.rows.iter().map(|r| r.prod_name.len() + r.detail_desc.len() + 200).sum();
        strings + self.rows.capacity() * std::mem::size_of::<Article>() + self.index.heap_bytes()
    }

    pub fn load(path: &Path, opts: &LoadOptions) -> Result<(Self, Vec<Reject>)> {
        let mut arts = Articles::default();
        let rejects = super::table_reader::read_rows(path, &ARTICLE_COLUMNS, opts, &mut |_, f| {
            let a = Article::from_fields(f)?;
            if arts.idx(a.article_id).is_some() {
                return Err(FieldError::new("article_id", f[0], "duplicate article_id"));
            }
            arts.push(a);
            Ok(())
        })?;
        arts.from_file = arts.rows.len();
        Ok((arts, rejects))
    }

    #[inline]
    pub fn idx(&self, article_id: u32) -> Option<ArticleIdx> {
        self.index.get(article_id)
    }

    /// Index of `article_id`, adding a default row when it is not in the catalogue.
    pub fn idx_or_insert(&mut self, article_id: u32) -> ArticleIdx {
        if let Some(i) = self.idx(article_id) {
            return i;
        }
        self.push(Article::unknown(article_id))
    }

    pub fn id(&self, idx: ArticleIdx) -> u32 {
        self.rows[idx as usize].article_id
    }

    pub fn get(&self, idx: ArticleIdx) -> &Article {
        &self.rows[idx as usize]
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}
