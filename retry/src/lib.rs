//! The retry stage: keeps failed deliveries in tiered retry topics until they are due, then
//! sends them back to the deliveries topic.
//!
//! A partition whose records are not yet due is paused while they wait, so the consumer keeps
//! polling (and keeps its group membership) without fetching more of it. A record's offset is
//! committed only after its copy on the deliveries topic is acknowledged. A crash or a
//! rebalance while records wait makes them be read again, so none is lost.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aurora_common::consume::{CommitContext, GroupConsumer, Handler};
use aurora_common::kafka::Producer;
use aurora_common::metrics::{Metrics, RetryMetrics};
use aurora_common::produce::enqueue;
use aurora_common::time::now_ms;
use aurora_common::KafkaArgs;
use aurora_schemas::Delivery;
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, TopicPartitionList};
use tokio_util::sync::CancellationToken;

/// Errors that stop the retry stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Kafka(#[from] aurora_common::Error),
    #[error(transparent)]
    Produce(#[from] aurora_common::produce::ProduceError),
    #[error(transparent)]
    Schema(#[from] aurora_schemas::SchemaError),
}

/// Settings of a retry instance.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    pub kafka: KafkaArgs,
    /// Records held at once, waiting or being re-sent, at most.
    pub max_in_flight: usize,
    /// Registry the retry stage records its metrics in.
    pub metrics: Metrics,
}

/// Runs the retry stage until `shutdown` is cancelled.
pub async fn run(config: RetryConfig, shutdown: CancellationToken) -> Result<(), Error> {
    let kafka = &config.kafka;
    let topics = kafka.topics();
    let tier_topics: Vec<&str> = topics
        .retry
        .iter()
        .map(|tier| tier.topic.as_str())
        .collect();
    let group = kafka.group_id("retry");
    // A small fetch queue bounds how many waiting records a paused partition leaves in memory.
    let mut consumer = GroupConsumer::with_metrics(
        kafka,
        &group,
        &tier_topics,
        &[
            ("queued.max.messages.kbytes", "4096"),
            ("queued.min.messages", "1000"),
        ],
        &config.metrics,
    )?;
    consumer.max_in_flight = config.max_in_flight;
    // Records waiting to be due cannot finish during shutdown. They stay uncommitted and are
    // read again after the restart, so shutdown waits only for records being re-sent.
    consumer.shutdown_grace = Duration::from_secs(1);
    tracing::info!(topics = ?tier_topics, group = %group, "Retry stage started.");

    let retry = Retry {
        producer: aurora_common::kafka::producer(kafka)?,
        deliveries: topics.deliveries,
        quarantine: topics.quarantine,
        consumer: consumer.consumer(),
        waiting: Arc::default(),
        metrics: config.metrics.retry(&topics.retry),
    };
    let result = consumer.run(shutdown, retry).await;
    tracing::info!("Retry stage stopped.");
    result
}

type Waiting = Arc<Mutex<HashMap<(String, i32), usize>>>;

struct Retry {
    producer: Producer,
    deliveries: String,
    quarantine: String,
    consumer: Arc<StreamConsumer<CommitContext>>,
    /// Records waiting per paused partition; the partition resumes when none are left.
    waiting: Waiting,
    metrics: RetryMetrics,
}

type Done = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

impl Handler for Retry {
    type Error = Error;
    type Done = Done;

    async fn start(&mut self, message: OwnedMessage) -> Result<Done, Error> {
        let producer = self.producer.clone();
        let delivery = match message.payload().map(aurora_schemas::decode::<Delivery>) {
            Some(Ok(delivery)) => delivery,
            other => {
                let reason = match other {
                    Some(Err(error)) => error.to_string(),
                    _ => "the record has no value".to_string(),
                };
                let record = aurora_common::quarantine::record(&message, reason);
                let value = aurora_schemas::encode(&record)?;
                let key = aurora_common::quarantine::key(&record);
                let pending =
                    enqueue(&producer, &self.quarantine, key.as_bytes(), &value, None).await?;
                let quarantined = self.metrics.quarantined.clone();
                return Ok(Box::pin(async move {
                    pending.acked().await?;
                    quarantined.inc();
                    Ok(())
                }));
            }
        };

        let wait_ms = delivery.not_before_ms.saturating_sub(now_ms());
        let partition = (message.topic().to_string(), message.partition());
        let hold = (wait_ms > 0).then(|| Hold::new(&self.consumer, &self.waiting, partition));
        let tier = self.metrics.tier(message.topic()).cloned();
        let deliveries = self.deliveries.clone();
        let value = message.payload().unwrap_or_default().to_vec();
        Ok(Box::pin(async move {
            if wait_ms > 0 {
                let _counted = tier.as_ref().map(|tier| WaitCount::new(&tier.waiting));
                tokio::time::sleep(Duration::from_millis(wait_ms as u64)).await;
            }
            let key = delivery.endpoint_id.as_bytes();
            enqueue(&producer, &deliveries, key, &value, None)
                .await?
                .acked()
                .await?;
            tracing::debug!(delivery_id = %delivery.delivery_id, attempt = delivery.attempts.len() + 1, "Retry due; delivery sent back.");
            if let Some(tier) = &tier {
                tier.released.inc();
            }
            drop(hold);
            Ok(())
        }))
    }
}

/// Counts a record in its tier's waiting gauge until dropped, also when shutdown drops it.
struct WaitCount(Gauge);

impl WaitCount {
    fn new(gauge: &Gauge) -> WaitCount {
        gauge.inc();
        WaitCount(gauge.clone())
    }
}

impl Drop for WaitCount {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Keeps a partition paused while at least one of its records waits.
struct Hold {
    consumer: Arc<StreamConsumer<CommitContext>>,
    waiting: Waiting,
    partition: (String, i32),
}

impl Hold {
    fn new(
        consumer: &Arc<StreamConsumer<CommitContext>>,
        waiting: &Waiting,
        partition: (String, i32),
    ) -> Hold {
        let mut counts = waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(partition.clone()).or_insert(0);
        if *count == 0 {
            set_paused(consumer, &partition, true);
        }
        *count += 1;
        Hold {
            consumer: consumer.clone(),
            waiting: waiting.clone(),
            partition,
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut counts = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.partition) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.partition);
                set_paused(&self.consumer, &self.partition, false);
            }
        }
    }
}

fn set_paused(
    consumer: &StreamConsumer<CommitContext>,
    (topic, partition): &(String, i32),
    pause: bool,
) {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, *partition);
    let result = if pause {
        consumer.pause(&list)
    } else {
        consumer.resume(&list)
    };
    // Fails when a rebalance took the partition away; its new owner reads it afresh.
    if let Err(error) = result {
        tracing::debug!(topic = %topic, partition, pause, error = %error, "Pausing or resuming a retry partition failed.");
    }
}
