use streamrec::data::write::Format;
use streamrec::data::format_day;
use streamrec::generate::{generate, GenerateConfig, Scale};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// tiny (~2k customers, 8 weeks; a quick, uncalibrated fixture), small (87k customers, ~1M rows, 52 weeks) or full
    /// (1.37M customers, 31.8M rows, 105 weeks; calibrated to the real H&M statistics, `stats --profile`).
    #[arg(long, value_enum, default_value = "tiny")]
    pub scale: Scale,
    /// Random seed: the same seed and scale give byte-identical files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// File format: csv or parquet.
    #[arg(long, default_value = "csv")]
    pub format: Format,
    /// TOML file overriding the generator's knobs (rates and shapes of the synthetic world; see
    /// src/generate/knobs.rs for every key and its calibrated default), e.g. `[basket]\ncontinue_prob = 0.6`.
    #[arg(long)]
    pub knobs: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let knobs = match &a.knobs {
        Some(path) => streamrec::generate::Knobs::from_file(path)?,
        None => streamrec::generate::Knobs::default(),
    };
    let cfg = GenerateConfig { params: a.scale.params(), seed: a.seed, out: a.out.clone(), format: a.format, knobs };
    let t0 = Instant::now();
    let pb = streamrec::progress::count(u64::from(cfg.params.weeks) * 7, "days");
    let s = generate(&cfg, &|done, _| pb.set_position(done))?;
    pb.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "generated {} articles, {} customers, {} transactions ({} .. {}) in {:.1} s ({:.0} rows/s)",
        s.articles,
        s.customers,
        s.rows,
        format_day(s.first_day),
        format_day(s.last_day),
        secs,
        s.rows as f64 / secs
    );
    for f in &s.files {
        println!("  {}", f.display());
    }
    Ok(())
}
