//! Kafka client configurations: one place decides producer durability and consumer commits.

use rdkafka::admin::AdminClient;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaArgs;
use crate::Error;

/// Base configuration: bootstrap servers and the user's extra properties.
pub fn client_config(args: &KafkaArgs) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.bootstrap_servers)
        // Back off up to 10 s between reconnects, so an unreachable broker is not retried
        // (and logged) ten times a second.
        .set("reconnect.backoff.max.ms", "10000");
    apply(&mut config, &args.kafka_properties);
    config
}

/// Sets the user's properties last, so that they override the defaults chosen here.
fn apply(config: &mut ClientConfig, properties: &[(String, String)]) {
    for (key, value) in properties {
        config.set(key, value);
    }
}

/// Creates a producer whose acknowledgements mean the record is durable: idempotent, acks from all
/// in-sync replicas, retries without reordering.
pub fn producer(args: &KafkaArgs) -> Result<Producer, Error> {
    let mut config = client_config(args);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        // One below the idempotent producer's window of 5 requests per partition, so the
        // connection's limit binds first. When the window of a partition is full and its next
        // batch is ready, librdkafka 2.12's broker thread polls with a zero timeout until a
        // response arrives. When the connection's limit is reached first, it waits on the
        // socket instead.
        // aurora-bench measured the router's CPU time fall from 8.6 to 1.4 s for 10,000
        // events on tansu with one record per batch.
        .set("max.in.flight.requests.per.connection", "4");
    apply(&mut config, &args.kafka_properties);
    apply(&mut config, &args.producer_properties);
    config
        .create_with_context(QuietContext::default())
        .map_err(Error::kafka("creating the Kafka producer"))
}

/// Configuration of a consumer in `group_id` that commits only what the caller marks done.
pub fn consumer_config(args: &KafkaArgs, group_id: &str) -> ClientConfig {
    let mut config = client_config(args);
    config
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Bound what librdkafka fetches ahead of the handlers, so that a large backlog stays
        // on the broker. With its defaults (100,000 records per partition, 64 MiB) a router
        // draining 100,000 events on tansu peaked at 168 MiB of RSS.
        .set("queued.min.messages", "10000")
        .set("queued.max.messages.kbytes", "16384");
    apply(&mut config, &args.kafka_properties);
    apply(&mut config, &args.consumer_properties);
    config
}

/// How often the same client error is logged, at most.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Logger of client errors that repeats an identical error at most every 30 s, so that an
/// unreachable broker does not flood the log, and that skips partition-EOF notices, which
/// readers that ask for them (`enable.partition.eof`) handle themselves.
#[derive(Default)]
pub struct ErrorLog {
    last_logged: Mutex<HashMap<String, Instant>>,
}

impl ErrorLog {
    /// Logs a client error unless it is a partition-EOF notice or was logged recently.
    pub fn report(&self, error: &KafkaError, reason: &str) {
        let eof = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if eof {
            return;
        }
        let mut last_logged = self
            .last_logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let recent = last_logged
            .get(reason)
            .is_some_and(|logged| now.duration_since(*logged) < ERROR_LOG_INTERVAL);
        if !recent {
            last_logged.insert(reason.to_string(), now);
            tracing::error!(error = %error, reason, "Kafka client error; identical errors are logged at most every 30 s.");
        }
    }
}

/// Client context of producers and plain consumers: errors go through [`ErrorLog`].
#[derive(Default)]
pub struct QuietContext {
    errors: ErrorLog,
}

impl ClientContext for QuietContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.report(&error, reason);
    }
}

impl ConsumerContext for QuietContext {}

/// The producer type of every component.
pub type Producer = FutureProducer<QuietContext>;

/// Creates an admin client for topic creation and offset queries.
pub fn admin(args: &KafkaArgs) -> Result<AdminClient<DefaultClientContext>, Error> {
    client_config(args)
        .create()
        .map_err(Error::kafka("creating the Kafka admin client"))
}
