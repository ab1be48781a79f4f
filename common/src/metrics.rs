//! Prometheus metrics of every component, in one registry per process, so that `aurora dev`
//! serves the router's, deliverer's and retry stage's metrics on one port.
//!
//! Components resolve their label sets once at start-up, so that recording an outcome on the
//! delivery path is an atomic add or a histogram observation. Gauges that describe state
//! (deliveries in flight per endpoint) are read from that state at scrape time instead of
//! being updated per delivery. Consumer lag comes from librdkafka's statistics callback.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Deserialize;

use crate::topics::RetryTier;

/// How often librdkafka reports statistics, from which consumer lag is read, unless
/// `statistics.interval.ms` is set as a consumer property.
pub const LAG_STATISTICS_INTERVAL: Duration = Duration::from_secs(5);

/// Upper bounds of the attempt duration histogram, in seconds: from a fast local receiver to
/// the default 30 s request timeout.
const ATTEMPT_SECONDS_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabels {
    component: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    group: String,
    topic: String,
    partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint_id: String,
}

/// The families of every component, registered once per process.
#[derive(Debug)]
struct Families {
    deliveries: Family<OutcomeLabels, Counter>,
    attempt_seconds: Histogram,
    retries_scheduled: Family<TierLabels, Counter>,
    retries_released: Family<TierLabels, Counter>,
    retries_waiting: Family<TierLabels, Gauge>,
    dead_letters: Family<ReasonLabels, Counter>,
    quarantined: Family<ComponentLabels, Counter>,
    rate_limit_waits: Counter,
    rate_limit_wait_seconds: Counter<f64, AtomicU64>,
    events_routed: Counter,
    events_unmatched: Counter,
    deliveries_routed: Counter,
    ingest_requests: Family<StatusLabels, Counter>,
    api_requests: Family<StatusLabels, Counter>,
    bridge_events: Counter,
    bridge_published: Counter,
    consumer_lag: Family<LagLabels, Gauge>,
}

/// The metrics registry of a process; clones share it.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    families: Arc<Families>,
    endpoints: Arc<EndpointCollector>,
    lag_statistics: bool,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Metrics")
            .field("lag_statistics", &self.lag_statistics)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    /// Creates a registry that is not served: recording costs the same, and consumers
    /// request no statistics from librdkafka.
    fn default() -> Self {
        Metrics::build(false)
    }
}

impl Metrics {
    /// Creates a registry that is served, so consumers also report their lag.
    pub fn new() -> Self {
        Metrics::build(true)
    }

