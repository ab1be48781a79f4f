//! `aurora ingest`: the HTTP ingest API.

use std::net::SocketAddr;

use anyhow::Context;
use aurora_common::{KafkaArgs, TopicArgs};
use aurora_producer::{Encoding, EventProducer};
use clap::Args;

use super::shutdown_on_signal;
use super::topics::create;
use crate::metrics_server::MetricsArgs;

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    topics: TopicArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    /// Address the API listens on.
    #[arg(long, env = "AURORA_INGEST_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "AURORA_INGEST_MAX_BODY_BYTES", default_value_t = aurora_producer::ingest::DEFAULT_MAX_BODY_BYTES as u64, value_parser = clap::value_parser!(u64).range(1..))]
    max_body_bytes: u64,
    /// Time to wait for the broker to acknowledge an event before responding 503.
    #[arg(long, env = "AURORA_INGEST_PRODUCE_TIMEOUT", default_value = "10s", value_parser = aurora_common::config::parse_positive_duration)]
    produce_timeout: std::time::Duration,
}

pub async fn run(kafka: &KafkaArgs, args: IngestArgs) -> anyhow::Result<()> {
    create(kafka, &args.topics).await?;
    let mut kafka = kafka.clone();
    let timeout_ms = args.produce_timeout.as_millis().max(1).to_string();
    kafka
        .producer_properties
        .push(("message.timeout.ms".into(), timeout_ms));
    let producer = EventProducer::new(&kafka, "aurora-ingest", Encoding::Headers)?;
    let metrics = args.metrics.start().await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding the ingest API to {}", args.listen))?;
    aurora_producer::ingest::serve(
        listener,
        producer,
        args.max_body_bytes as usize,
        metrics.ingest(),
        shutdown_on_signal(),
    )
    .await?;
    Ok(())
}
