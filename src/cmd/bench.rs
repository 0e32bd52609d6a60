//! `streamrec bench`: end-to-end figures for BENCHMARKS.md, in process (no broker): the state update rate
//! (one core), a full replay of the file through the pipeline with a list per closed basket, and memory.

use super::DataArgs;
use std::time::Instant;
use streamrec::config::Config;
use streamrec::events::{dataset_events, TxEvent};
use streamrec::pipeline::Pipeline;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub data: DataArgs,
    /// Settings file laid over config/default.toml.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Skip the full pipeline run (lists per basket) and measure only the state update.
    #[arg(long)]
    pub state_only: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = Config::load(a.config.as_deref())?;
    let data = super::load(&a.data.data, &a.data.options())?;
    // Reference data is applied untimed; purchases are built up front so only the engine is timed.
    let n_reference = data.articles.len() + data.customers.len();
    let reference = |p: &mut Pipeline| dataset_events(&data).take(n_reference).for_each(|e| p.apply(&e));
    let events: Vec<TxEvent> = (0..data.transactions.len()).map(|i| TxEvent::of_row(&data, i)).collect();
    println!("| measure | events | lists | wall s | events/s | note |");
    println!("|---|---|---|---|---|---|");
    // Before the engine exists: the growth from here is the engine's (catalogue and customers included).
    let rss0 = streamrec::memory::rss_bytes().unwrap_or(0);
    let mut p = Pipeline::new(&cfg.core())?;
    reference(&mut p);
    let t0 = Instant::now();
    const CHUNK: usize = 4096;
    let mut customers_of = Vec::with_capacity(CHUNK);
    for chunk in events.chunks(CHUNK) {
        customers_of.clear();
        p.state.apply_batch(chunk, &mut customers_of);
    }
    let secs = t0.elapsed().as_secs_f64();
    println!("| state update (1 thread) | {} | 0 | {:.2} | {:.0} | user + item + co-purchase state |", events.len(), secs, events.len() as f64 / secs);
    let heap = p.state.heap_bytes();
    let customers = p.state.users.len().max(1);
    let rss1 = streamrec::memory::rss_bytes().unwrap_or(0);
    println!(
        "| engine state memory | | | | | {:.0} MB heap ({:.0} B/customer over {customers} customers); process RSS {:.0} MB (+{:.0} MB for the engine) |",
        heap as f64 / 1e6,
        heap as f64 / customers as f64,
        rss1 as f64 / 1e6,
        rss1.saturating_sub(rss0) as f64 / 1e6
    );
    drop(p);
    if !a.state_only {
        let mut p = Pipeline::new(&cfg.core())?;
        reference(&mut p);
        let t0 = Instant::now();
        let mut lists = 0usize;
        let mut out = Vec::new();
        for chunk in events.chunks(CHUNK) {
            p.step_batch(chunk, &mut out);
            lists += out.len();
            out.clear();
        }
        lists += p.finish().len();
        let secs = t0.elapsed().as_secs_f64();
        println!("| full replay, list per basket (1 thread) | {} | {lists} | {:.1} | {:.0} | candidates + features + ranking per closed basket |", events.len(), secs, events.len() as f64 / secs);
    }
    println!("peak RSS {:.0} MB", streamrec::memory::peak_rss_bytes().unwrap_or(0) as f64 / 1e6);
    Ok(())
}