    fn build(lag_statistics: bool) -> Self {
        let families = Families {
            deliveries: Family::default(),
            attempt_seconds: Histogram::new(ATTEMPT_SECONDS_BUCKETS),
            retries_scheduled: Family::default(),
            retries_released: Family::default(),
            retries_waiting: Family::default(),
            dead_letters: Family::default(),
            quarantined: Family::default(),
            rate_limit_waits: Counter::default(),
            rate_limit_wait_seconds: Counter::default(),
            events_routed: Counter::default(),
            events_unmatched: Counter::default(),
            deliveries_routed: Counter::default(),
            ingest_requests: Family::default(),
            api_requests: Family::default(),
            bridge_events: Counter::default(),
            bridge_published: Counter::default(),
            consumer_lag: Family::default(),
        };
        let endpoints = Arc::new(EndpointCollector::default());
        let mut registry = Registry::with_prefix("aurora");
        register_families(&mut registry, &families);
        registry.register_collector(Box::new(endpoints.clone()));
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            families: Arc::new(families),
            endpoints,
            lag_statistics,
        }
    }

    /// Encodes every metric in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
        Ok(text)
    }

    /// Returns the handles a deliverer records with, one retry counter per tier.
    pub fn deliverer(&self, tiers: &[RetryTier]) -> DelivererMetrics {
        let families = &self.families;
        let outcome = |outcome| {
            families
                .deliveries
                .get_or_create_owned(&OutcomeLabels { outcome })
        };
        let reason = |reason| {
            families
                .dead_letters
                .get_or_create_owned(&ReasonLabels { reason })
        };
        DelivererMetrics {
            delivered: outcome("delivered"),
            retry_scheduled: outcome("retry_scheduled"),
            dead_lettered: outcome("dead_lettered"),
            attempt_seconds: families.attempt_seconds.clone(),
            retries_scheduled: tiers
                .iter()
                .map(|tier| {
                    families
                        .retries_scheduled
                        .get_or_create_owned(&tier_labels(tier))
                })
                .collect(),
            dead_letters: DeadLetterCounters {
                attempts_exhausted: reason("attempts_exhausted"),
                endpoint_gone: reason("endpoint_gone"),
                endpoint_disabled: reason("endpoint_disabled"),
                endpoint_deleted: reason("endpoint_deleted"),
            },
            quarantined: self.quarantined("deliverer"),
            rate_limit_waits: families.rate_limit_waits.clone(),
            rate_limit_wait_seconds: families.rate_limit_wait_seconds.clone(),
            endpoints: self.endpoints.clone(),
        }
    }

    /// Returns the handles a router records with.
    pub fn router(&self) -> RouterMetrics {
        RouterMetrics {
            events_routed: self.families.events_routed.clone(),
            events_unmatched: self.families.events_unmatched.clone(),
            deliveries_routed: self.families.deliveries_routed.clone(),
            quarantined: self.quarantined("router"),
        }
    }

    /// Returns the handles of the retry stage, keyed by retry topic.
    pub fn retry(&self, tiers: &[RetryTier]) -> RetryMetrics {
        let families = &self.families;
        let by_topic = tiers
            .iter()
            .map(|tier| {
                let labels = tier_labels(tier);
                let handles = TierHandles {
                    released: families.retries_released.get_or_create_owned(&labels),
                    waiting: families.retries_waiting.get_or_create_owned(&labels),
                };
                (tier.topic.clone(), handles)
            })
            .collect();
        RetryMetrics {
            by_topic: Arc::new(by_topic),
            quarantined: self.quarantined("retry"),
        }
    }

    /// Returns the response counter of the ingest API.
    pub fn ingest(&self) -> RequestMetrics {
        RequestMetrics {
            requests: self.families.ingest_requests.clone(),
        }
    }

    /// Returns the response counter of the tenant API.
    pub fn api(&self) -> RequestMetrics {
        RequestMetrics {
            requests: self.families.api_requests.clone(),
        }
    }

    /// Returns the handles of `aurora bridge sqs-in`.
    pub fn sqs_in(&self) -> SqsInMetrics {
        SqsInMetrics {
            events: self.families.bridge_events.clone(),
            quarantined: self.quarantined("bridge-sqs-in"),
        }
    }

    /// Returns the handles of `aurora bridge sns-out`.
    pub fn sns_out(&self) -> SnsOutMetrics {
        SnsOutMetrics {
            published: self.families.bridge_published.clone(),
            quarantined: self.quarantined("bridge-sns-out"),
        }
    }

    /// Returns a consumer lag reporter for `group`, or `None` when this registry is not
    /// served, so that consumers request no statistics from librdkafka.
    pub fn consumer_lag(&self, group: &str) -> Option<LagReporter> {
        self.lag_statistics.then(|| LagReporter {
            group: group.to_string(),
            gauges: self.families.consumer_lag.clone(),
            reported: Mutex::default(),
        })
    }

    fn quarantined(&self, component: &'static str) -> Counter {
        self.families
            .quarantined
            .get_or_create_owned(&ComponentLabels { component })
    }
}

