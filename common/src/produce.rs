//! Producing with back-pressure, and waiting for the broker's acknowledgement.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::future_producer::Delivery;
use rdkafka::producer::{DeliveryFuture, FutureRecord};

use crate::kafka::Producer;

/// How long to wait before retrying when the producer's local queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(5);

/// A record enqueued for `topic`, whose acknowledgement is still to come.
pub struct Pending {
    topic: String,
    future: DeliveryFuture,
}

/// Errors of a produce request.
#[derive(Debug, thiserror::Error)]
#[error("producing to {topic} failed")]
pub struct ProduceError {
    pub topic: String,
    #[source]
    pub source: KafkaError,
}

/// Enqueues a record, waiting while the producer's local queue is full. Records enqueued one
/// after another for the same partition keep their order.
pub async fn enqueue(
    producer: &Producer,
    topic: &str,
    key: &[u8],
    value: &[u8],
    headers: Option<OwnedHeaders>,
) -> Result<Pending, ProduceError> {
    let mut record = FutureRecord::to(topic).key(key).payload(value);
    if let Some(headers) = headers {
        record = record.headers(headers);
    }
    loop {
        match producer.send_result(record) {
            Ok(future) => {
                return Ok(Pending {
                    topic: topic.to_string(),
                    future,
                })
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
            }
            Err((source, _)) => {
                return Err(ProduceError {
                    topic: topic.to_string(),
                    source,
                })
            }
        }
    }
}

impl Pending {
    /// Waits until the broker acknowledges the record (durable per the producer's acks).
    pub async fn acked(self) -> Result<Delivery, ProduceError> {
        match self.future.await {
            Ok(Ok(delivery)) => Ok(delivery),
            Ok(Err((source, _))) => Err(ProduceError {
                topic: self.topic,
                source,
            }),
            Err(_) => Err(ProduceError {
                topic: self.topic,
                source: KafkaError::Canceled,
            }),
        }
    }
}

/// Enqueues a record and waits for its acknowledgement.
pub async fn produce(
    producer: &Producer,
    topic: &str,
    key: &[u8],
    value: &[u8],
    headers: Option<OwnedHeaders>,
) -> Result<Delivery, ProduceError> {
    enqueue(producer, topic, key, value, headers)
        .await?
        .acked()
        .await
}
