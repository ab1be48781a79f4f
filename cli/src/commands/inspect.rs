//! `aurora inspect`: prints the records of an internal topic as JSON lines, decoded from Avro,
//! from the beginning up to the end of every partition at the time of the call.

use std::time::Duration;

use anyhow::{bail, Context};
use aurora_common::KafkaArgs;
use aurora_schemas::{Attempt, Delivery, Operation, Quarantined};
use clap::{Args, ValueEnum};
use rdkafka::Message;
use serde_json::{json, Value};

/// How long to wait for the broker before giving up.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Topic to print.
    #[arg(value_enum)]
    topic: TopicKind,
    /// For `retry`, the tier's position in AURORA_RETRY_TIERS, starting at 1.
    #[arg(long, default_value_t = 1)]
    tier: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TopicKind {
    Deliveries,
    Attempts,
    Retry,
    DeadLetter,
    Quarantine,
    Operations,
}

pub async fn run(kafka: &KafkaArgs, args: InspectArgs) -> anyhow::Result<()> {
    let topics = kafka.topics();
    let topic = match args.topic {
        TopicKind::Deliveries => topics.deliveries.clone(),
        TopicKind::Attempts => topics.attempts.clone(),
        TopicKind::DeadLetter => topics.dead_letter.clone(),
        TopicKind::Quarantine => topics.quarantine.clone(),
        TopicKind::Operations => topics.operations.clone(),
        TopicKind::Retry => match args
            .tier
            .checked_sub(1)
            .and_then(|index| topics.retry.get(index))
        {
            Some(tier) => tier.topic.clone(),
            None => bail!(
                "invalid --tier {}: AURORA_RETRY_TIERS has {} tiers",
                args.tier,
                topics.retry.len()
            ),
        },
    };
    let kafka = kafka.clone();
    let kind = args.topic;
    tokio::task::spawn_blocking(move || print_topic(&kafka, &topic, kind)).await?
}

fn print_topic(kafka: &KafkaArgs, topic: &str, kind: TopicKind) -> anyhow::Result<()> {
    aurora_common::read::read_to_end(kafka, topic, "inspect", READ_TIMEOUT, |message| {
        let record = decode(kind, message.payload().unwrap_or_default());
        let line =
            json!({"partition": message.partition(), "offset": message.offset(), "record": record});
        println!("{line}");
    })
    .with_context(|| {
        format!(
            "reading {topic}; no answer within {READ_TIMEOUT:?} means the broker is unreachable"
        )
    })
}

fn decode(kind: TopicKind, value: &[u8]) -> Value {
    let decoded = match kind {
        TopicKind::Attempts => {
            aurora_schemas::decode::<Attempt>(value).map(|attempt| json!(attempt))
        }
        TopicKind::Quarantine => aurora_schemas::decode::<Quarantined>(value).map(quarantined_json),
        TopicKind::Operations => {
            aurora_schemas::decode::<Operation>(value).map(|operation| json!(operation))
        }
        _ => aurora_schemas::decode::<Delivery>(value).map(delivery_json),
    };
    decoded.unwrap_or_else(|error| json!({"error": error.to_string()}))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn delivery_json(delivery: Delivery) -> Value {
    json!({
        "delivery_id": delivery.delivery_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "endpoint_id": delivery.endpoint_id,
        "content_type": delivery.content_type,
        "payload": text(&delivery.payload),
        "event_time_ms": delivery.event_time_ms,
        "routed_at_ms": delivery.routed_at_ms,
        "attempts": delivery.attempts,
        "not_before_ms": delivery.not_before_ms,
        "dead_letter_reason": delivery.dead_letter_reason,
    })
}

fn quarantined_json(record: Quarantined) -> Value {
    let headers: Vec<Value> = record
        .headers
        .iter()
        .map(|header| json!({"name": header.name, "value": header.value.as_deref().map(text)}))
        .collect();
    json!({
        "source_topic": record.source_topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key.as_deref().map(text),
        "headers": headers,
        "value": record.value.as_deref().map(text),
        "reason": record.reason,
        "quarantined_at_ms": record.quarantined_at_ms,
    })
}