/// Registers every family; the registry adds the final period to each help text.
fn register_families(registry: &mut Registry, families: &Families) {
    registry.register(
        "deliveries",
        "Deliveries processed by the deliverer, by outcome: delivered, retry_scheduled or dead_lettered",
        families.deliveries.clone(),
    );
    registry.register(
        "attempt_duration_seconds",
        "Duration of HTTP delivery attempts, response body included",
        families.attempt_seconds.clone(),
    );
    registry.register(
        "retries_scheduled",
        "Failed deliveries sent to a retry tier, by tier delay",
        families.retries_scheduled.clone(),
    );
    registry.register(
        "retries_released",
        "Deliveries the retry stage sent back to delivery once due, by tier delay",
        families.retries_released.clone(),
    );
    registry.register(
        "retries_waiting",
        "Retry records held by the retry stage until due, by tier delay",
        families.retries_waiting.clone(),
    );
    registry.register(
        "dead_letters",
        "Deliveries written to the dead-letter topic, by reason",
        families.dead_letters.clone(),
    );
    registry.register(
        "quarantined",
        "Records copied to the quarantine topic because they could not be understood, by component",
        families.quarantined.clone(),
    );
    registry.register(
        "rate_limit_waits",
        "Requests that waited for their endpoint's rate limit",
        families.rate_limit_waits.clone(),
    );
    registry.register(
        "rate_limit_wait_seconds",
        "Time requests spent waiting for their endpoint's rate limit",
        families.rate_limit_wait_seconds.clone(),
    );
    registry.register(
        "events_routed",
        "Events whose deliveries the broker acknowledged, matched or not",
        families.events_routed.clone(),
    );
    registry.register(
        "events_unmatched",
        "Events that matched no endpoint",
        families.events_unmatched.clone(),
    );
    registry.register(
        "deliveries_routed",
        "Deliveries the router enqueued, one per event and matching endpoint",
        families.deliveries_routed.clone(),
    );
    registry.register(
        "ingest_requests",
        "Requests to the ingest API, by HTTP response status",
        families.ingest_requests.clone(),
    );
    registry.register(
        "api_requests",
        "Requests to the tenant API, by HTTP response status",
        families.api_requests.clone(),
    );
    registry.register(
        "bridge_sqs_events",
        "Events the SQS bridge produced from queue messages, counted once the broker acknowledged them",
        families.bridge_events.clone(),
    );
    registry.register(
        "bridge_sns_published",
        "Events the SNS bridge published, counted once SNS accepted them",
        families.bridge_published.clone(),
    );
    registry.register(
        "consumer_lag",
        "Records between a partition's end and the group's committed offset, from librdkafka statistics",
        families.consumer_lag.clone(),
    );
}

fn tier_labels(tier: &RetryTier) -> TierLabels {
    TierLabels {
        tier: humantime::format_duration(tier.delay)
            .to_string()
            .replace(' ', ""),
    }
}

/// Dead-letter counters by reason.
#[derive(Clone, Debug)]
pub struct DeadLetterCounters {
    /// The last retry tier failed too.
    pub attempts_exhausted: Counter,
    /// The endpoint responded 410 Gone.
    pub endpoint_gone: Counter,
    /// The endpoint was disabled, before or because of this attempt.
    pub endpoint_disabled: Counter,
    /// The endpoint no longer exists.
    pub endpoint_deleted: Counter,
}

/// Metric handles of a deliverer.
#[derive(Clone, Debug)]
pub struct DelivererMetrics {
    pub delivered: Counter,
    pub retry_scheduled: Counter,
    pub dead_lettered: Counter,
    /// Attempt durations in seconds.
    pub attempt_seconds: Histogram,
    /// Deliveries sent to each retry tier, in tier order.
    pub retries_scheduled: Vec<Counter>,
    pub dead_letters: DeadLetterCounters,
    pub quarantined: Counter,
    pub rate_limit_waits: Counter,
    pub rate_limit_wait_seconds: Counter<f64, AtomicU64>,
    endpoints: Arc<EndpointCollector>,
}

impl Default for DelivererMetrics {
    /// Handles on a registry that is not served.
    fn default() -> Self {
        Metrics::default().deliverer(&[])
    }
}

impl DelivererMetrics {
    /// Reports the per-endpoint gauges that `source` returns at every scrape, for as long as
    /// `source` returns `Some`.
    pub fn observe_endpoints(
        &self,
        source: impl Fn() -> Option<Vec<EndpointLoad>> + Send + Sync + 'static,
    ) {
        self.endpoints
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(source));
    }
}

/// Load of one endpoint at the moment of a scrape.
#[derive(Debug, Clone, Default)]
pub struct EndpointLoad {
    pub endpoint_id: String,
    /// Deliveries held, waiting for a limit or being attempted.
    pub deliveries_in_flight: i64,
    /// HTTP requests under way.
    pub requests_in_flight: i64,
}

type EndpointSource = Box<dyn Fn() -> Option<Vec<EndpointLoad>> + Send + Sync>;

/// Collector of the per-endpoint gauges, read from the deliverers' limits at scrape time.
#[derive(Default)]
struct EndpointCollector {
    sources: Mutex<Vec<EndpointSource>>,
}

impl fmt::Debug for EndpointCollector {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("EndpointCollector")
            .finish_non_exhaustive()
    }
}

