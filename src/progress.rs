//! Progress bars for long steps (hidden automatically when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

fn bar(total: u64, msg: &str, counts: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    let template = format!("{{msg:>12}} [{{bar:30}}] {counts} eta {{eta}}");
    pb.set_style(ProgressStyle::with_template(&template).expect("static template").progress_chars("=> "));
    pb.set_message(msg.to_string());
    pb
}

/// A bar over bytes (file reading).
pub fn bytes(total: u64, msg: &str) -> ProgressBar {
    bar(total, msg, "{bytes}/{total_bytes} {bytes_per_sec}")
}

/// A bar over items (days, rows).
pub fn count(total: u64, msg: &str) -> ProgressBar {
    bar(total, msg, "{human_pos}/{human_len} {per_sec}")
}
