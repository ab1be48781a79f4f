//! `aurora dlq redrive`: sends dead-lettered deliveries of an endpoint back to delivery.

use std::time::Duration;

use anyhow::Context;
use aurora_common::produce::enqueue;
use aurora_common::read::{group_offsets, read_to_end};
use aurora_common::KafkaArgs;
use aurora_schemas::Delivery;
use clap::{Args, Subcommand};
use rdkafka::Message;

use crate::progress::Progress;

/// How long to wait for the broker before giving up.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Send an endpoint's dead-lettered deliveries back to the deliveries topic, with a fresh
    /// retry schedule. Enable the endpoint first, or they are dead-lettered again.
    Redrive(RedriveArgs),
}

#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// Endpoint whose dead letters are sent back.
    #[arg(long)]
    endpoint: String,
    /// Only dead letters written at or after this time, in UTC (such as 2026-12-04T10:00:00Z).
    #[arg(long, value_parser = parse_time_ms)]
    since: Option<i64>,
    /// Print what would be sent without sending it.
    #[arg(long)]
    dry_run: bool,
}

/// Parses an RFC 3339 time into epoch milliseconds.
pub fn parse_time_ms(text: &str) -> Result<i64, String> {
    let time = humantime::parse_rfc3339_weak(text.trim())
        .map_err(|error| format!("{text:?} is not a time such as 2026-12-04T10:00:00Z: {error}"))?;
    let since_epoch = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{text:?} is before 1970"))?;
    i64::try_from(since_epoch.as_millis()).map_err(|_| format!("{text:?} is too far in the future"))
}

pub async fn run(kafka: &KafkaArgs, command: DlqCommand) -> anyhow::Result<()> {
    let DlqCommand::Redrive(args) = command;
    let topics = kafka.topics();
    check_endpoint(kafka, &args.endpoint, args.dry_run).await?;
    let reader_kafka = kafka.clone();
    let dead_letter = topics.dead_letter.clone();
    let endpoint = args.endpoint.clone();
    let since = args.since;
    let found = tokio::task::spawn_blocking(move || {
        read_dead_letters(&reader_kafka, &dead_letter, &endpoint, since)
    })
    .await??;

    println!(
        "{} dead-lettered deliveries of endpoint {} to send back{}.",
        found.len(),
        args.endpoint,
        if args.dry_run {
            " (dry run, nothing sent)"
        } else {
            ""
        }
    );
    if args.dry_run || found.is_empty() {
        for delivery in &found {
            println!(
                "{} event {} ({})",
                delivery.delivery_id,
                delivery.event_id,
                delivery.dead_letter_reason.as_deref().unwrap_or("")
            );
        }
        return Ok(());
    }

    let producer = aurora_common::kafka::producer(kafka)?;
    let mut pending = Vec::with_capacity(found.len());
    for mut delivery in found {
        // A fresh schedule: the attempt history stays on the attempts topic.
        delivery.attempts.clear();
        delivery.not_before_ms = 0;
        delivery.dead_letter_reason = None;
        let value = aurora_schemas::encode(&delivery)?;
        pending.push(
            enqueue(
                &producer,
                &topics.deliveries,
                delivery.endpoint_id.as_bytes(),
                &value,
                None,
            )
            .await?,
        );
    }
    let total = pending.len();
    let mut progress = Progress::new("Sending back", total as u64);
    for (sent, record) in pending.into_iter().enumerate() {
        record.acked().await?;
        progress.set(sent as u64 + 1);
    }
    progress.finish();
    println!("Sent {total} deliveries back to {}.", topics.deliveries);
    Ok(())
}

/// Refuses to redrive to an endpoint that does not exist or is disabled, where every
/// delivery would be dead-lettered again.
async fn check_endpoint(kafka: &KafkaArgs, endpoint_id: &str, dry_run: bool) -> anyhow::Result<()> {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let table = aurora_common::SubscriptionTable::start(
        kafka,
        &kafka.topics().subscriptions,
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    match table?.get(endpoint_id) {
        None => anyhow::bail!("endpoint {endpoint_id} not found; `aurora endpoint list` shows the endpoints"),
        Some(endpoint) if !endpoint.enabled && !dry_run => anyhow::bail!(
            "endpoint {endpoint_id} is disabled, so redriven deliveries would be dead-lettered again; run `aurora endpoint enable --id {endpoint_id}` first"
        ),
        Some(endpoint) if !endpoint.enabled => {
            eprintln!("Warning: endpoint {endpoint_id} is disabled, so the real run will fail until `aurora endpoint enable --id {endpoint_id}` is run.");
            Ok(())
        }
        Some(_) => Ok(()),
    }
}

fn read_dead_letters(
    kafka: &KafkaArgs,
    topic: &str,
    endpoint: &str,
    since: Option<i64>,
) -> anyhow::Result<Vec<Delivery>> {
    let reader = kafka.group_id("dlq-redrive");
    let stored: i64 = group_offsets(kafka, &reader, topic, READ_TIMEOUT)
        .with_context(|| format!("reading the offsets of {topic}"))?
        .iter()
        .map(|offsets| offsets.high - offsets.low)
        .sum();
    let mut progress = Progress::new(format!("Reading {topic}"), stored.max(0) as u64);
    let mut read = 0;
    let mut found = Vec::new();
    read_to_end(kafka, topic, "dlq-redrive", READ_TIMEOUT, |message| {
        read += 1;
        progress.set(read);
        let written_ms = message.timestamp().to_millis().unwrap_or(0);
        if since.is_some_and(|since| written_ms < since) {
            return;
        }
        let Some(value) = message.payload() else {
            return;
        };
        match aurora_schemas::decode::<Delivery>(value) {
            Ok(delivery) if delivery.endpoint_id == endpoint => found.push(delivery),
            Ok(_) => {}
            Err(error) => eprintln!(
                "skipping {topic} partition {} offset {}: {error}",
                message.partition(),
                message.offset()
            ),
        }
    })
    .with_context(|| {
        format!(
            "reading {topic}; no answer within {READ_TIMEOUT:?} means the broker is unreachable"
        )
    })?;
    progress.finish();
    Ok(found)
}