impl Collector for EndpointCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let deliveries = Family::<EndpointLabels, Gauge>::default();
        let requests = Family::<EndpointLabels, Gauge>::default();
        {
            let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
            // A source returns None once its deliverer has stopped.
            sources.retain(|source| match source() {
                Some(loads) => {
                    for load in loads {
                        let labels = EndpointLabels {
                            endpoint_id: load.endpoint_id,
                        };
                        deliveries
                            .get_or_create(&labels)
                            .inc_by(load.deliveries_in_flight);
                        requests
                            .get_or_create(&labels)
                            .inc_by(load.requests_in_flight);
                    }
                    true
                }
                None => false,
            });
        }
        let descriptor = encoder.encode_descriptor(
            "endpoint_deliveries_in_flight",
            "Deliveries a deliverer holds per endpoint, waiting for a limit or being attempted.",
            None,
            deliveries.metric_type(),
        )?;
        deliveries.encode(descriptor)?;
        let descriptor = encoder.encode_descriptor(
            "endpoint_requests_in_flight",
            "HTTP requests under way per endpoint, not counting those waiting for the rate limit.",
            None,
            requests.metric_type(),
        )?;
        requests.encode(descriptor)
    }
}

/// Metric handles of a router.
#[derive(Clone, Debug)]
pub struct RouterMetrics {
    pub events_routed: Counter,
    pub events_unmatched: Counter,
    pub deliveries_routed: Counter,
    pub quarantined: Counter,
}

impl Default for RouterMetrics {
    /// Handles on a registry that is not served.
    fn default() -> Self {
        Metrics::default().router()
    }
}

/// Handles of one retry tier.
#[derive(Clone, Debug)]
pub struct TierHandles {
    /// Deliveries sent back to delivery.
    pub released: Counter,
    /// Records held until due.
    pub waiting: Gauge,
}

/// Metric handles of the retry stage.
#[derive(Clone, Debug)]
pub struct RetryMetrics {
    by_topic: Arc<HashMap<String, TierHandles>>,
    pub quarantined: Counter,
}

impl Default for RetryMetrics {
    /// Handles on a registry that is not served.
    fn default() -> Self {
        Metrics::default().retry(&[])
    }
}

impl RetryMetrics {
    /// Returns the handles of the tier whose topic is `topic`.
    pub fn tier(&self, topic: &str) -> Option<&TierHandles> {
        self.by_topic.get(topic)
    }
}

/// Responses of an HTTP API by status: the ingest API's or the tenant API's.
#[derive(Clone, Debug, Default)]
pub struct RequestMetrics {
    requests: Family<StatusLabels, Counter>,
}

impl RequestMetrics {
    /// Counts a response by its HTTP status.
    pub fn request(&self, status: u16) {
        self.requests.get_or_create(&StatusLabels { status }).inc();
    }
}

/// Metric handles of `aurora bridge sqs-in`.
#[derive(Clone, Debug)]
pub struct SqsInMetrics {
    pub events: Counter,
    pub quarantined: Counter,
}

impl Default for SqsInMetrics {
    /// Handles on a registry that is not served.
    fn default() -> Self {
        Metrics::default().sqs_in()
    }
}

/// Metric handles of `aurora bridge sns-out`.
#[derive(Clone, Debug)]
pub struct SnsOutMetrics {
    pub published: Counter,
    pub quarantined: Counter,
}

impl Default for SnsOutMetrics {
    /// Handles on a registry that is not served.
    fn default() -> Self {
        Metrics::default().sns_out()
    }
}

/// Sets the consumer lag gauges of one consumer group from librdkafka statistics.
pub struct LagReporter {
    group: String,
    gauges: Family<LagLabels, Gauge>,
    /// Partitions reported by the previous statistics, whose gauges are removed when the
    /// partition is no longer assigned.
    reported: Mutex<HashSet<(String, i32)>>,
}

/// The part of librdkafka's statistics JSON that lag is read from.
#[derive(Deserialize)]
struct Statistics {
    #[serde(default)]
    topics: HashMap<String, TopicStatistics>,
}

#[derive(Deserialize)]
struct TopicStatistics {
    #[serde(default)]
    partitions: HashMap<String, PartitionStatistics>,
}

#[derive(Deserialize)]
struct PartitionStatistics {
    partition: i32,
    /// Whether the application assigned the partition to this consumer.
    #[serde(default)]
    desired: bool,
    /// End offset minus committed offset; -1 while either is unknown.
    consumer_lag: i64,
}

impl LagReporter {
    /// librdkafka property that makes it call the statistics callback.
    pub fn statistics_interval_ms(&self) -> String {
        LAG_STATISTICS_INTERVAL.as_millis().to_string()
    }

