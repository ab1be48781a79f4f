//! Reading a whole topic once, for commands and tools: every partition from the beginning
//! to its end at the time of the call.

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
    mut visit: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), Error> {
    let consumer: BaseConsumer<QuietContext> = consumer_config(kafka, &kafka.group_id(reader))
        .set("enable.partition.eof", "true")
        .create_with_context(QuietContext::default())
        .map_err(Error::kafka(format!("creating a reader of {topic}")))?;
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
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions as i32 {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(Error::kafka(format!("assigning {topic}")))?;
    }
    consumer
        .assign(&assignment)
        .map_err(Error::kafka(format!("assigning {topic}")))?;

    let mut at_end = BTreeSet::new();
    while at_end.len() < partitions {
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
