//! `aurora produce`: send events from the command line.

use std::io::BufRead;

use anyhow::{bail, Context};
use aurora_common::KafkaArgs;
use aurora_producer::{Encoding, EventProducer, NewEvent};
use clap::{Args, ValueEnum};

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Event type, for example invoice.paid.
    #[arg(long = "type")]
    event_type: String,
    /// JSON payload; without it, each line of standard input is sent as one event.
    #[arg(long)]
    data: Option<String>,
    /// Event id (only with --data); a random one is generated when absent.
    #[arg(long)]
    id: Option<String>,
    /// Partition key; the event id when absent.
    #[arg(long)]
    key: Option<String>,
    /// Time to wait for the broker to acknowledge each event before failing.
    #[arg(long, default_value = "30s", value_parser = aurora_common::config::parse_positive_duration)]
    timeout: std::time::Duration,
    /// Encoding of the event: CloudEvents headers, or the aurora.Event Avro envelope.
    #[arg(long, value_enum, default_value = "headers")]
    encoding: EncodingArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EncodingArg {
    Headers,
    Avro,
}

pub async fn run(kafka: &KafkaArgs, args: ProduceArgs) -> anyhow::Result<()> {
    let encoding = match args.encoding {
        EncodingArg::Headers => Encoding::Headers,
        EncodingArg::Avro => Encoding::Avro,
    };
    let mut kafka = kafka.clone();
    let timeout_ms = args.timeout.as_millis().max(1).to_string();
    kafka
        .producer_properties
        .push(("message.timeout.ms".into(), timeout_ms));
    let events_topic = kafka.topics().events;
    let checked = kafka.clone();
    let timeout = args.timeout;
    tokio::task::spawn_blocking(move || {
        aurora_common::read::check_topic(&checked, &events_topic, timeout)
    })
    .await?
    .with_context(|| format!("checking the events topic on {}", kafka.bootstrap_servers))?;
    let producer = EventProducer::new(&kafka, "aurora-cli", encoding)?;
    let event = |id: Option<String>, payload: String| NewEvent {
        id,
        event_type: args.event_type.clone(),
        key: args.key.clone(),
        content_type: "application/json".into(),
        payload: payload.into_bytes(),
        tenant_id: None,
    };

    if let Some(data) = &args.data {
        let produced = producer
            .send(event(args.id.clone(), data.clone()))
            .await
            .map_err(|error| explain(error, &kafka, args.timeout))?;
        println!("{}", serde_json::to_string(&produced)?);
        return Ok(());
    }
    if args.id.is_some() {
        bail!("--id needs --data; events read from standard input get generated ids");
    }
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading standard input")?;
        if line.trim().is_empty() {
            continue;
        }
        let produced = producer
            .send(event(None, line))
            .await
            .map_err(|error| explain(error, &kafka, args.timeout))
            .with_context(|| format!("line {}", number + 1))?;
        println!("{}", serde_json::to_string(&produced)?);
    }
    Ok(())
}

/// Returns an invalid event's error as it is, and adds the broker to any other error.
fn explain(
    error: aurora_producer::Error,
    kafka: &KafkaArgs,
    timeout: std::time::Duration,
) -> anyhow::Error {
    match error {
        aurora_producer::Error::InvalidEvent(_) => error.into(),
        error => anyhow::Error::new(error).context(format!(
            "the event was not acknowledged by {} within {timeout:?}; check that the broker is reachable",
            kafka.bootstrap_servers
        )),
    }
}
