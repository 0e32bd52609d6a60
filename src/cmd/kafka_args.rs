//! Flags every Kafka-facing command shares: `--brokers` and `--config`, turned into one validated [`Config`].

use std::path::PathBuf;
use streamrec::config::Config;

#[derive(clap::Args, Debug, Clone)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers HOST:PORT[,HOST:PORT] (default: [kafka] brokers in the config).
    #[arg(long, env = "STREAMREC_BROKERS")]
    pub brokers: Option<String>,
    /// Settings file laid over config/default.toml (then STREAMREC__SECTION__KEY env vars, then flags).
    #[arg(long, env = "STREAMREC_CONFIG")]
    pub config: Option<PathBuf>,
}

impl KafkaArgs {
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut cfg = Config::load(self.config.as_deref())?;
        if let Some(b) = &self.brokers {
            cfg.kafka.brokers = b.clone();
        }
        Ok(cfg)
    }
}

/// A watch channel that turns true on Ctrl-C (or SIGTERM).
pub fn shutdown_on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    let _ = tx.send(true);
                    return;
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("stopping…");
        let _ = tx.send(true);
    });
    rx
}
