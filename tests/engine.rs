//! The engine without Kafka: checkpoint restore is exact, the same input gives the same lists, and the engine
//! beats the strong heuristic baseline in the backtest.

mod common;

use streamrec::config::EmitPolicy;
use streamrec::events::{dataset_events, Event, Recommendation, TxEvent};
use streamrec::pipeline::Pipeline;
use streamrec::serve::checkpoint::{self, Checkpoint};

fn run(p: &mut Pipeline, evs: &[Event]) -> Vec<Recommendation> {
    let mut out = Vec::new();
    for e in evs {
        out.extend(p.step(e.clone()));
    }
    out
}

/// Serve applies what it reads in batches with cache hints ahead (`step_batch`): the lists are the ones stepping
/// one purchase at a time gives, in the same order, and so is the state.
#[test]
fn batches_give_the_same_lists_as_single_steps() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::load(&common::tiny(dir.path(), 12));
    let mut cfg = common::config();
    for emit in [EmitPolicy::Basket, EmitPolicy::Event] {
        cfg.engine.emit = emit;
        let evs: Vec<Event> = dataset_events(&data).collect();
        let (reference, txs): (Vec<Event>, Vec<Event>) = evs.into_iter().partition(|e| !matches!(e, Event::Transaction(_)));
        let txs: Vec<TxEvent> = txs.into_iter().filter_map(|e| if let Event::Transaction(t) = e { Some(t) } else { None }).collect();
        let mut one = Pipeline::new(&cfg).unwrap();
        run(&mut one, &reference);
        let mut want = Vec::new();
        for t in &txs {
            want.extend(one.step(Event::Transaction(*t)));
        }
        let mut many = Pipeline::new(&cfg).unwrap();
        run(&mut many, &reference);
        let mut got = Vec::new();
        // Uneven chunks: a batch boundary may fall anywhere in a basket.
        for chunk in txs.chunks(37) {
            many.step_batch(chunk, &mut got);
        }
        assert!(want.len() > 1000, "{emit:?}: {} lists", want.len());
        assert_eq!(got, want, "{emit:?}");
        assert_eq!(many.state.users, one.state.users);
        assert_eq!(many.state.items.trending, one.state.items.trending);
    }
}

#[test]
fn same_input_same_lists_and_checkpoint_restore_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::load(&common::tiny(dir.path(), 11));
    let cfg = common::config();
    let evs: Vec<Event> = dataset_events(&data).collect();
    let mut a = Pipeline::new(&cfg).unwrap();
    let mut whole = run(&mut a, &evs);
    whole.extend(a.finish());
    let mut b = Pipeline::new(&cfg).unwrap();
    let mut again = run(&mut b, &evs);
    again.extend(b.finish());
    assert_eq!(whole, again, "same input, same lists in the same order");
    assert!(whole.len() > 1000);

    // Stop at an arbitrary point mid-day, checkpoint, restore into a fresh pipeline, continue.
    let cut = evs.len() * 3 / 5 + 17;
    let mut c = Pipeline::new(&cfg).unwrap();
    let mut got = run(&mut c, &evs[..cut]);
    let (open, day) = c.open_state();
    let ck = Checkpoint {
        state: c.state.clone(),
        customer_keys: (0..c.state.ids.len() as u32).map(|i| *c.state.ids.key(i)).collect(),
        open_baskets: open,
        open_day: day,
        tx_offsets: vec![],
        ref_offsets: vec![],
        recommendations_sent: 0,
    };
    checkpoint::write(dir.path(), &ck).unwrap();
    drop(c);
    let back = checkpoint::read(dir.path()).unwrap().unwrap();
    let mut d = Pipeline::with_parts(back.state, Box::new(streamrec::ranker::BlendRanker::new(&cfg.ranker).unwrap()), &cfg);
    d.restore_open(back.open_baskets, back.open_day);
    got.extend(run(&mut d, &evs[cut..]));
    got.extend(d.finish());
    assert_eq!(got.len(), whole.len());
    for (x, y) in got.iter().zip(&whole) {
        assert_eq!(x, y, "list after restore differs");
    }
}

#[test]
fn engine_beats_the_strong_heuristic_baseline_on_small_synthetic_data() {
    use streamrec::backtest::{self, baselines, engine::EngineRecommender, BacktestOptions, Recommender};
    use streamrec::generate::Scale;
    let dir = tempfile::tempdir().unwrap();
    common::gen(dir.path(), Scale::Small.params(), 42, streamrec::data::write::Format::Csv);
    let data = common::load(dir.path());
    let cfg = common::config();
    let b = &cfg.backtest;
    let mut methods: Vec<Box<dyn Recommender>> = vec![
        Box::new(baselines::RepurchaseCoPurchase::new(b.repurchase_window_days, b.copurchase_window_days)),
        Box::new(EngineRecommender::new(cfg.clone())),
    ];
    let opts = BacktestOptions { weeks: 2, end: None, k: 12, out: None };
    let cells = backtest::run(&data, &mut methods, &opts, &|_| {}).unwrap();
    let mean = |m: &str| backtest::report::mean_map(&cells, m);
    let (base, engine) = (mean("repurchase_copurchase"), mean("engine"));
    assert!(engine > base * 1.02, "engine MAP@12 {engine:.5} should beat repurchase_copurchase {base:.5}");
}
