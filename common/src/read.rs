//! Reading a topic once, for commands and tools, from the beginning or a given offset to the
//! end of every partition at the time of the call. Also a group's committed offsets.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaArgs;
use crate::kafka::{consumer_config, QuietContext};
use crate::Error;

/// Reads every record of `topic` and calls `visit` for each, blocking the calling thread.
///
/// `reader` names the consumer group id suffix; the group is never joined or committed.
/// Fails when the topic does not exist or the broker does not respond within `timeout`.
pub fn read_to_end(
    kafka: &KafkaArgs,
    topic: &str,
    reader: &str,
    timeout: Duration,
    visit: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), Error> {
    read_from(
        kafka,
        topic,
        reader,
        timeout,
        |_| Some(Offset::Beginning),
        visit,
    )
}

/// Reads the records of `topic` from the offset `start` returns for each partition to the
/// end, skipping partitions for which it returns `None`, and calls `visit` for each record.
pub fn read_from(
    kafka: &KafkaArgs,
    topic: &str,
    reader: &str,
    timeout: Duration,
    start: impl Fn(i32) -> Option<Offset>,
    mut visit: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), Error> {
    let consumer = reader_consumer(kafka, &kafka.group_id(reader), topic)?;
    let partitions = partition_count(&consumer, topic, timeout)?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        if let Some(offset) = start(partition) {
            assignment
                .add_partition_offset(topic, partition, offset)
                .map_err(Error::kafka(format!("assigning {topic}")))?;
        }
    }
    let assigned = assignment.count();
    if assigned == 0 {
        return Ok(());
    }
    consumer
        .assign(&assignment)
        .map_err(Error::kafka(format!("assigning {topic}")))?;

    let mut at_end = BTreeSet::new();
    while at_end.len() < assigned {
        match consumer.poll(timeout) {
            Some(Ok(message)) => visit(&message),
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Some(Err(error)) => return Err(Error::kafka(format!("reading {topic}"))(error)),
            None => {
                return Err(Error::Kafka {
                    operation: format!("reading {topic}"),
                    source: KafkaError::Canceled,
                })
            }
        }
    }
    Ok(())
}

/// Offsets of one partition of a topic, and a consumer group's committed offset on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub partition: i32,
    /// Earliest offset still stored.
    pub low: i64,
    /// End offset: the offset the next record gets.
    pub high: i64,
    /// Offset the group processes next; `None` when it never committed on this partition.
    pub committed: Option<i64>,
}

impl PartitionOffsets {
    /// Records the group has not yet committed; without a commit, every stored record.
    pub fn backlog(&self) -> i64 {
        (self.high - self.committed.unwrap_or(self.low).max(self.low)).max(0)
    }
}

/// Returns the offsets of every partition of `topic` and `group`'s committed offsets on
/// them, blocking the calling thread. The group is only queried, never joined.
pub fn group_offsets(
    kafka: &KafkaArgs,
    group: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<PartitionOffsets>, Error> {
    let consumer = reader_consumer(kafka, group, topic)?;
    let partitions = partition_count(&consumer, topic, timeout)?;
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed = consumer
        .committed_offsets(list, timeout)
        .map_err(Error::kafka(format!(
            "reading the offsets group {group} committed on {topic}"
        )))?;
    let mut offsets = Vec::with_capacity(partitions as usize);
    for partition in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, timeout)
            .map_err(Error::kafka(format!(
                "reading the offsets of {topic} partition {partition}"
            )))?;
        let committed =
            committed
                .find_partition(topic, partition)
                .and_then(|element| match element.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                });
        offsets.push(PartitionOffsets {
            partition,
            low,
            high,
            committed,
        });
    }
    Ok(offsets)
}

/// Checks that `topic` exists, waiting at most `timeout` for the broker's metadata. A
/// producer to a missing topic otherwise fails only when its message timeout runs out.
pub fn check_topic(kafka: &KafkaArgs, topic: &str, timeout: Duration) -> Result<(), Error> {
    let consumer = reader_consumer(kafka, &kafka.group_id("topic-check"), topic)?;
    partition_count(&consumer, topic, timeout).map(|_| ())
}

fn reader_consumer(
    kafka: &KafkaArgs,
    group: &str,
    topic: &str,
) -> Result<BaseConsumer<QuietContext>, Error> {
    consumer_config(kafka, group)
        .set("enable.partition.eof", "true")
        .create_with_context(QuietContext::default())
        .map_err(Error::kafka(format!("creating a reader of {topic}")))
}

fn partition_count(
    consumer: &BaseConsumer<QuietContext>,
    topic: &str,
    timeout: Duration,
) -> Result<i32, Error> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(Error::kafka(format!("reading metadata of {topic}")))?;
    let partitions = metadata
        .topics()
        .first()
        .filter(|found| found.error().is_none())
        .map_or(0, |found| found.partitions().len());
    if partitions == 0 {
        return Err(Error::TopicNotFound {
            topic: topic.to_string(),
        });
    }
    Ok(partitions as i32)
}

#[cfg(test)]
mod tests {
    use super::PartitionOffsets;

    #[test]
    fn backlog_counts_from_committed_or_earliest() {
        let offsets = |low, high, committed| PartitionOffsets {
            partition: 0,
            low,
            high,
            committed,
        };
        assert_eq!(offsets(0, 10, Some(4)).backlog(), 6);
        assert_eq!(offsets(0, 10, Some(10)).backlog(), 0);
        assert_eq!(offsets(3, 10, None).backlog(), 7);
        // A commit below the earliest stored offset counts only what is still stored.
        assert_eq!(offsets(5, 10, Some(2)).backlog(), 5);
    }
}
