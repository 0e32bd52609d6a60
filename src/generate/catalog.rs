//! Synthetic catalogue: products with colour variants sharing a product_code, a heavy-tailed base appeal,
//! a launch week spread evenly over the weeks on sale before the first day and the simulated weeks, a fashion
//! life cycle (a short peak, then a fade) and a time on sale after which it leaves the shop, a season,
//! and a few "worn with" partner products that make item-to-item co-purchase learnable.

use super::alias::AliasTable;
use super::knobs::CatalogKnobs;
use super::vocab::{self, TypeSpec, TYPES};
use crate::data::Article;
use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use rustc_hash::FxHashMap;

/// What the simulation needs to know about an article beyond its file row.
#[derive(Debug, Clone)]
pub struct ArticleMeta {
    pub product: u32,
    pub type_idx: u16,
    pub index_idx: u8,
    /// Day offset (from the first simulated day) when it goes on sale; may be negative for old stock.
    pub launch: i32,
    pub appeal: f32,
    pub half_life_weeks: f32,
    /// Share of peak appeal that stays after the fashion wave (basics keep selling).
    pub floor: f32,
    /// Shop price in the data's units × 590.
    pub price: f32,
    /// Day offset after which it is no longer sold.
    pub retire: i32,
}

/// The generator's range of articles: rows, simulation attributes, products and partner articles (not the
/// engine's `state::Catalog` nor the data layer's `data::Articles`).
pub struct Assortment {
    pub articles: Vec<Article>,
    pub meta: Vec<ArticleMeta>,
    /// Article indices of each product (colour variants).
    pub products: Vec<Vec<u32>>,
    /// Products bought together with each product ("complete the look").
    pub partners: Vec<Vec<u32>>,
    /// Type indices of each product group, drawn by catalogue share.
    pub group_types: FxHashMap<&'static str, AliasTable>,
}

fn type_allowed(t: &TypeSpec, index_code: &str) -> bool {
    let womens_only = ["Dress", "Skirt", "Bra", "Bikini top", "Swimsuit", "Night gown", "Blouse", "Heeled sandals", "Ballerinas"];
    match index_code {
        "F" => !womens_only.contains(&t.name) && t.group != "Garment Full body",
        "G" | "H" | "I" | "J" => !["Bra", "Heeled sandals", "Blazer", "Tailored Waistcoat", "Watch", "Wallet", "Tie"].contains(&t.name),
        "B" => ["Underwear", "Socks & Tights", "Nightwear", "Swimwear"].contains(&t.group),
        "C" => t.group == "Accessories" || t.group == "Shoes",
        _ => true,
    }
}

