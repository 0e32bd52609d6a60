//! The engine's state, updated one event at a time in event-time order: the catalogue, per-customer state
//! (indexed by interned customer), item statistics and co-purchase counts. Nothing here knows about Kafka or the
//! wall clock; the same events in the same order always give the same state.

pub mod catalog;
pub mod copurchase;
pub mod decay;
pub mod recent;
pub mod items;
pub mod toplist;
pub mod type_sellers;
pub mod user;

pub use catalog::Catalog;
pub use copurchase::CoPurchase;
pub use decay::{Decay, DecayConfig, DecayedSum};
pub use recent::{Recent, RECENT_CAP};
pub use items::ItemStats;
pub use type_sellers::TypeSellers;
pub use user::{age_band, Purchase, UserState, BANDS};

use crate::data::prefetch;
use crate::data::{ArticleIdx, CustomerIds, CustomerIdx, CustomerKey, CustomerRow, Day};
use crate::events::TxEvent;
use serde::{Deserialize, Serialize};

/// The parameters state updates need, taken from the engine's [`crate::Settings`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StateParams {
    pub recent_max: usize,
    pub copurchase_days: u16,
    pub seeds: usize,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct State {
    pub params: StateParams,
    pub catalog: Catalog,
    /// Interned customers; serialised as the key list and rebuilt on restore.
    #[serde(skip)]
    pub ids: CustomerIds,
    pub users: Vec<UserState>,
    pub items: ItemStats,
    pub copurchase: CoPurchase,
    /// Each product type's best sellers (derived daily from `items` and `catalog`; rebuilt after a restore).
    #[serde(skip)]
    pub type_sellers: TypeSellers,
    pub user_decay: Decay,
    pub affinity_decay: Decay,
    /// Event time: the latest day seen (lists are as of this day).
    pub clock: Day,
    /// Transactions applied so far.
    pub events: u64,
    /// Customers first seen in a purchase (no customers row yet).
    pub unknown_customers: u64,
}

impl State {
    pub fn new(cfg: &crate::Settings) -> Self {
        State {
            params: StateParams {
                recent_max: cfg.engine.recent_max,
                copurchase_days: cfg.candidates.copurchase_days,
                seeds: cfg.candidates.seeds,
            },
            catalog: Catalog::default(),
            ids: CustomerIds::with_capacity(1024),
            users: Vec::new(),
            items: ItemStats::new(cfg.decay.item_half_lives_days),
            copurchase: CoPurchase::new(cfg.decay.copurchase_half_life_days, cfg.candidates.copurchase_keep),
            type_sellers: TypeSellers::default(),
            user_decay: Decay::new(cfg.decay.user_half_life_days),
            affinity_decay: Decay::new(cfg.decay.affinity_half_life_days),
            clock: 0,
            events: 0,
            unknown_customers: 0,
        }
    }

    pub fn customer(&self, key: &CustomerKey) -> Option<CustomerIdx> {
        self.ids.get(key)
    }

    fn intern(&mut self, key: CustomerKey) -> (CustomerIdx, bool) {
        let (idx, new) = self.ids.intern(key);
        if new {
            self.users.push(UserState::new(user::UNKNOWN_BAND));
        }
        (idx, new)
    }

    pub fn apply_customer(&mut self, row: &CustomerRow) {
        let (idx, _) = self.intern(CustomerKey(row.key));
        self.users[idx as usize].band = age_band(row.age);
    }

    pub fn apply_article(&mut self, a: crate::data::Article) -> ArticleIdx {
        let idx = self.catalog.upsert(a);
        self.ensure_items();
        idx
    }

    fn ensure_items(&mut self) {
        let n = self.catalog.len();
        self.items.ensure(n);
        self.copurchase.ensure(n);
    }

    /// Moves event time to `day`; entering a new day rebuilds the ranked item lists.
    pub fn advance_to(&mut self, day: Day) {
        self.clock = self.clock.max(day);
        if self.items.lists_day != self.clock || self.items.trending.is_empty() {
            self.items.rebuild_lists(self.clock);
        }
        if self.type_sellers.day != Some(self.clock) {
            self.type_sellers.rebuild(&self.items, &self.catalog, self.clock);
        }
    }

    /// Folds one purchase into user, item and co-purchase state. Returns the customer's index.
    pub fn apply_tx(&mut self, t: &TxEvent) -> CustomerIdx {
        self.apply_resolved(t, None, None)
    }

