use super::kafka_args::{shutdown_on_signal, KafkaArgs};
use streamrec::kafka::{embedded::EmbeddedBroker, topic_specs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// Runs librdkafka's mock cluster as a development broker; prints `bootstrap=HOST:PORT` first.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let cfg = a.kafka.config()?;
    let broker = EmbeddedBroker::start(&topic_specs(&cfg))?;
    println!("bootstrap={}", broker.bootstrap());
    use std::io::Write;
    std::io::stdout().flush()?;
    eprintln!("embedded development broker (librdkafka mock cluster) with topics created; Ctrl-C stops it");
    let mut stop = shutdown_on_signal();
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    drop(broker);
    Ok(())
}
