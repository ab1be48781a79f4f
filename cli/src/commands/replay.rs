//! `aurora replay`: resets a consumer group's committed offsets, so that its consumers
//! process records again from an offset or a point in time.
//!
//! Kafka accepts offset commits from outside a group only while the group has no active
//! members, so stop the group's consumers first, then start them again afterwards. With
//! `--follow` the command then shows how far the restarted group has replayed.

use std::time::Duration;

use anyhow::{bail, Context};
use aurora_common::kafka::QuietContext;
use aurora_common::KafkaArgs;
use clap::Args;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::dlq::parse_time_ms;
use crate::progress::Progress;

/// How long to wait for the broker before giving up.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Time between two reads of the group's committed offsets with `--follow`.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Consumer group: router, deliverer, retry or sns-out (prefixed with the topic prefix), or any full group id.
    #[arg(long)]
    group: String,
    /// Topic: events, deliveries or another AuroraPress topic name without the prefix, or a full name.
    #[arg(long)]
    topic: String,
    /// Partitions to reset; all when absent. Repeatable.
    #[arg(long = "partition")]
    partitions: Vec<i32>,
    /// Reset to this offset (clamped to the partition's earliest and end offsets).
    #[arg(long, conflicts_with_all = ["to_time", "to_earliest"], required_unless_present_any = ["to_time", "to_earliest"])]
    to_offset: Option<i64>,
    /// Reset to the first record written at or after this time, in UTC (such as 2026-12-04T10:00:00Z).
    #[arg(long, value_parser = parse_time_ms, conflicts_with = "to_earliest")]
    to_time: Option<i64>,
    /// Reset to the earliest offset still stored.
    #[arg(long)]
    to_earliest: bool,
    /// Print what would be replayed without changing any offset.
    #[arg(long)]
    dry_run: bool,
    /// After the reset, show the group's progress through the replayed records until it has committed them all.
    #[arg(long, conflicts_with = "dry_run")]
    follow: bool,
    /// How long --follow waits for the group to finish (for example 30m).
    #[arg(long, default_value = "1h", value_parser = aurora_common::config::parse_positive_duration)]
    follow_timeout: Duration,
}

/// One partition's reset.
struct Reset {
    partition: i32,
    committed: Option<i64>,
    target: i64,
}

pub async fn run(kafka: &KafkaArgs, args: ReplayArgs) -> anyhow::Result<()> {
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || replay(&kafka, &args)).await?
}

fn replay(kafka: &KafkaArgs, args: &ReplayArgs) -> anyhow::Result<()> {
    let group = match args.group.as_str() {
        "router" | "deliverer" | "retry" | "sns-out" => kafka.group_id(&args.group),
        other => other.to_string(),
    };
    let topic = if args.topic.starts_with(&kafka.topic_prefix) {
        args.topic.clone()
    } else {
        format!("{}{}", kafka.topic_prefix, args.topic)
    };
    if let Some(consumed) = consumed_topics(kafka, &args.group) {
        if !consumed.contains(&topic) {
            bail!(
                "group {group} consumes {}, not {topic}; replay one of those topics",
                consumed.join(", ")
            );
        }
    }
    let consumer: BaseConsumer<QuietContext> = aurora_common::kafka::consumer_config(kafka, &group)
        .create_with_context(QuietContext::default())
        .context("creating the consumer")?;
    let members = check_group(&consumer, &group, args.dry_run)?;
    let partitions = partitions(&consumer, &topic, &args.partitions)?;

    let mut resets = Vec::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(&topic, partition, QUERY_TIMEOUT)
            .with_context(|| format!("reading the offsets of {topic} partition {partition}"))?;
        let target = match (args.to_offset, args.to_time) {
            (Some(offset), _) => offset.clamp(low, high),
            (None, Some(time_ms)) => offset_for_time(&consumer, &topic, partition, time_ms, high)?,
            (None, None) => low,
        };
        resets.push(Reset {
            partition,
            committed: None,
            target,
        });
    }
    read_committed(&consumer, &topic, &mut resets)?;
    print_plan(&group, &topic, &resets, args.dry_run);
    if resets.iter().all(|reset| reset.committed.is_none()) {
        eprintln!("Warning: group {group} has no committed offsets on {topic}; check that it consumes this topic.");
    }
    if args.dry_run {
        if members > 0 {
            eprintln!("Warning: group {group} has {members} active member(s), so the real run will fail until its consumers are stopped.");
        }
        return Ok(());
    }

    let mut list = TopicPartitionList::new();
    for reset in &resets {
        list.add_partition_offset(&topic, reset.partition, Offset::Offset(reset.target))?;
    }
    consumer.commit(&list, CommitMode::Sync).with_context(|| {
        format!("committing the new offsets of group {group} failed; stop every consumer of the group first, because Kafka accepts these commits only from an empty group")
    })?;
    println!("Offsets of group {group} on {topic} reset; start its consumers to replay.");
    if args.follow {
        follow(kafka, &group, &topic, &resets, args.follow_timeout)?;
    }
    Ok(())
}

