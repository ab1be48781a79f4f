//! `aurora status`: per-endpoint success rate, last error and backlog, read from the internal
//! topics and the consumer groups' committed offsets.
//!
//! Reading the attempts and dead-letter topics takes time in proportion to their size; narrow
//! it with `--since`.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use aurora_common::read::{group_offsets, read_from, read_to_end, PartitionOffsets};
use aurora_common::KafkaArgs;
use aurora_schemas::{Attempt, AttemptOutcome, Operation, OperationKind};
use clap::Args;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset};
use serde::Serialize;

use super::dlq::parse_time_ms;

/// How long to wait for the broker before giving up.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Characters of the last error shown in the table; `--json` has all of it.
const ERROR_COLUMN_CHARS: usize = 100;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON document instead of tables.
    #[arg(long)]
    json: bool,
    /// Count only attempts and dead letters written at or after this time, in UTC (such as 2026-12-04T10:00:00Z).
    #[arg(long, value_parser = parse_time_ms)]
    since: Option<i64>,
}

/// The most recent failed attempt of an endpoint.
#[derive(Debug, Clone, Serialize)]
struct LastError {
    at_ms: i64,
    status: Option<i32>,
    error: String,
}

#[derive(Debug, Default, Serialize)]
struct EndpointStatus {
    endpoint_id: String,
    /// enabled; failing (enabled, but the deliverer reported its deliveries failing and no
    /// recovery since); disabled; or deleted for an endpoint found only in the records.
    state: &'static str,
    /// Whether the endpoint's last health operation reported it failing.
    #[serde(skip)]
    failing: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<String>,
    attempts: u64,
    /// Attempts that the endpoint accepted with a 2xx response.
    delivered: u64,
    /// `delivered / attempts`; absent without attempts.
    success_rate: Option<f64>,
    /// Deliveries on the deliveries topic that the deliverer group has not committed.
    pending: u64,
    /// Deliveries in retry topics that the retry group has not committed.
    retrying: u64,
    /// `pending + retrying`.
    backlog: u64,
    dead_letters: u64,
    last_attempt_at_ms: Option<i64>,
    last_error: Option<LastError>,
}

/// A consumer group's backlog on one topic.
#[derive(Debug, Serialize)]
struct GroupStatus {
    group: String,
    topic: String,
    backlog: i64,
    partitions: Vec<PartitionJson>,
}

#[derive(Debug, Serialize)]
struct PartitionJson {
    partition: i32,
    low: i64,
    high: i64,
    committed: Option<i64>,
}

#[derive(Debug, Serialize)]
struct Report {
    endpoints: Vec<EndpointStatus>,
    groups: Vec<GroupStatus>,
}

pub async fn run(kafka: &KafkaArgs, args: StatusArgs) -> anyhow::Result<()> {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let table = aurora_common::SubscriptionTable::start(
        kafka,
        &kafka.topics().subscriptions,
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    let subscriptions = table.context("reading the subscriptions")?.endpoints();

    let reader_kafka = kafka.clone();
    let since = args.since;
    let mut report = tokio::task::spawn_blocking(move || collect(&reader_kafka, since)).await??;
    for (endpoint_id, subscription) in subscriptions.iter() {
        let status = endpoint(&mut report.endpoints, endpoint_id);
        status.state = match (subscription.enabled, status.failing) {
            (true, false) => "enabled",
            (true, true) => "failing",
            (false, _) => "disabled",
        };
        if !subscription.enabled && !subscription.disabled_reason.is_empty() {
            status.disabled_reason = Some(subscription.disabled_reason.clone());
        }
    }
    let report = Report {
        endpoints: report.endpoints.into_values().map(finish).collect(),
        groups: report.groups,
    };

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_tables(&report);
    }
    Ok(())
}

/// Statuses read from the topics, before the subscriptions are merged in.
struct Collected {
    endpoints: BTreeMap<String, EndpointStatus>,
    groups: Vec<GroupStatus>,
}

