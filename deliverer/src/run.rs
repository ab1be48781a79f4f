//! The deliverer's consumer loop: delivery → signed POST → attempt record, and on failure a
//! retry or dead-letter record.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aurora_common::consume::{GroupConsumer, Handler};
use aurora_common::produce::{enqueue, Pending};
use aurora_common::time::now_ms;
use aurora_common::{KafkaArgs, SubscriptionTable, Topics};
use aurora_schemas::{Attempt, AttemptOutcome, AttemptSummary, Delivery, Subscription};
use bytes::Bytes;
use rand::Rng;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::Message;
use tokio_util::sync::CancellationToken;

use crate::classify::{classify, Verdict};
use crate::client::{Outgoing, WebhookClient};
use crate::signature::Secret;
use crate::Error;

/// Largest share by which a retry delay is moved earlier or later at random.
const RETRY_JITTER: f64 = 0.2;

/// Settings of a deliverer instance.
#[derive(Debug, Clone)]
pub struct DelivererConfig {
    pub kafka: KafkaArgs,
    /// Time allowed for one HTTP attempt, response body included.
    pub request_timeout: Duration,
    /// Deliveries in flight at once, at most.
    pub max_in_flight: usize,
}

/// Runs a deliverer until `shutdown` is cancelled.
pub async fn run(config: DelivererConfig, shutdown: CancellationToken) -> Result<(), Error> {
    let kafka = &config.kafka;
    let topics = kafka.topics();
    let table =
        SubscriptionTable::start(kafka, &topics.subscriptions, shutdown.child_token()).await?;
    let producer = aurora_common::kafka::producer(kafka)?;
    let group = kafka.group_id("deliverer");
    let mut consumer = GroupConsumer::new(kafka, &group, &[&topics.deliveries], &[])?;
    consumer.max_in_flight = config.max_in_flight;
    tracing::info!(topic = %topics.deliveries, group = %group, "Deliverer started.");

    let deliverer = Deliverer {
        shared: Arc::new(Shared {
            table,
            producer,
            topics,
            client: WebhookClient::new(config.request_timeout),
        }),
    };
    let result = consumer.run(shutdown, deliverer).await;
    tracing::info!("Deliverer stopped.");
    result
}

struct Shared {
    table: SubscriptionTable,
    producer: FutureProducer,
    topics: Topics,
    client: WebhookClient,
}

struct Deliverer {
    shared: Arc<Shared>,
}

type Done = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

impl Handler for Deliverer {
    type Error = Error;
    type Done = Done;

    async fn start(&mut self, message: OwnedMessage) -> Result<Done, Error> {
        let shared = self.shared.clone();
        Ok(Box::pin(async move { shared.process(message).await }))
    }
}

/// The result of one HTTP attempt.
struct Tried {
    summary: AttemptSummary,
    verdict: Verdict,
}

impl Shared {
    async fn process(&self, message: OwnedMessage) -> Result<(), Error> {
        let delivery = match message.payload().map(aurora_schemas::decode::<Delivery>) {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => return self.quarantine(&message, error.to_string()).await,
            None => {
                return self
                    .quarantine(&message, "the record has no value".into())
                    .await
            }
        };

        // Endpoint changes written before this delivery must be visible to it.
        let written_ms = message.timestamp().to_millis().unwrap_or_else(now_ms);
        self.table.ensure_fresh(written_ms).await?;
        let endpoint = match self.table.get(&delivery.endpoint_id) {
            Some(endpoint) if endpoint.enabled => endpoint,
            Some(_) => return self.dead_letter(delivery, "endpoint disabled").await,
            None => return self.dead_letter(delivery, "endpoint deleted").await,
        };

        let tried = self.attempt(&endpoint, &delivery).await;
        self.record(endpoint.url.clone(), delivery, tried).await
    }

    /// Signs and POSTs the delivery once.
    async fn attempt(&self, endpoint: &Subscription, delivery: &Delivery) -> Tried {
        let number = delivery.attempts.len() as i32 + 1;
        let started_at_ms = now_ms();
        let clock = Instant::now();
        let result = match Secret::parse(&endpoint.secret) {
            Ok(secret) => {
                let timestamp = started_at_ms / 1000;
                let signature = secret.sign(&delivery.event_id, timestamp, &delivery.payload);
                let outgoing = Outgoing {
                    url: &endpoint.url,
                    content_type: &delivery.content_type,
                    headers: [
                        ("webhook-id", delivery.event_id.clone()),
                        ("webhook-timestamp", timestamp.to_string()),
                        ("webhook-signature", signature),
                    ],
                    body: Bytes::from(delivery.payload.clone()),
                };
                self.send(outgoing).await
            }
            Err(error) => Err(format!("the endpoint's secret is unusable: {error}")),
        };
        let duration_ms = clock.elapsed().as_millis() as i64;

        let (status, verdict, excerpt) = match result {
            Ok(response) => (
                Some(i32::from(response.status)),
                classify(response.status),
                response.excerpt,
            ),
            Err(reason) => (None, Verdict::Retry { reason }, String::new()),
        };
        let error = match &verdict {
            Verdict::Delivered => None,
            Verdict::Retry { reason } => Some(reason.clone()),
        };
        Tried {
            summary: AttemptSummary {
                attempt: number,
                started_at_ms,
                duration_ms,
                status,
                error,
                response_excerpt: excerpt,
            },
            verdict,
        }
    }

