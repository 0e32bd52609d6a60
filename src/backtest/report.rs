//! Backtest output: a method × week table (MAP@12 and recall@12) for the terminal, report.md, and a PNG plot.

use super::Cell;
use crate::data::{format_day, DataError, Day};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn methods(cells: &[Cell]) -> Vec<&str> {
    let mut m: Vec<&str> = Vec::new();
    for c in cells {
        if !m.contains(&c.method.as_str()) {
            m.push(&c.method);
        }
    }
    m
}

fn weeks(cells: &[Cell]) -> Vec<Day> {
    let mut w: Vec<Day> = cells.iter().map(|c| c.week_start).collect();
    w.sort_unstable();
    w.dedup();
    w
}

fn cell<'a>(cells: &'a [Cell], method: &str, week: Day) -> Option<&'a Cell> {
    cells.iter().find(|c| c.method == method && c.week_start == week)
}

/// Mean MAP@12 of a method over the weeks.
pub fn mean_map(cells: &[Cell], method: &str) -> f64 {
    let v: Vec<f64> = cells.iter().filter(|c| c.method == method).map(|c| c.score.map).collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The backtest's summary for the operator's page (`[backtest] summary`): mean MAP@12 per method and candidate
/// recall per source over all the weeks (one entry per distinct candidate set: methods that differ only in
/// ranker share theirs), with the data it ran on.
pub fn summary(cells: &[Cell], data: &str) -> serde_json::Value {
    use crate::events::SOURCE_NAMES;
    let map12: serde_json::Map<String, serde_json::Value> = methods(cells).into_iter().map(|m| (m.to_string(), mean_map(cells, m).into())).collect();
    let mut recall: Vec<(String, super::recall::Recall)> = Vec::new();
    for m in methods(cells) {
        let mut total = super::recall::Recall::default();
        let mut any = false;
        for r in cells.iter().filter(|c| c.method == m).filter_map(|c| c.recall.as_ref()) {
            total.add(r);
            any = true;
        }
        if any && !recall.iter().any(|(_, r)| *r == total) {
            recall.push((m.to_string(), total));
        }
    }
    let recall: Vec<serde_json::Value> = recall
        .iter()
        .map(|(m, r)| {
            let per_source: serde_json::Map<String, serde_json::Value> = SOURCE_NAMES.iter().zip(&r.per_source).filter(|(_, &n)| n > 0).map(|(name, &n)| (name.to_string(), r.rate(n).into())).collect();
            serde_json::json!({
                "method": m,
                "any": r.rate(r.any),
                "per_source": per_source,
                "purchases": r.truth,
                "candidates_per_customer": r.candidates as f64 / r.customers.max(1) as f64,
            })
        })
        .collect();
    serde_json::json!({
        "data": data,
        "weeks": weeks(cells).into_iter().map(format_day).collect::<Vec<_>>(),
        "finished_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "map12": map12,
        "recall": recall,
    })
}

/// Plain-text table, one row per method, one `MAP@12 / recall@12` column per week, then the mean.
pub fn table(cells: &[Cell]) -> String {
    let ws = weeks(cells);
    let mut s = String::new();
    let _ = write!(s, "{:<24}", "method");
    for w in &ws {
        let _ = write!(s, " {:>21}", format!("{} MAP/rec", format_day(*w)));
    }
    let _ = writeln!(s, " {:>10}", "mean MAP");
    for m in methods(cells) {
        let _ = write!(s, "{m:<24}");
        for &w in &ws {
            match cell(cells, m, w) {
                Some(c) => {
                    let _ = write!(s, " {:>21}", format!("{:.5} / {:.4}", c.score.map, c.score.recall));
                }
                None => {
                    let _ = write!(s, " {:>21}", "-");
                }
            }
        }
        let _ = writeln!(s, " {:>10.5}", mean_map(cells, m));
    }
    s
}

/// Candidate recall per week for the methods that report it (one row per method and week), per source and in
/// total; empty when none does. Methods with identical candidates (same engine, other ranker) appear once.
pub fn recall_table(cells: &[Cell]) -> String {
    use crate::events::SOURCE_NAMES;
    let with: Vec<&Cell> = cells.iter().filter(|c| c.recall.is_some()).collect();
    let Some(first) = with.first() else { return String::new() };
    let shown: Vec<usize> = (0..SOURCE_NAMES.len()).filter(|&i| with.iter().any(|c| c.recall.as_ref().is_some_and(|r| r.per_source[i] > 0))).collect();
    let width = with.iter().map(|c| c.method.len()).max().unwrap_or(0).max(16);
    let mut s = format!("{:<12} {:<width$} {:>9}", "week", "method", "any");
    for &i in &shown {
        let _ = write!(s, " {:>12}", SOURCE_NAMES[i]);
    }
    let _ = writeln!(s, " {:>10}", "cand/cust");
    let mut seen: Vec<(Day, &super::recall::Recall)> = Vec::new();
    let _ = first;
    for c in with {
        let Some(r) = c.recall.as_ref() else { continue };
        if seen.iter().any(|(w, x)| *w == c.week_start && *x == r) {
            continue;
        }
        seen.push((c.week_start, r));
        let _ = write!(s, "{:<12} {:<width$} {:>9.4}", format_day(c.week_start), c.method, r.rate(r.any));
        for &i in &shown {
            let _ = write!(s, " {:>12.4}", r.rate(r.per_source[i]));
        }
        let _ = writeln!(s, " {:>10.1}", r.candidates as f64 / r.customers.max(1) as f64);
    }
    s
}

/// Markdown table as in [`table`], plus customers scored and timings.
pub fn markdown(cells: &[Cell], title: &str, notes: &str) -> String {
    let ws = weeks(cells);
    let mut s = format!("# {title}\n\n{notes}\n\n## MAP@12 (recall@12)\n\n| method |");
    for w in &ws {
        let _ = write!(s, " {} |", format_day(*w));
    }
    s.push_str(" mean MAP@12 |\n|---|");
    s.push_str(&"---|".repeat(ws.len() + 1));
    s.push('\n');
    for m in methods(cells) {
        let _ = write!(s, "| {m} |");
        for &w in &ws {
            match cell(cells, m, w) {
                Some(c) => {
                    let _ = write!(s, " {:.5} ({:.4}) |", c.score.map, c.score.recall);
                }
                None => s.push_str(" - |"),
            }
        }
        let _ = writeln!(s, " {:.5} |", mean_map(cells, m));
    }
    let recall = recall_table(cells);
    if !recall.is_empty() {
        let _ = write!(s, "\n## Candidate recall\n\nShare of each week's purchases (distinct customer × article) that the candidate sources proposed — the ceiling of any ranker over them.\n\n```\n{recall}```\n");
    }
    s.push_str("\n## Runs\n\n| week | method | customers scored | fit s | recommend s | predictions |\n|---|---|---|---|---|---|\n");
    for c in cells {
        let p = c.predictions.as_ref().and_then(|p| p.file_name()).map(|f| format!("predictions/{}", f.to_string_lossy())).unwrap_or_default();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} | {:.2} | {} |",
            format_day(c.week_start),
            c.method,
            c.score.customers,
            c.fit_secs,
            c.recommend_secs,
            p
        );
    }
    s
}