fn endpoint<'a>(
    endpoints: &'a mut BTreeMap<String, EndpointStatus>,
    endpoint_id: &str,
) -> &'a mut EndpointStatus {
    endpoints
        .entry(endpoint_id.to_string())
        .or_insert_with(|| EndpointStatus {
            endpoint_id: endpoint_id.to_string(),
            state: "deleted",
            ..EndpointStatus::default()
        })
}

fn finish(mut status: EndpointStatus) -> EndpointStatus {
    status.backlog = status.pending + status.retrying;
    if status.attempts > 0 {
        status.success_rate = Some(status.delivered as f64 / status.attempts as f64);
    }
    status
}

/// Reads attempts, dead letters and the groups' backlogs, blocking the calling thread.
fn collect(kafka: &KafkaArgs, since: Option<i64>) -> anyhow::Result<Collected> {
    let topics = kafka.topics();
    let mut endpoints = BTreeMap::new();
    let written_since = |message: &BorrowedMessage<'_>| {
        since.is_none_or(|since| message.timestamp().to_millis().unwrap_or(0) >= since)
    };

    read_to_end(kafka, &topics.attempts, "status", READ_TIMEOUT, |message| {
        if !written_since(message) {
            return;
        }
        let Some(Ok(attempt)) = message.payload().map(aurora_schemas::decode::<Attempt>) else {
            return;
        };
        count_attempt(endpoint(&mut endpoints, &attempt.endpoint_id), attempt);
    })
    .with_context(|| format!("reading {}", topics.attempts))?;

    read_to_end(
        kafka,
        &topics.dead_letter,
        "status",
        READ_TIMEOUT,
        |message| {
            if written_since(message) {
                endpoint(&mut endpoints, &key(message)).dead_letters += 1;
            }
        },
    )
    .with_context(|| format!("reading {}", topics.dead_letter))?;

    // Health comes from the latest operation of each endpoint, regardless of --since.
    read_to_end(
        kafka,
        &topics.operations,
        "status",
        READ_TIMEOUT,
        |message| {
            let Some(Ok(operation)) = message.payload().map(aurora_schemas::decode::<Operation>)
            else {
                return;
            };
            endpoint(&mut endpoints, &operation.endpoint_id).failing =
                operation.kind == OperationKind::Failing;
        },
    )
    .with_context(|| format!("reading {}", topics.operations))?;

    let mut groups = Vec::new();
    let deliverer = kafka.group_id("deliverer");
    let offsets = unconsumed(kafka, &deliverer, &topics.deliveries, |message| {
        endpoint(&mut endpoints, &key(message)).pending += 1;
    })?;
    groups.push(group_status(&deliverer, &topics.deliveries, &offsets));

    let retry = kafka.group_id("retry");
    for tier in &topics.retry {
        let offsets = unconsumed(kafka, &retry, &tier.topic, |message| {
            endpoint(&mut endpoints, &key(message)).retrying += 1;
        })?;
        groups.push(group_status(&retry, &tier.topic, &offsets));
    }

    let router = kafka.group_id("router");
    let offsets = group_offsets(kafka, &router, &topics.events, READ_TIMEOUT)
        .with_context(|| format!("reading the offsets of group {router}"))?;
    groups.insert(0, group_status(&router, &topics.events, &offsets));

    // The SNS bridge's group appears once it has committed, under its default name.
    let sns_out = kafka.group_id("sns-out");
    let offsets = group_offsets(kafka, &sns_out, &topics.events, READ_TIMEOUT)
        .with_context(|| format!("reading the offsets of group {sns_out}"))?;
    if offsets.iter().any(|offsets| offsets.committed.is_some()) {
        groups.push(group_status(&sns_out, &topics.events, &offsets));
    }
    Ok(Collected { endpoints, groups })
}

