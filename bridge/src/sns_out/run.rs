//! Start-up and shutdown of the outbound bridge: the consumer group and the publisher.

use std::sync::Arc;

use aurora_common::consume::GroupConsumer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::config::SnsOutConfig;
use super::entry::AttributeNames;
use super::handler::{Quarantine, SnsOutHandler};
use super::publish::Publisher;
use crate::Error;

/// Runs the outbound bridge until `shutdown` is cancelled or publishing fails for good. On
/// shutdown, events in flight get up to the consumer's grace period to be published, and
/// only the offsets of published or skipped events are committed.
pub async fn run(config: SnsOutConfig, shutdown: CancellationToken) -> Result<(), Error> {
    config.validate()?;
    let sdk = crate::aws::load(&config.aws).await?;
    let names = AttributeNames {
        event_type: config.type_attribute.clone(),
        event_id: config.id_attribute.clone(),
    };
    // Concurrent batches could overtake each other, which a FIFO topic's order forbids.
    let publishers = if config.fifo() { 1 } else { config.publishers };
    let publisher = Arc::new(Publisher {
        sns: aws_sdk_sns::Client::new(&sdk),
        topic_arn: config.topic_arn.clone(),
        names: names.clone(),
        batch_size: config.batch_size,
        linger: config.linger,
        publishers,
        max_attempts: config.max_attempts,
    });
    let (queue, pending) = mpsc::channel(config.batch_size * publishers * 2);
    let publishing = tokio::spawn(publisher.run(pending));

    let topics = config.kafka.topics();
    let group_id = config.kafka.group_id(&config.group);
    let mut consumer = GroupConsumer::with_metrics(
        &config.kafka,
        &group_id,
        &[&topics.events],
        &[],
        &config.metrics,
    )?;
    consumer.max_in_flight = config.max_in_flight;
    let metrics = config.metrics.sns_out();
    let handler = SnsOutHandler {
        filters: config.event_types.clone(),
        tenant_id: config.tenant_id.clone().unwrap_or_default(),
        names,
        fifo: config.fifo(),
        publisher: queue,
        quarantine: Quarantine {
            producer: aurora_common::kafka::producer(&config.kafka)?,
            topic: topics.quarantine,
            metrics: metrics.clone(),
        },
        metrics,
    };
    tracing::info!(topic_arn = %config.topic_arn, group_id = %group_id, event_types = ?config.event_types, "Bridge to SNS started.");

    // The handler, and with it the publisher's queue, is dropped when the consumer returns,
    // so the publisher finishes the batches it has and stops.
    let result = consumer.run(shutdown, handler).await;
    if publishing.await.is_err() {
        return Err(Error::TaskStopped("the SNS publisher"));
    }
    tracing::info!(topic_arn = %config.topic_arn, "Bridge to SNS stopped.");
    result
}