/// Fonts the plot can use, in order of preference (Debian's fonts-dejavu-core provides the first).
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

fn register_font() -> Result<(), String> {
    use std::sync::OnceLock;
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let path = FONT_PATHS.iter().find(|p| Path::new(p).is_file()).ok_or_else(|| {
            format!("no TrueType font found (looked in {}); install fonts-dejavu-core", FONT_PATHS.join(", "))
        })?;
        let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, leaked)
            .map_err(|_| format!("{path}: not a usable font"))
    })
    .clone()
}

/// MAP@12 per week, one line per method, as a PNG.
pub fn plot(cells: &[Cell], path: &Path) -> Result<PathBuf, DataError> {
    use plotters::prelude::*;
    let err = |m: String| DataError::write(path, std::io::Error::other(m));
    register_font().map_err(err)?;
    let ws = weeks(cells);
    let ms = methods(cells);
    let ymax = cells.iter().map(|c| c.score.map).fold(0.0f64, f64::max).max(1e-3) * 1.15;
    let root = BitMapBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let n = ws.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption("Backtest MAP@12 by week", ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.25f64..(n as f64 - 0.75).max(0.25), 0f64..ymax)
        .map_err(|e| err(e.to_string()))?;
    let labels = ws.clone();
    chart
        .configure_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).map(|d| format_day(*d)).unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("MAP@12")
        .x_desc("week starting")
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for (mi, m) in ms.iter().enumerate() {
        let colour = Palette99::pick(mi).to_rgba();
        let pts: Vec<(f64, f64)> =
            ws.iter().enumerate().filter_map(|(i, w)| cell(cells, m, *w).map(|c| (i as f64, c.score.map))).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(*m)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, colour.filled()))).map_err(|e| err(e.to_string()))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(path.to_path_buf())
}