fn count_attempt(status: &mut EndpointStatus, attempt: Attempt) {
    status.attempts += 1;
    if attempt.outcome == AttemptOutcome::Delivered {
        status.delivered += 1;
    }
    if status
        .last_attempt_at_ms
        .is_none_or(|last| attempt.started_at_ms >= last)
    {
        status.last_attempt_at_ms = Some(attempt.started_at_ms);
    }
    let Some(error) = attempt.error else {
        return;
    };
    let newer = status
        .last_error
        .as_ref()
        .is_none_or(|last| attempt.started_at_ms >= last.at_ms);
    if newer {
        status.last_error = Some(LastError {
            at_ms: attempt.started_at_ms,
            status: attempt.status,
            error,
        });
    }
}

/// Visits the records of `topic` after `group`'s committed offsets and returns the offsets.
fn unconsumed(
    kafka: &KafkaArgs,
    group: &str,
    topic: &str,
    visit: impl FnMut(&BorrowedMessage<'_>),
) -> anyhow::Result<Vec<PartitionOffsets>> {
    let offsets = group_offsets(kafka, group, topic, READ_TIMEOUT)
        .with_context(|| format!("reading the offsets of group {group} on {topic}"))?;
    let start = |partition: i32| {
        let found = offsets.iter().find(|found| found.partition == partition)?;
        let from = found.committed.unwrap_or(found.low).max(found.low);
        (from < found.high).then_some(Offset::Offset(from))
    };
    read_from(kafka, topic, "status", READ_TIMEOUT, start, visit)
        .with_context(|| format!("reading {topic}"))?;
    Ok(offsets)
}

fn key(message: &BorrowedMessage<'_>) -> String {
    String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned()
}

fn group_status(group: &str, topic: &str, offsets: &[PartitionOffsets]) -> GroupStatus {
    GroupStatus {
        group: group.to_string(),
        topic: topic.to_string(),
        backlog: offsets.iter().map(PartitionOffsets::backlog).sum(),
        partitions: offsets
            .iter()
            .map(|offsets| PartitionJson {
                partition: offsets.partition,
                low: offsets.low,
                high: offsets.high,
                committed: offsets.committed,
            })
            .collect(),
    }
}

fn print_tables(report: &Report) {
    let header = [
        "ENDPOINT",
        "STATE",
        "ATTEMPTS",
        "SUCCESS",
        "BACKLOG",
        "DEAD",
        "LAST ERROR",
    ];
    let rows: Vec<[String; 7]> = report
        .endpoints
        .iter()
        .map(|status| {
            [
                status.endpoint_id.clone(),
                status.state.to_string(),
                status.attempts.to_string(),
                status
                    .success_rate
                    .map_or("-".to_string(), |rate| format!("{:.1}%", rate * 100.0)),
                status.backlog.to_string(),
                status.dead_letters.to_string(),
                status.last_error.as_ref().map_or("-".to_string(), describe),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("No endpoints, attempts or dead letters yet.");
    } else {
        print_rows(&header, &rows);
    }

    println!();
    let header = ["GROUP", "TOPIC", "BACKLOG"];
    let rows: Vec<[String; 3]> = report
        .groups
        .iter()
        .map(|group| {
            [
                group.group.clone(),
                group.topic.clone(),
                group.backlog.to_string(),
            ]
        })
        .collect();
    print_rows(&header, &rows);
}

/// Prints left-aligned columns as wide as their widest cell; the last column is not padded.
fn print_rows<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (index, cell) in cells.iter().enumerate() {
            if index + 1 == N {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[index]));
            }
        }
        println!("{}", text.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Formats an error as its UTC time and its text, shortened to the column.
fn describe(error: &LastError) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(error.at_ms).unwrap_or(0));
    let mut text: String = error.error.chars().take(ERROR_COLUMN_CHARS).collect();
    if error.error.chars().count() > ERROR_COLUMN_CHARS {
        text.push('…');
    }
    format!("{} {text}", humantime::format_rfc3339_seconds(at))
}