pub fn build<R: Rng>(rng: &mut R, k: &CatalogKnobs, n_articles: usize, n_days: i32) -> Assortment {
    let index_table = AliasTable::new(vocab::INDEX_SHARE.iter().enumerate().map(|(i, &w)| (i as u32, f64::from(w))));
    let type_tables: Vec<AliasTable> = vocab::INDEXES
        .iter()
        .map(|(code, ..)| {
            AliasTable::new(TYPES.iter().enumerate().filter(|(_, t)| type_allowed(t, code)).map(|(i, t)| (i as u32, f64::from(t.share))))
        })
        .collect();
    let colour_table = AliasTable::new(vocab::COLOURS.iter().enumerate().map(|(i, c)| (i as u32, f64::from(c.3))));
    let appearance_table = AliasTable::new(vocab::APPEARANCES.iter().enumerate().map(|(i, a)| (i as u32, f64::from(a.1))));
    let appeal = LogNormal::new(0.0, k.appeal_sigma).expect("appeal_sigma validated > 0");
    let variant_appeal = LogNormal::new(0.0, k.variant_appeal_sigma).expect("variant_appeal_sigma validated > 0");
    let half_life = LogNormal::new(k.half_life_weeks.ln(), k.half_life_sigma).expect("half-life knobs validated > 0");
    let life = LogNormal::new(k.life_weeks.ln(), k.life_sigma).expect("life knobs validated > 0");
    let price_noise = LogNormal::new(0.0, 0.3).expect("valid lognormal");
    let n_weeks = (n_days / 7).max(1);
    let mut departments: FxHashMap<(i32, &'static str), i32> = FxHashMap::default();

    let mut cat = Assortment { articles: Vec::new(), meta: Vec::new(), products: Vec::new(), partners: Vec::new(), group_types: FxHashMap::default() };
    let mut code: u32 = 108_775;
    while cat.articles.len() < n_articles {
        let product = cat.products.len() as u32;
        let index_idx = index_table.sample(rng).unwrap_or(0) as usize;
        let (index_code, index_name, ig_no, ig_name, ..) = vocab::INDEXES[index_idx];
        let type_idx = type_tables[index_idx].sample(rng).unwrap_or(0) as usize;
        let spec = &TYPES[type_idx];
        let section_k = rng.random_range(0..6usize);
        let section_no = (index_idx as i32 + 1) * 10 + section_k as i32;
        let section_name = format!("{} {}", index_name.split([',', ' ', '/']).next().unwrap_or(index_name), vocab::SECTION_WORDS[section_k]);
        let next_dep = 1000 + departments.len() as i32 * 7;
        let department_no = *departments.entry((section_no, spec.garment_group)).or_insert(next_dep);
        let department_name = format!("{} {}", spec.garment_group.split([',', '/']).next().unwrap_or(spec.garment_group), vocab::DEPARTMENT_SUFFIXES[section_k % 8]);
        let appearance = appearance_table.sample(rng).unwrap_or(0) as usize;
        let base_appeal = appeal.sample(rng) as f32;
        let hl = half_life.sample(rng) as f32;
        let basic = rng.random::<f64>() < k.basic_share;
        let floor = if basic { k.basic_floor } else { k.fade_floor } as f32;
        let on_sale_weeks = (life.sample(rng) * if basic { k.basic_life_factor } else { 1.0 }).clamp(1.0, 1e4);
        // Launch weeks spread evenly over [-weeks on sale, last week]: the shop is as full on the first day as on
        // any other, at any scale.
        let launch = rng.random_range(-(on_sale_weeks.ceil() as i32)..n_weeks) * 7;
        let on_sale_days = on_sale_weeks * 7.0;
        let price = ((spec.price * price_noise.sample(rng) as f32).round() - 0.01).max(0.99);
        let name = product_name(rng, spec);
        let desc = description(rng, spec);
        let n_variants = 1 + (0..9).take_while(|_| rng.random::<f64>() < 0.556).count();
        let mut variants = Vec::new();
        let mut used_colours = Vec::new();
        for v in 0..n_variants {
            if cat.articles.len() >= n_articles {
                break;
            }
            let colour = (0..8).map(|_| colour_table.sample(rng).unwrap_or(0) as usize).find(|c| !used_colours.contains(c)).unwrap_or(0);
            used_colours.push(colour);
            let (cname, pvalue, pmaster, cpop) = vocab::COLOURS[colour];
            let late = if v > 0 && rng.random::<f64>() < 0.1 { rng.random_range(1..8) * 7 } else { 0 };
            let idx = cat.articles.len() as u32;
            variants.push(idx);
            cat.articles.push(Article {
                article_id: code * 1000 + 1 + v as u32,
                product_code: code,
                prod_name: name.clone(),
                product_type_no: 250 + type_idx as i32,
                product_type_name: spec.name.into(),
                product_group_name: spec.group.into(),
                graphical_appearance_no: 1_010_001 + appearance as i32,
                graphical_appearance_name: vocab::APPEARANCES[appearance].0.into(),
                colour_group_code: 1 + colour as i32,
                colour_group_name: cname.into(),
                perceived_colour_value_id: 1 + vocab::PERCEIVED_VALUES.iter().position(|p| *p == pvalue).unwrap_or(0) as i32,
                perceived_colour_value_name: pvalue.into(),
                perceived_colour_master_id: 1 + vocab::PERCEIVED_MASTERS.iter().position(|p| *p == pmaster).unwrap_or(0) as i32,
                perceived_colour_master_name: pmaster.into(),
                department_no,
                department_name: department_name.clone(),
                index_code: index_code.into(),
                index_name: index_name.into(),
                index_group_no: ig_no,
                index_group_name: ig_name.into(),
                section_no,
                section_name: section_name.clone(),
                garment_group_no: 1001 + vocab::TYPES.iter().position(|t| t.garment_group == spec.garment_group).unwrap_or(0) as i32,
                garment_group_name: spec.garment_group.into(),
                detail_desc: desc.clone(),
            });
            cat.meta.push(ArticleMeta {
                product,
                type_idx: type_idx as u16,
                index_idx: index_idx as u8,
                launch: launch + late,
                appeal: base_appeal * variant_appeal.sample(rng) as f32 * cpop.sqrt(),
                half_life_weeks: hl,
                floor,
                price,
                retire: (launch + late).saturating_add(on_sale_days as i32),
            });
        }
        cat.products.push(variants);
        code += rng.random_range(1..40);
    }
    link_partners(rng, &mut cat);
    let mut by_group: FxHashMap<&'static str, Vec<(u32, f64)>> = FxHashMap::default();
    for (i, t) in TYPES.iter().enumerate() {
        by_group.entry(t.group).or_default().push((i as u32, f64::from(t.share)));
    }
    cat.group_types = by_group.into_iter().map(|(g, w)| (g, AliasTable::new(w))).collect();
    cat
}

/// Each product gets up to three partner products from its complementary groups, launched around the same time
/// (outfits are designed together).
fn link_partners<R: Rng>(rng: &mut R, cat: &mut Assortment) {
    let launch = |p: u32| cat.meta[cat.products[p as usize][0] as usize].launch;
    let mut by_group: FxHashMap<&'static str, Vec<u32>> = FxHashMap::default();
    for (p, arts) in cat.products.iter().enumerate() {
        let t = &TYPES[cat.meta[arts[0] as usize].type_idx as usize];
        by_group.entry(t.group).or_default().push(p as u32);
    }
    // Each group's products in launch order, so that nearby entries are on sale in the same weeks.
    for pool in by_group.values_mut() {
        pool.sort_by_key(|&q| (launch(q), q));
    }
    let mut partners_of = Vec::with_capacity(cat.products.len());
    for p in 0..cat.products.len() {
        let first = cat.products[p][0] as usize;
        let spec = &TYPES[cat.meta[first].type_idx as usize];
        let mut partners = Vec::new();
        for _ in 0..3 {
            let group = spec.complements[rng.random_range(0..spec.complements.len())];
            let Some(pool) = by_group.get(group) else { continue };
            // Products launched in the same weeks as this one.
            let pos = pool.partition_point(|&q| (launch(q), q) < (launch(p as u32), p as u32));
            let lo = pos.saturating_sub(30);
            let hi = (pos + 30).min(pool.len());
            if lo < hi {
                let q = pool[rng.random_range(lo..hi)];
                if q as usize != p && !partners.contains(&q) {
                    partners.push(q);
                }
            }
        }
        partners_of.push(partners);
    }
    cat.partners = partners_of;
}

fn product_name<R: Rng>(rng: &mut R, spec: &TypeSpec) -> String {
    let n = rng.random_range(2..4);
    let mut s: String = (0..n).map(|_| vocab::NAME_SYLLABLES[rng.random_range(0..vocab::NAME_SYLLABLES.len())]).collect();
    if let Some(f) = s.get_mut(0..1) {
        f.make_ascii_uppercase();
    }
    match rng.random_range(0..4) {
        0 => format!("{s} {}", spec.name.to_lowercase()),
        1 => format!("{s} ({})", rng.random_range(1..4)),
        _ => s,
    }
}

fn description<R: Rng>(rng: &mut R, spec: &TypeSpec) -> String {
    if rng.random::<f64>() < 0.004 {
        return String::new();
    }
    let pick = |rng: &mut R, v: &[&'static str]| v[rng.random_range(0..v.len())];
    let fit = pick(rng, vocab::FITS);
    let material = pick(rng, vocab::MATERIALS);
    let (f1, f2, f3) = (pick(rng, vocab::FEATURES), pick(rng, vocab::FEATURES), pick(rng, vocab::FEATURES));
    let name = spec.name.to_lowercase();
    match rng.random_range(0..3) {
        0 => format!("{fit} {name} in {material} with {f1}, {f2} and {f3}."),
        1 => format!("{fit} {name} in {material}. {}, {f2} and {f3}.", capitalise(&format!("with {f1}"))),
        _ => format!("{name} in {material} with {f1} and {f2}.").chars().enumerate().map(|(i, c)| if i == 0 { c.to_ascii_uppercase() } else { c }).collect(),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

impl ArticleMeta {
    /// Appeal on `day` (offset from the first simulated day): ramps up in the launch week, fades with the
    /// article's half-life down to its floor, and follows its type's season.
    pub fn appeal_on(&self, day: i32, day_of_year: u32, spec: &TypeSpec) -> f64 {
        if day < self.launch || day > self.retire {
            return 0.0;
        }
        let weeks = f64::from(day - self.launch) / 7.0;
        let ramp = if weeks < 1.0 { 0.6 + 0.4 * weeks } else { 1.0 };
        let fade = f64::from(self.floor) + (1.0 - f64::from(self.floor)) * 0.5f64.powf(weeks / f64::from(self.half_life_weeks));
        let phase = 2.0 * std::f64::consts::PI * (f64::from(day_of_year) - 196.0) / 365.0;
        let season = 1.0 + 0.8 * f64::from(spec.season) * phase.cos();
        f64::from(self.appeal) * ramp * fade * season.max(0.05)
    }
}