    /// Updates the gauges from one statistics JSON document. A partition appears once it is
    /// assigned and the group has a committed offset on it.
    pub fn report(&self, statistics_json: &[u8]) {
        let statistics: Statistics = match serde_json::from_slice(statistics_json) {
            Ok(statistics) => statistics,
            Err(error) => {
                tracing::debug!(error = %error, "librdkafka statistics could not be parsed; consumer lag not updated.");
                return;
            }
        };
        let mut current = HashSet::new();
        for (topic, topic_statistics) in statistics.topics {
            for partition in topic_statistics.partitions.into_values() {
                // Partition -1 is librdkafka's internal unassigned partition.
                if partition.partition < 0 || !partition.desired || partition.consumer_lag < 0 {
                    continue;
                }
                self.gauges
                    .get_or_create(&self.labels(&topic, partition.partition))
                    .set(partition.consumer_lag);
                current.insert((topic.clone(), partition.partition));
            }
        }
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        for (topic, partition) in reported.difference(&current) {
            self.gauges.remove(&self.labels(topic, *partition));
        }
        *reported = current;
    }

    fn labels(&self, topic: &str, partition: i32) -> LagLabels {
        LagLabels {
            group: self.group.clone(),
            topic: topic.to_string(),
            partition,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_appear_in_the_text_format() {
        let metrics = Metrics::new();
        let tiers = [RetryTier::new("p.", Duration::from_secs(1))];
        let deliverer = metrics.deliverer(&tiers);
        deliverer.delivered.inc();
        deliverer.delivered.inc();
        deliverer.retries_scheduled[0].inc();
        deliverer.attempt_seconds.observe(0.02);
        let text = metrics.encode().unwrap();
        assert!(text.contains("aurora_deliveries_total{outcome=\"delivered\"} 2"));
        assert!(text.contains("aurora_deliveries_total{outcome=\"dead_lettered\"} 0"));
        assert!(text.contains("aurora_retries_scheduled_total{tier=\"1s\"} 1"));
        assert!(text.contains("aurora_attempt_duration_seconds_count 1"));
        assert!(text.ends_with("# EOF\n"));
        assert!(
            !text.contains(".."),
            "a help text ends in two periods:\n{text}"
        );
    }

    #[test]
    fn endpoint_gauges_read_their_source_until_it_stops() {
        let metrics = Metrics::new();
        let deliverer = metrics.deliverer(&[]);
        let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = running.clone();
        deliverer.observe_endpoints(move || {
            flag.load(std::sync::atomic::Ordering::SeqCst).then(|| {
                vec![EndpointLoad {
                    endpoint_id: "billing".into(),
                    deliveries_in_flight: 7,
                    requests_in_flight: 3,
                }]
            })
        });
        let text = metrics.encode().unwrap();
        assert!(text.contains("aurora_endpoint_deliveries_in_flight{endpoint_id=\"billing\"} 7"));
        assert!(text.contains("aurora_endpoint_requests_in_flight{endpoint_id=\"billing\"} 3"));

        running.store(false, std::sync::atomic::Ordering::SeqCst);
        let text = metrics.encode().unwrap();
        assert!(!text.contains("billing"));
    }

    #[test]
    fn lag_follows_assigned_partitions() {
        let metrics = Metrics::new();
        let reporter = metrics.consumer_lag("aurora.deliverer").unwrap();
        reporter.report(
            br#"{"name": "c", "topics": {"aurora.deliveries": {"topic": "aurora.deliveries",
                "partitions": {
                  "0": {"partition": 0, "desired": true, "consumer_lag": 12},
                  "1": {"partition": 1, "desired": false, "consumer_lag": 4},
                  "2": {"partition": 2, "desired": true, "consumer_lag": -1},
                  "-1": {"partition": -1, "desired": false, "consumer_lag": -1}}}}}"#,
        );
        let text = metrics.encode().unwrap();
        assert!(text.contains(
            "aurora_consumer_lag{group=\"aurora.deliverer\",topic=\"aurora.deliveries\",partition=\"0\"} 12"
        ));
        assert!(!text.contains("partition=\"1\""));
        assert!(!text.contains("partition=\"2\""));

        reporter.report(br#"{"topics": {}}"#);
        let text = metrics.encode().unwrap();
        assert!(!text.contains("partition=\"0\""));
    }

    #[test]
    fn unscraped_registry_asks_for_no_statistics() {
        assert!(Metrics::default().consumer_lag("g").is_none());
    }
}
