//! The generator's knobs: every rate and shape parameter of the synthetic world in one validated settings value.
//! The defaults are calibrated so that `generate --scale full` matches the real H&M statistics that
//! `stats --profile` prints (see BENCHMARKS.md); `generate --knobs FILE` overrides any of them from TOML, to shape
//! another world or to re-calibrate.

use serde::Deserialize;

/// Shape of the catalogue: appeal, life cycle, time on sale.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogKnobs {
    /// Sigma of the log-normal base appeal of a product (the spread of popularity between products).
    pub appeal_sigma: f64,
    /// Sigma of the log-normal factor each colour variant multiplies its product's appeal by.
    pub variant_appeal_sigma: f64,
    /// Median weeks for a product's appeal to halve after launch (log-normal across products).
    pub half_life_weeks: f64,
    /// Sigma of the log-normal half-life.
    pub half_life_sigma: f64,
    /// Share of products that are basics: their appeal fades only to `basic_floor` and they stay on sale longer.
    pub basic_share: f64,
    /// Share of peak appeal a basic keeps after its fashion wave.
    pub basic_floor: f64,
    /// Share of peak appeal any other product keeps until it leaves the shop.
    pub fade_floor: f64,
    /// Median weeks a product stays on sale (log-normal across products); basics stay `basic_life_factor` times
    /// longer. Launches spread evenly from this long before the first day, so the shop is as full on every day.
    pub life_weeks: f64,
    /// Sigma of the log-normal time on sale.
    pub life_sigma: f64,
    /// How much longer basics stay on sale.
    pub basic_life_factor: f64,
}

impl Default for CatalogKnobs {
    fn default() -> Self {
        CatalogKnobs {
            appeal_sigma: 0.9,
            variant_appeal_sigma: 0.35,
            half_life_weeks: 1.0,
            half_life_sigma: 0.4,
            basic_share: 0.04,
            basic_floor: 0.2,
            fade_floor: 0.015,
            life_weeks: 24.0,
            life_sigma: 0.5,
            basic_life_factor: 3.0,
        }
    }
}

/// The customers: how often they buy and when they start.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PopulationKnobs {
    /// Sigma of the log-normal purchase rate across customers (heavier tail: more one-time buyers and more
    /// frequent ones).
    pub rate_sigma: f64,
    /// Purchase rates are capped at this multiple of the median rate (the most frequent buyers still come back
    /// every few weeks, not every day).
    pub rate_cap: f64,
    /// Share of customers who can buy from the first day; the others join on a uniformly drawn day. Every customer
    /// makes one first visit (on the day they join, or on a uniformly drawn day for those there from the start),
    /// so every customer in the file has bought, as in the real data; further visits follow their rate.
    pub joined_at_start: f64,
}

impl Default for PopulationKnobs {
    fn default() -> Self {
        PopulationKnobs { rate_sigma: 1.95, rate_cap: 8.0, joined_at_start: 0.3 }
    }
}

/// A visit's basket: its anchor, what fills it, units per article.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BasketKnobs {
    /// Rows a visit yields on average (distinct articles × units); sets the number of visits per day so that the
    /// total meets the scale's rows. Re-measure it when the basket knobs change.
    pub rows_per_visit: f64,
    /// Chance that a basket holds one more article (geometric, at most 8).
    pub continue_prob: f64,
    /// Anchor: chance of buying one of their own recent purchases again (or in another colour) when their last
    /// purchase is at most 28 days old, and when it is older.
    pub repurchase_recent: f64,
    pub repurchase_old: f64,
    /// Anchor: chance of buying another colour of one of their last purchases (whenever it was bought).
    pub owned_variant: f64,
    /// Anchor: chance of completing the look of a purchase of the last 28 days (a partner product).
    pub complete_look: f64,
    /// Anchor: chance of shopping one of their favourite product types (else what their age band buys this week).
    pub favourite_type: f64,
    /// Filling: chances of a colour variant of the anchor, a partner product, a complementary type and one of their
    /// own purchases; the rest is what their age band buys this week.
    pub fill_variant: f64,
    pub fill_partner: f64,
    pub fill_complement: f64,
    pub fill_history: f64,
    /// A purchase from history comes back in another colour with this chance.
    pub history_variant: f64,
    /// Chance of going one purchase further back in history (newer purchases are likelier).
    pub history_depth: f64,
    /// Chances that an article's row comes in two or in three units (repeated rows).
    pub two_units: f64,
    pub three_units: f64,
    /// The yearly wave of shopping volume: relative amplitude, and the day of the year it peaks on.
    pub season_amplitude: f64,
    pub season_peak_day: f64,
}

impl Default for BasketKnobs {
    fn default() -> Self {
        BasketKnobs {
            rows_per_visit: 2.965,
            continue_prob: 0.69,
            repurchase_recent: 0.15,
            repurchase_old: 0.02,
            owned_variant: 0.07,
            complete_look: 0.12,
            favourite_type: 0.6,
            fill_variant: 0.11,
            fill_partner: 0.30,
            fill_complement: 0.15,
            fill_history: 0.045,
            history_variant: 0.85,
            history_depth: 0.4,
            two_units: 0.079,
            three_units: 0.015,
            season_amplitude: 0.3,
            season_peak_day: 120.0,
        }
    }
}

/// All of the generator's knobs.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Knobs {
    pub catalog: CatalogKnobs,
    pub population: PopulationKnobs,
    pub basket: BasketKnobs,
}