    /// [`State::apply_tx`] with the customer's and the article's indices when they were already looked up, as
    /// [`Lookahead::resolved`] gives them (indices never change once given, so an earlier lookup stays right).
    pub fn apply_resolved(&mut self, t: &TxEvent, customer: Option<CustomerIdx>, article: Option<ArticleIdx>) -> CustomerIdx {
        if t.day > self.clock {
            self.advance_to(t.day);
        }
        let c = match customer {
            Some(c) => c,
            None => {
                let (c, new) = self.intern(t.customer);
                if new {
                    self.unknown_customers += 1;
                }
                c
            }
        };
        let a = match article.or_else(|| self.catalog.idx(t.article_id)) {
            Some(a) => a,
            None => {
                let a = self.catalog.idx_or_placeholder(t.article_id);
                self.ensure_items();
                a
            }
        };
        let band = self.users[c as usize].band;
        self.items.record(a, t.day, band, t.price);
        // Co-purchase seeds: the customer's recent distinct purchases within the window, newest first.
        let window_start = t.day.saturating_sub(self.params.copurchase_days);
        let mut seen = 0usize;
        let user = &self.users[c as usize];
        for (i, p) in user.recent.iter().enumerate().rev() {
            if p.day < window_start || seen >= self.params.seeds {
                break;
            }
            if p.article == a || user.recent.iter().skip(i + 1).any(|q| q.article == p.article) {
                continue;
            }
            seen += 1;
            if p.day == t.day {
                self.copurchase.add(p.article, a, t.day, 1.0);
                self.copurchase.add(a, p.article, t.day, 1.0);
            } else {
                self.copurchase.add(p.article, a, t.day, copurchase::EARLIER_WEIGHT);
            }
        }
        let slots = self.catalog.attr_slots(a);
        let (ud, ad, max) = (&self.user_decay, &self.affinity_decay, self.params.recent_max);
        self.users[c as usize].record(Purchase { article: a, day: t.day }, t.price, t.channel == 2, slots, ud, ad, max);
        self.events += 1;
        c
    }

    /// Applies purchases in order, as [`State::apply_tx`] does one by one, while hinting the caches with what
    /// the purchases a few places ahead will touch (see [`Lookahead`]). Returns each purchase's customer.
    pub fn apply_batch(&mut self, events: &[TxEvent], out: &mut Vec<CustomerIdx>) {
        let mut ahead = Lookahead::new(events);
        for (i, t) in events.iter().enumerate() {
            ahead.before(self, i);
            let (c, a) = ahead.resolved(i);
            out.push(self.apply_resolved(t, c, a));
        }
    }

    /// Bytes held on the heap (for the bytes-per-customer figure).
    pub fn heap_bytes(&self) -> usize {
        self.catalog.heap_bytes()
            + self.ids.heap_bytes()
            + self.users.capacity() * std::mem::size_of::<UserState>()
            + self.items.heap_bytes()
            + self.copurchase.heap_bytes()
            + self.type_sellers.heap_bytes()
    }

    /// Whether a decoded state's parts agree with each other and with `keys` (one per customer), before
    /// [`State::restore_ids`] builds indices from them: a checkpoint that decodes but does not hang together is
    /// refused, not followed into an out-of-range index.
    pub fn check(&self, keys: usize) -> Result<(), String> {
        if keys != self.users.len() {
            return Err(format!("{keys} customer keys for {} customer states", self.users.len()));
        }
        let n = self.catalog.check()?;
        self.items.check(n).map_err(|e| format!("item statistics: {e}"))?;
        self.copurchase.check(n).map_err(|e| format!("co-purchases: {e}"))?;
        for (i, u) in self.users.iter().enumerate() {
            u.check(n).map_err(|e| format!("customer {i}: {e}"))?;
        }
        self.user_decay.check().map_err(|e| format!("customer decay: {e}"))?;
        self.affinity_decay.check().map_err(|e| format!("affinity decay: {e}"))
    }

    /// Rebuilds what a checkpoint does not store (indices) from `keys`; refuses keys that name a customer twice
    /// (after [`State::check`]: the state is left as it was).
    pub fn restore_ids(&mut self, keys: &[CustomerKey]) -> Result<(), String> {
        let mut ids = CustomerIds::with_capacity(keys.len().max(1024));
        for (i, k) in keys.iter().enumerate() {
            if !ids.intern(*k).1 {
                return Err(format!("customer key {i} repeats an earlier one"));
            }
        }
        self.ids = ids;
        self.catalog.reindex();
        // The window counts the type lists read are not stored: recount them (the item lists come out the same).
        self.items.rebuild_lists(self.clock);
        self.type_sellers.rebuild(&self.items, &self.catalog, self.clock);
        Ok(())
    }
}

