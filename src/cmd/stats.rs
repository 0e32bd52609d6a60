use super::DataArgs;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub data: DataArgs,
    /// Load only transactions_train (customers are interned from it; no articles or customers file read).
    #[arg(long)]
    pub only_transactions: bool,
    /// Also print the statistics that decide what a recommender can learn (basket sizes, popularity shape,
    /// repurchase, customer activity; exact definitions in src/data/profile.rs) beside the real H&M figures.
    #[arg(long)]
    pub profile: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let d = if a.only_transactions {
        streamrec::data::Dataset::load_transactions_only(&a.data.data, &a.data.options(), &|_| {})?
    } else {
        super::load(&a.data.data, &a.data.options())?
    };
    let secs = t0.elapsed().as_secs_f64();
    print!("{}", d.report);
    let rows = d.report.tx.rows as f64;
    let mb = d.report.tx.bytes as f64 / 1e6;
    println!("distinct customers in transactions: {}", {
        let mut seen = vec![false; d.ids.len()];
        d.transactions.customer.iter().for_each(|&c| seen[c as usize] = true);
        seen.iter().filter(|&&b| b).count()
    });
    if let (Some(f), Some(l)) = (d.transactions.first_day(), d.transactions.last_day()) {
        println!("days: {} .. {}", streamrec::data::format_day(f), streamrec::data::format_day(l));
    }
    println!(
        "loaded in {secs:.2} s: {:.2} M rows/s, {:.0} MB/s; data in memory {:.0} MB; peak RSS {:.0} MB",
        rows / secs / 1e6,
        mb / secs,
        d.heap_bytes() as f64 / 1e6,
        streamrec::memory::peak_rss_bytes().unwrap_or(0) as f64 / 1e6
    );
    if a.profile {
        let t0 = Instant::now();
        match streamrec::data::profile::Profile::compute(&d) {
            Some(p) => {
                println!(
                    "\nprofile ({} rows from {} buyers in the last week; computed in {:.1} s):",
                    p.last_week_rows,
                    p.last_week_buyers,
                    t0.elapsed().as_secs_f64()
                );
                print!("{}", p.table());
            }
            None => anyhow::bail!("no transactions in {}: nothing to profile", a.data.data.display()),
        }
    }
    Ok(())
}