/// Shows how many replayed records the group has committed, until it has committed every one
/// or `timeout` passes.
fn follow(
    kafka: &KafkaArgs,
    group: &str,
    topic: &str,
    resets: &[Reset],
    timeout: Duration,
) -> anyhow::Result<()> {
    // A partition is replayed once the group commits its previous committed offset again.
    let goals: Vec<(i32, i64, i64)> = resets
        .iter()
        .filter_map(|reset| {
            let goal = reset.committed?;
            (goal > reset.target).then_some((reset.partition, reset.target, goal))
        })
        .collect();
    let total: i64 = goals.iter().map(|(_, target, goal)| goal - target).sum();
    let mut progress = Progress::new(format!("Replaying {topic} in group {group}"), total as u64);
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let offsets = aurora_common::read::group_offsets(kafka, group, topic, QUERY_TIMEOUT)
            .with_context(|| format!("reading the offsets group {group} committed"))?;
        let done: i64 = goals
            .iter()
            .map(|(partition, target, goal)| {
                let committed = offsets
                    .iter()
                    .find(|offsets| offsets.partition == *partition)
                    .and_then(|offsets| offsets.committed)
                    .unwrap_or(*target);
                committed.clamp(*target, *goal) - target
            })
            .sum();
        progress.set(done as u64);
        if done >= total {
            progress.finish();
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            progress.finish();
            bail!("group {group} had committed {done} of {total} replayed records after {timeout:?}; check that its consumers run");
        }
        std::thread::sleep(FOLLOW_INTERVAL);
    }
}

/// Returns the topics the named AuroraPress group consumes, or `None` for another group id.
fn consumed_topics(kafka: &KafkaArgs, name: &str) -> Option<Vec<String>> {
    let topics = kafka.topics();
    match name {
        "router" | "sns-out" => Some(vec![topics.events]),
        "deliverer" => Some(vec![topics.deliveries]),
        "retry" => Some(topics.retry.into_iter().map(|tier| tier.topic).collect()),
        _ => None,
    }
}

/// Refuses a group that does not exist, or (unless this is a dry run) one with members,
/// whose next commit would overwrite the reset; returns the number of members.
fn check_group(
    consumer: &BaseConsumer<QuietContext>,
    group: &str,
    dry_run: bool,
) -> anyhow::Result<usize> {
    let groups = consumer
        .fetch_group_list(Some(group), QUERY_TIMEOUT)
        .context("listing consumer groups")?;
    let Some(found) = groups.groups().iter().find(|found| found.name() == group) else {
        bail!("consumer group {group} was not found; use router, deliverer, retry or an existing group id");
    };
    if found.state().eq_ignore_ascii_case("dead") {
        bail!("consumer group {group} was not found; use router, deliverer, retry or an existing group id");
    }
    let members = found.members().len();
    if !dry_run && members > 0 {
        bail!(
            "consumer group {group} has {members} active member(s); stop them first, or their next commit overwrites the reset"
        );
    }
    Ok(members)
}

