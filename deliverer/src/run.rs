//! The deliverer's consumer loop: delivery → limits → signed POST → outcome records.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aurora_common::consume::{GroupConsumer, Handler};
use aurora_common::kafka::Producer;
use aurora_common::metrics::{DelivererMetrics, Metrics};
use aurora_common::time::now_ms;
use aurora_common::{KafkaArgs, SubscriptionTable, Topics};
use aurora_schemas::{AttemptSummary, Delivery, Subscription};
use bytes::Bytes;
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::classify::{classify, Verdict};
use crate::client::{Outgoing, WebhookClient};
use crate::health::{Health, HealthPolicy};
use crate::keys::KeyCache;
use crate::limits::EndpointLimits;
use crate::Error;

/// Settings of a deliverer instance.
#[derive(Debug, Clone)]
pub struct DelivererConfig {
    pub kafka: KafkaArgs,
    /// Time allowed for one HTTP attempt, response body included.
    pub request_timeout: Duration,
    /// Deliveries in flight at once, at most.
    pub max_in_flight: usize,
    /// Deliveries of one endpoint in flight at once, at most.
    pub endpoint_max_in_flight: usize,
    /// Concurrent requests to one endpoint, at most.
    pub endpoint_max_concurrency: usize,
    /// Maximum delay a `Retry-After` header can request.
    pub max_retry_after: Duration,
    /// When endpoints are reported failing and disabled.
    pub health: HealthPolicy,
    /// SSRF guard settings: the addresses deliveries may connect to.
    pub guard: crate::ssrf::Guard,
    /// Key that opens sealed endpoint secrets; sealed secrets cannot be used without it.
    pub seal_key: Option<aurora_common::sealed::SealKey>,
    /// Registry the deliverer records its metrics in.
    pub metrics: Metrics,
}

/// Runs a deliverer until `shutdown` is cancelled.
pub async fn run(config: DelivererConfig, shutdown: CancellationToken) -> Result<(), Error> {
    let kafka = &config.kafka;
    let topics = kafka.topics();
    let table =
        SubscriptionTable::start(kafka, &topics.subscriptions, shutdown.child_token()).await?;
    let producer = aurora_common::kafka::producer(kafka)?;
    let group = kafka.group_id("deliverer");
    let mut consumer =
        GroupConsumer::with_metrics(kafka, &group, &[&topics.deliveries], &[], &config.metrics)?;
    consumer.max_in_flight = config.max_in_flight;
    tracing::info!(topic = %topics.deliveries, group = %group, "Deliverer started.");

    let metrics = config.metrics.deliverer(&topics.retry);
    let deliverer = Deliverer {
        shared: Arc::new(Shared {
            table,
            producer,
            topics,
            client: WebhookClient::new(config.request_timeout, config.guard.clone()),
            limits: EndpointLimits::new(
                config.endpoint_max_in_flight,
                config.endpoint_max_concurrency,
                &metrics,
            ),
            health: Health::new(config.health),
            keys: KeyCache::new(config.seal_key.clone()),
            max_retry_after: config.max_retry_after,
            shutdown: shutdown.clone(),
            metrics,
        }),
    };
    let result = consumer.run(shutdown, deliverer).await;
    tracing::info!("Deliverer stopped.");
    result
}

pub(crate) struct Shared {
    pub(crate) table: SubscriptionTable,
    pub(crate) producer: Producer,
    pub(crate) topics: Topics,
    client: WebhookClient,
    limits: EndpointLimits,
    pub(crate) health: Health,
    keys: KeyCache,
    max_retry_after: Duration,
    /// Cancelled on shutdown: deliveries still waiting for their limits then start no request.
    shutdown: CancellationToken,
    pub(crate) metrics: DelivererMetrics,
}

struct Deliverer {
    shared: Arc<Shared>,
}

type Done = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

impl Handler for Deliverer {
    type Error = Error;
    type Done = Done;

    async fn start(&mut self, message: OwnedMessage) -> Result<Done, Error> {
        // The key is the endpoint id; a slow endpoint blocks this loop only once it has the
        // maximum deliveries in flight.
        let endpoint_key = message
            .key()
            .map(|key| String::from_utf8_lossy(key).into_owned());
        let hold = match &endpoint_key {
            Some(endpoint_id) => Some(self.shared.limits.hold(endpoint_id).await),
            None => None,
        };
        let span = tracing::info_span!(
            "delivery",
            endpoint_id = endpoint_key.as_deref().unwrap_or_default(),
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            attempt = tracing::field::Empty,
        );
        let shared = self.shared.clone();
        let work = async move {
            let result = shared.process(message).await;
            drop(hold);
            result
        };
        Ok(Box::pin(work.instrument(span)))
    }
}

/// The result of one HTTP attempt.
pub(crate) struct Tried {
    pub(crate) summary: AttemptSummary,
    pub(crate) verdict: Verdict,
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

        tracing::Span::current().record("attempt", delivery.attempts.len() + 1);

        // Endpoint changes written before this delivery must be visible to it.
        let written_ms = message.timestamp().to_millis().unwrap_or_else(now_ms);
        self.table.ensure_fresh(written_ms).await?;
        let endpoint = match self.table.get(&delivery.endpoint_id) {
            Some(endpoint) if endpoint.enabled => endpoint,
            Some(endpoint) => {
                let reason = match endpoint.disabled_reason.as_str() {
                    "" => "endpoint disabled".to_string(),
                    why => format!("endpoint disabled: {why}"),
                };
                self.metrics.dead_letters.endpoint_disabled.inc();
                return self.dead_letter(delivery, &reason).await;
            }
            None => {
                self.metrics.dead_letters.endpoint_deleted.inc();
                return self.dead_letter(delivery, "endpoint deleted").await;
            }
        };

        let permit = self
            .limits
            .admit(&endpoint.endpoint_id, endpoint.rate_limit)
            .await;
        if self.shutdown.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let tried = self.attempt(&endpoint, &delivery).await;
        drop(permit);
        self.record(&endpoint, delivery, tried).await
    }

    /// Signs and POSTs the delivery once.
    async fn attempt(&self, endpoint: &Subscription, delivery: &Delivery) -> Tried {
        let number = delivery.attempts.len() as i32 + 1;
        let started_at_ms = now_ms();
        let clock = Instant::now();
        let keys = self.keys.get(endpoint);
        let result = match keys.signing(started_at_ms) {
            Ok(keys) => {
                let timestamp = started_at_ms / 1000;
                let signature = keys
                    .iter()
                    .map(|key| key.sign(&delivery.event_id, timestamp, &delivery.payload))
                    .collect::<Vec<_>>()
                    .join(" ");
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
                classify(
                    response.status,
                    response.retry_after.as_deref(),
                    SystemTime::now(),
                    self.max_retry_after,
                ),
                response.excerpt,
            ),
            Err(reason) => (
                None,
                Verdict::Retry {
                    reason,
                    not_before: None,
                },
                String::new(),
            ),
        };
        let error = match &verdict {
            Verdict::Delivered => None,
            Verdict::Retry { reason, .. } | Verdict::Gone { reason } => Some(reason.clone()),
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

    /// Sends a request; the error text includes every cause, such as "connection refused".
    async fn send(&self, outgoing: Outgoing<'_>) -> Result<crate::client::Response, String> {
        self.client
            .send(outgoing)
            .await
            .map_err(|error| aurora_common::error_chain(&error))
    }
}