    async fn send(&self, outgoing: Outgoing<'_>) -> Result<crate::client::Response, String> {
        self.client.send(outgoing).await.map_err(|error| {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        })
    }

    /// Writes the attempt record and, after a failure, the retry or dead-letter record, and
    /// waits until the broker acknowledges them.
    async fn record(&self, url: String, mut delivery: Delivery, tried: Tried) -> Result<(), Error> {
        let summary = tried.summary;
        let now = now_ms();
        let next_tier = self.topics.retry.get(delivery.attempts.len());
        let (outcome, next_attempt_at_ms) = match (&tried.verdict, next_tier) {
            (Verdict::Delivered, _) => (AttemptOutcome::Delivered, None),
            (Verdict::Retry { .. }, Some(tier)) => (
                AttemptOutcome::RetryScheduled,
                Some(now.saturating_add(jittered_ms(tier.delay))),
            ),
            (Verdict::Retry { .. }, None) => (AttemptOutcome::DeadLettered, None),
        };
        let attempt = Attempt {
            delivery_id: delivery.delivery_id.clone(),
            event_id: delivery.event_id.clone(),
            event_type: delivery.event_type.clone(),
            endpoint_id: delivery.endpoint_id.clone(),
            url,
            attempt: summary.attempt,
            started_at_ms: summary.started_at_ms,
            duration_ms: summary.duration_ms,
            status: summary.status,
            error: summary.error.clone(),
            response_excerpt: summary.response_excerpt.clone(),
            outcome,
            next_attempt_at_ms,
        };
        log_attempt(&attempt);
        let key = delivery.endpoint_id.clone();
        let mut pending = vec![self.enqueue(&self.topics.attempts, &key, &attempt).await?];

        delivery.attempts.push(summary);
        match (outcome, next_tier) {
            (AttemptOutcome::RetryScheduled, Some(tier)) => {
                delivery.not_before_ms = next_attempt_at_ms.unwrap_or(now);
                pending.push(self.enqueue(&tier.topic, &key, &delivery).await?);
            }
            (AttemptOutcome::DeadLettered, _) => {
                delivery.dead_letter_reason = Some("attempts exhausted".into());
                pending.push(
                    self.enqueue(&self.topics.dead_letter, &key, &delivery)
                        .await?,
                );
            }
            _ => {}
        }
        for record in pending {
            record.acked().await?;
        }
        Ok(())
    }

    async fn dead_letter(&self, mut delivery: Delivery, reason: &str) -> Result<(), Error> {
        tracing::error!(delivery_id = %delivery.delivery_id, endpoint_id = %delivery.endpoint_id, event_id = %delivery.event_id, reason, "Delivery dead-lettered.");
        delivery.dead_letter_reason = Some(reason.to_string());
        let key = delivery.endpoint_id.clone();
        self.enqueue(&self.topics.dead_letter, &key, &delivery)
            .await?
            .acked()
            .await?;
        Ok(())
    }

    async fn quarantine(&self, message: &OwnedMessage, reason: String) -> Result<(), Error> {
        let record = aurora_common::quarantine::record(message, reason);
        let value = aurora_schemas::encode(&record)?;
        let key = aurora_common::quarantine::key(&record);
        enqueue(
            &self.producer,
            &self.topics.quarantine,
            key.as_bytes(),
            &value,
            None,
        )
        .await?
        .acked()
        .await?;
        Ok(())
    }

    async fn enqueue<T: aurora_schemas::Contract>(
        &self,
        topic: &str,
        key: &str,
        record: &T,
    ) -> Result<Pending, Error> {
        let value = aurora_schemas::encode(record)?;
        Ok(enqueue(&self.producer, topic, key.as_bytes(), &value, None).await?)
    }
}

fn log_attempt(attempt: &Attempt) {
    let status = attempt.status.unwrap_or(0);
    let error = attempt.error.as_deref().unwrap_or("");
    match attempt.outcome {
        AttemptOutcome::Delivered => {
            tracing::trace!(delivery_id = %attempt.delivery_id, endpoint_id = %attempt.endpoint_id, attempt = attempt.attempt, status, "Delivered.")
        }
        AttemptOutcome::RetryScheduled => {
            tracing::warn!(delivery_id = %attempt.delivery_id, endpoint_id = %attempt.endpoint_id, attempt = attempt.attempt, status, error, "Attempt failed; retry scheduled.")
        }
        AttemptOutcome::DeadLettered => {
            tracing::error!(delivery_id = %attempt.delivery_id, endpoint_id = %attempt.endpoint_id, attempt = attempt.attempt, status, error, "Attempt failed and no retries are left; delivery dead-lettered.")
        }
    }
}

/// Returns a retry delay moved by up to ±20 % at random, in milliseconds.
fn jittered_ms(delay: Duration) -> i64 {
    let base = delay.as_millis().min(i64::MAX as u128) as f64;
    let factor = 1.0 + rand::rng().random_range(-RETRY_JITTER..=RETRY_JITTER);
    (base * factor) as i64
}