fn partitions(
    consumer: &BaseConsumer<QuietContext>,
    topic: &str,
    requested: &[i32],
) -> anyhow::Result<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), QUERY_TIMEOUT)
        .with_context(|| format!("reading metadata of {topic}"))?;
    let count = metadata
        .topics()
        .first()
        .map_or(0, |found| found.partitions().len()) as i32;
    if count == 0 {
        bail!("topic {topic} was not found");
    }
    if let Some(missing) = requested
        .iter()
        .find(|partition| !(0..count).contains(*partition))
    {
        bail!(
            "invalid --partition {missing}: {topic} has partitions 0 to {}",
            count - 1
        );
    }
    Ok(if requested.is_empty() {
        (0..count).collect()
    } else {
        requested.to_vec()
    })
}

/// Returns the offset of the first record at or after `time_ms`, or the end offset if none.
fn offset_for_time(
    consumer: &BaseConsumer<QuietContext>,
    topic: &str,
    partition: i32,
    time_ms: i64,
    high: i64,
) -> anyhow::Result<i64> {
    let mut query = TopicPartitionList::new();
    query.add_partition_offset(topic, partition, Offset::Offset(time_ms))?;
    let answer = consumer
        .offsets_for_times(query, QUERY_TIMEOUT)
        .with_context(|| format!("looking up offsets by time in {topic}; the broker may not support time-based lookup"))?;
    let offset = answer
        .find_partition(topic, partition)
        .map(|element| element.offset())
        .unwrap_or(Offset::End);
    let offset = match offset {
        Offset::Offset(offset) if offset < high => offset,
        _ => return Ok(high),
    };
    // Check the returned offset: the record there must not be older than the time. tansu
    // 0.6.0 returns offset 0 for a time after the newest record, which would replay everything.
    match record_time_ms(consumer, topic, partition, offset)? {
        Some(written_ms) if written_ms < time_ms => {
            eprintln!("warning: the broker returned offset {offset} of partition {partition}, whose record is older than the time; using the end offset {high} instead");
            Ok(high)
        }
        _ => Ok(offset),
    }
}

/// Returns the timestamp of the record at `offset`, if it can be read within the timeout.
fn record_time_ms(
    consumer: &BaseConsumer<QuietContext>,
    topic: &str,
    partition: i32,
    offset: i64,
) -> anyhow::Result<Option<i64>> {
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + QUERY_TIMEOUT;
    let mut found = None;
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) if message.offset() >= offset => {
                found = message.timestamp().to_millis();
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                return Err(error).context("reading the record at the returned offset")
            }
            None => {}
        }
    }
    consumer.unassign()?;
    Ok(found)
}

fn read_committed(
    consumer: &BaseConsumer<QuietContext>,
    topic: &str,
    resets: &mut [Reset],
) -> anyhow::Result<()> {
    let mut list = TopicPartitionList::new();
    for reset in resets.iter() {
        list.add_partition(topic, reset.partition);
    }
    let committed = consumer
        .committed_offsets(list, QUERY_TIMEOUT)
        .context("reading the group's committed offsets")?;
    for reset in resets.iter_mut() {
        reset.committed = committed
            .find_partition(topic, reset.partition)
            .and_then(|element| match element.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            });
    }
    Ok(())
}

fn print_plan(group: &str, topic: &str, resets: &[Reset], dry_run: bool) {
    println!(
        "Group {group} on {topic}{}:",
        if dry_run {
            " (dry run, nothing changed)"
        } else {
            ""
        }
    );
    println!(
        "{:>9} {:>12} {:>12} {:>10}",
        "PARTITION", "COMMITTED", "NEW", "REPLAYED"
    );
    let mut total = 0;
    let mut skipped = 0;
    for reset in resets {
        let replayed = reset
            .committed
            .map_or(0, |committed| (committed - reset.target).max(0));
        skipped += reset
            .committed
            .map_or(0, |committed| (reset.target - committed).max(0));
        total += replayed;
        let committed = reset
            .committed
            .map_or("none".to_string(), |offset| offset.to_string());
        println!(
            "{:>9} {:>12} {:>12} {:>10}",
            reset.partition, committed, reset.target, replayed
        );
    }
    println!("{total} records will be processed again.");
    if skipped > 0 {
        println!(
            "{skipped} records will be skipped, because the new offset is after the committed one."
        );
    }
}