/// Cache hints for a run of purchases applied in order. At full scale most of a purchase's time is spent
/// waiting on memory: the customer's and the article's table slots, the customer's state (history included),
/// the article's statistics and the seeds' co-purchase lists are each a cache miss, and each
/// address is only known once the one before it has arrived. Hinting them a few purchases ahead, one link of
/// the chain per step, lets the misses of several purchases overlap with the work in between. Hints change no
/// state: the result is identical with or without them.
pub struct Lookahead<'a> {
    events: &'a [TxEvent],
    /// (position, customer, article) of the purchases between the `ROWS` step and their application, in slot
    /// `position % RING`; `UNKNOWN` where the lookup found nothing.
    ring: [(usize, u32, u32); RING],
}

/// Purchases ahead at which each step's hints are given: table slots, then rows (the customer's whole state,
/// the article's statistics), then the ranked sets' entries for the customer's age band, then the seeds'
/// co-purchase headers, then their partner lists.
const SLOTS: usize = 14;
const ROWS: usize = 10;
const BAND: usize = 6;
const SEEDS: usize = 3;
const PARTNERS: usize = 2;
const RING: usize = 16;
const UNKNOWN: u32 = u32::MAX;

impl<'a> Lookahead<'a> {
    pub fn new(events: &'a [TxEvent]) -> Self {
        Lookahead { events, ring: [(usize::MAX, UNKNOWN, UNKNOWN); RING] }
    }

    /// The customer and article of `events[i]` as looked up at the `ROWS` step (None: not known then).
    #[inline]
    pub fn resolved(&self, i: usize) -> (Option<CustomerIdx>, Option<ArticleIdx>) {
        let (pos, c, a) = self.ring[i % RING];
        if pos != i {
            return (None, None);
        }
        ((c != UNKNOWN).then_some(c), (a != UNKNOWN).then_some(a))
    }

    /// Hints for the purchases ahead of position `i` (call before applying `events[i]`).
    #[inline]
    pub fn before(&mut self, state: &State, i: usize) {
        const _: () = assert!(std::mem::size_of::<UserState>() == 384 && std::mem::size_of::<items::ItemStat>() == 128);
        // Purchases of one basket follow each other: a customer like the one before needs no second lookup.
        let after_same = |k: usize| k > 0 && self.events.get(k - 1).zip(self.events.get(k)).is_some_and(|(p, t)| p.customer == t.customer);
        if let Some(t) = self.events.get(i + SLOTS) {
            if !after_same(i + SLOTS) {
                state.ids.prefetch(&t.customer);
            }
            state.catalog.prefetch_id(t.article_id);
        }
        if let Some(t) = self.events.get(i + ROWS) {
            let before = self.ring[(i + ROWS - 1) % RING];
            let c = if before.0 == i + ROWS - 1 && after_same(i + ROWS) {
                before.1
            } else {
                state.ids.get(&t.customer).unwrap_or(UNKNOWN)
            };
            let a = state.catalog.idx(t.article_id).unwrap_or(UNKNOWN);
            self.ring[(i + ROWS) % RING] = (i + ROWS, c, a);
            state.prefetch_rows(c, a);
        }
        let user = |k: usize| self.events.get(i + k).and_then(|t| Some((t, state.users.get(self.ring[(i + k) % RING].1 as usize)?)));
        if let Some((_, u)) = user(BAND) {
            state.items.prefetch_sale(self.ring[(i + BAND) % RING].2, u.band);
        }
        if let Some((t, u)) = user(SEEDS) {
            state.seeds(u, t.day).for_each(|a| state.copurchase.prefetch(a));
            state.copurchase.prefetch_items(self.ring[(i + SEEDS) % RING].2, t.day);
        }
        if let Some((t, u)) = user(PARTNERS) {
            state.seeds(u, t.day).for_each(|a| state.copurchase.prefetch_items(a, t.day));
        }
    }
}

impl State {
    /// The customer's state and the article's item and co-purchase rows.
    #[inline]
    fn prefetch_rows(&self, c: CustomerIdx, a: ArticleIdx) {
        if (c as usize) < self.users.len() {
            let u = self.users.as_ptr().wrapping_add(c as usize) as *const u8;
            for line in (0..std::mem::size_of::<UserState>()).step_by(64) {
                prefetch(u.wrapping_add(line));
            }
        }
        if a != UNKNOWN {
            self.items.prefetch(a);
            self.copurchase.prefetch(a);
            self.catalog.prefetch_slots(a);
        }
    }

    /// The articles a purchase on `day` by `u` will likely pair with: its newest purchases within the window
    /// (`apply_tx` also skips repeats and may reach further back; these are only hints).
    #[inline]
    fn seeds<'u>(&self, u: &'u UserState, day: Day) -> impl Iterator<Item = ArticleIdx> + 'u {
        let window_start = day.saturating_sub(self.params.copurchase_days);
        u.recent.iter().rev().take(self.params.seeds).take_while(move |p| p.day >= window_start).map(|p| p.article)
    }
}
