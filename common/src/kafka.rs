//! Kafka client configurations: one place decides producer durability and consumer commits.

use rdkafka::admin::AdminClient;
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
    config.set("bootstrap.servers", &args.bootstrap_servers);
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
pub fn producer(args: &KafkaArgs) -> Result<FutureProducer, Error> {
    let mut config = client_config(args);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4");
    apply(&mut config, &args.kafka_properties);
    apply(&mut config, &args.producer_properties);
    config
        .create()
        .map_err(Error::kafka("creating the Kafka producer"))
}

/// Configuration of a consumer in `group_id` that commits only what the caller marks done.
pub fn consumer_config(args: &KafkaArgs, group_id: &str) -> ClientConfig {
    let mut config = client_config(args);
    config
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    apply(&mut config, &args.kafka_properties);
    apply(&mut config, &args.consumer_properties);
    config
}

/// Client context that logs client errors like the default one, except partition-EOF
/// notices, which readers that ask for them (`enable.partition.eof`) handle themselves.
pub struct EofAwareContext;

impl ClientContext for EofAwareContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !eof {
            tracing::error!(error = %error, reason, "Kafka client error.");
        }
    }
}

impl ConsumerContext for EofAwareContext {}

/// Creates an admin client for topic creation and offset queries.
pub fn admin(args: &KafkaArgs) -> Result<AdminClient<DefaultClientContext>, Error> {
    client_config(args)
        .create()
        .map_err(Error::kafka("creating the Kafka admin client"))
}