#[derive(Debug, thiserror::Error)]
pub enum KnobsError {
    #[error("reading generator knobs {path}: {source}")]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("generator knobs {path}: {source}")]
    Parse { path: std::path::PathBuf, source: toml::de::Error },
    #[error("generator knob {name} = {value}: {why}")]
    Invalid { name: &'static str, value: f64, why: &'static str },
}

impl Knobs {
    /// The defaults with the keys of a TOML file laid over them, validated.
    pub fn from_file(path: &std::path::Path) -> Result<Knobs, KnobsError> {
        let text = std::fs::read_to_string(path).map_err(|source| KnobsError::Read { path: path.to_path_buf(), source })?;
        let k: Knobs = toml::from_str(&text).map_err(|source| KnobsError::Parse { path: path.to_path_buf(), source })?;
        k.validate()?;
        Ok(k)
    }

    pub fn validate(&self) -> Result<(), KnobsError> {
        let c = &self.catalog;
        let p = &self.population;
        let b = &self.basket;
        let probs = [
            ("catalog.basic_share", c.basic_share),
            ("catalog.basic_floor", c.basic_floor),
            ("catalog.fade_floor", c.fade_floor),
            ("population.joined_at_start", p.joined_at_start),
            ("basket.continue_prob", b.continue_prob),
            ("basket.repurchase_recent", b.repurchase_recent),
            ("basket.repurchase_old", b.repurchase_old),
            ("basket.complete_look", b.complete_look),
            ("basket.owned_variant", b.owned_variant),
            ("basket.favourite_type", b.favourite_type),
            ("basket.history_variant", b.history_variant),
            ("basket.fill_variant", b.fill_variant),
            ("basket.fill_partner", b.fill_partner),
            ("basket.fill_complement", b.fill_complement),
            ("basket.fill_history", b.fill_history),
            ("basket.history_depth", b.history_depth),
            ("basket.two_units", b.two_units),
            ("basket.three_units", b.three_units),
            ("basket.season_amplitude", b.season_amplitude),
        ];
        let probability = |v: f64| (0.0..=1.0).contains(&v);
        check(&probs, probability, "must be a probability in [0, 1]")?;
        let positive = [
            ("catalog.appeal_sigma", c.appeal_sigma),
            ("catalog.variant_appeal_sigma", c.variant_appeal_sigma),
            ("catalog.half_life_weeks", c.half_life_weeks),
            ("catalog.half_life_sigma", c.half_life_sigma),
            ("catalog.life_weeks", c.life_weeks),
            ("catalog.life_sigma", c.life_sigma),
            ("catalog.basic_life_factor", c.basic_life_factor),
            ("population.rate_sigma", p.rate_sigma),
            ("population.rate_cap", p.rate_cap),
            ("basket.rows_per_visit", b.rows_per_visit),
        ];
        check(&positive, |v| v.is_finite() && v > 0.0, "must be a finite number > 0")?;
        let sums = [
            ("basket.repurchase_recent + owned_variant + complete_look", b.repurchase_recent + b.owned_variant + b.complete_look),
            ("basket.repurchase_old + owned_variant", b.repurchase_old + b.owned_variant),
            ("basket.fill_variant + fill_partner + fill_complement + fill_history", b.fill_variant + b.fill_partner + b.fill_complement + b.fill_history),
            ("basket.two_units + three_units", b.two_units + b.three_units),
        ];
        check(&sums, probability, "the shares add up to more than 1")?;
        check(&[("basket.season_peak_day", b.season_peak_day)], |v| (0.0..=366.0).contains(&v), "must be a day of the year, 0..=366")
    }
}

/// The first knob of `knobs` whose value `ok` rejects, as an error saying `why`.
fn check(knobs: &[(&'static str, f64)], ok: impl Fn(f64) -> bool, why: &'static str) -> Result<(), KnobsError> {
    match knobs.iter().find(|(_, value)| !ok(*value)) {
        Some(&(name, value)) => Err(KnobsError::Invalid { name, value, why }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("knobs.toml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn defaults_are_valid_and_a_file_overrides_only_its_keys() {
        Knobs::default().validate().expect("the calibrated defaults");
        let (_d, path) = file("[basket]\ncontinue_prob = 0.5\n[population]\nrate_sigma = 1.0\n");
        let k = Knobs::from_file(&path).expect("valid");
        assert_eq!((k.basket.continue_prob, k.population.rate_sigma), (0.5, 1.0));
        assert_eq!(k.catalog, CatalogKnobs::default());
        assert_eq!(k.basket.two_units, BasketKnobs::default().two_units);
    }

    #[test]
    fn bad_knobs_are_clear_errors() {
        for (text, want) in [
            ("[basket]\ncontinue_prob = 1.5\n", "basket.continue_prob = 1.5: must be a probability"),
            ("[catalog]\nlife_weeks = 0\n", "catalog.life_weeks = 0: must be a finite number > 0"),
            ("[basket]\nfill_variant = 0.6\nfill_partner = 0.6\n", "add up to more than 1"),
            ("[basket]\nsession_peak_day = 3\n", "unknown field `session_peak_day`"),
            ("[basket\n", "generator knobs"),
        ] {
            let (_d, path) = file(text);
            let e = Knobs::from_file(&path).expect_err(text).to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = Knobs::from_file(std::path::Path::new("/nonexistent/knobs.toml")).expect_err("missing").to_string();
        assert!(e.contains("reading generator knobs /nonexistent/knobs.toml"), "{e}");
    }
}
