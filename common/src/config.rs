//! Command-line and environment configuration shared by every component.

use std::time::Duration;

use clap::Args;

use crate::topics::{RetryTier, Topics};
use crate::Error;

/// Kafka connection settings, topic prefix and retry tiers.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated host:port pairs.
    #[arg(
        long,
        env = "AURORA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub bootstrap_servers: String,

    /// Extra librdkafka client property as key=value (for example security.protocol=SSL); repeatable.
    #[arg(long = "kafka-property", env = "AURORA_KAFKA_PROPERTIES", value_delimiter = ',', value_parser = parse_property, global = true)]
    pub kafka_properties: Vec<(String, String)>,

    /// Extra librdkafka property for producers only, as key=value (for example linger.ms=20); repeatable.
    #[arg(long = "producer-property", env = "AURORA_PRODUCER_PROPERTIES", value_delimiter = ',', value_parser = parse_property, global = true)]
    pub producer_properties: Vec<(String, String)>,

    /// Extra librdkafka property for consumers only, as key=value (for example session.timeout.ms=10000); repeatable.
    #[arg(long = "consumer-property", env = "AURORA_CONSUMER_PROPERTIES", value_delimiter = ',', value_parser = parse_property, global = true)]
    pub consumer_properties: Vec<(String, String)>,

    /// Prefix of every AuroraPress topic and consumer group name.
    #[arg(
        long,
        env = "AURORA_TOPIC_PREFIX",
        default_value = "aurora.",
        global = true
    )]
    pub topic_prefix: String,

    /// Retry tier delays, comma-separated, one retry topic each (for example 1s,30s,5m).
    #[arg(long, env = "AURORA_RETRY_TIERS", default_value = "1s,30s,5m,30m,2h,6h,12h", value_delimiter = ',', value_parser = parse_duration, global = true)]
    pub retry_tiers: Vec<Duration>,
}

impl KafkaArgs {
    /// Arguments for a broker at `bootstrap_servers` with default settings.
    pub fn new(bootstrap_servers: impl Into<String>, topic_prefix: impl Into<String>) -> Self {
        KafkaArgs {
            bootstrap_servers: bootstrap_servers.into(),
            kafka_properties: Vec::new(),
            producer_properties: Vec::new(),
            consumer_properties: Vec::new(),
            topic_prefix: topic_prefix.into(),
            retry_tiers: ["1s", "30s", "5m", "30m", "2h", "6h", "12h"]
                .iter()
                .filter_map(|text| parse_duration(text).ok())
                .collect(),
        }
    }

    /// Checks every value, so that a bad one stops start-up with its name.
    pub fn validate(&self) -> Result<(), Error> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(Error::Config {
                name: "AURORA_BOOTSTRAP_SERVERS (--bootstrap-servers)",
                reason: "it is empty; give host:port pairs such as 127.0.0.1:9092".into(),
            });
        }
        if self
            .topic_prefix
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'))
        {
            return Err(Error::Config {
                name: "AURORA_TOPIC_PREFIX (--topic-prefix)",
                reason: format!(
                    "{:?} contains characters Kafka does not allow in topic names; use letters, digits, '.', '_' and '-'",
                    self.topic_prefix
                ),
            });
        }
        if self.retry_tiers.is_empty() {
            return Err(Error::Config {
                name: "AURORA_RETRY_TIERS (--retry-tiers)",
                reason: "at least one delay is required".into(),
            });
        }
        let increasing = self.retry_tiers.windows(2).all(|pair| pair[0] < pair[1]);
        if self.retry_tiers[0].is_zero() || !increasing {
            return Err(Error::Config {
                name: "AURORA_RETRY_TIERS (--retry-tiers)",
                reason: "delays must be above zero and strictly increasing, such as 1s,30s,5m"
                    .into(),
            });
        }
        Ok(())
    }

    /// Topic names derived from the prefix and the retry tiers.
    pub fn topics(&self) -> Topics {
        let tiers = self
            .retry_tiers
            .iter()
            .map(|delay| RetryTier::new(&self.topic_prefix, *delay))
            .collect();
        Topics::new(&self.topic_prefix, tiers)
    }

    /// Consumer group id of a component: the topic prefix followed by its name.
    pub fn group_id(&self, component: &str) -> String {
        format!("{}{component}", self.topic_prefix)
    }
}

/// Partition counts and replication factor of created topics.
#[derive(Debug, Clone, Args)]
pub struct TopicArgs {
    /// Partitions of the events topic.
    #[arg(long, env = "AURORA_EVENTS_PARTITIONS", default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..))]
    pub events_partitions: i32,

    /// Partitions of the deliveries, retry, attempts and dead-letter topics.
    #[arg(long, env = "AURORA_DELIVERIES_PARTITIONS", default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..))]
    pub deliveries_partitions: i32,

    /// Replication factor of every topic; use 3 on a production cluster.
    #[arg(long, env = "AURORA_REPLICATION_FACTOR", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    pub replication_factor: i32,
}

impl Default for TopicArgs {
    fn default() -> Self {
        TopicArgs {
            events_partitions: 6,
            deliveries_partitions: 6,
            replication_factor: 1,
        }
    }
}

/// The key that seals endpoint signing secrets on the subscriptions topic.
#[derive(Debug, Clone, Default, Args)]
pub struct SealArgs {
    /// Key sealing endpoint secrets at rest: base64 of 32 bytes. Prefer the environment
    /// variable or --secret-key-file, because command lines are visible to other users.
    #[arg(long, env = "AURORA_SECRET_KEY", hide_env_values = true, global = true)]
    pub secret_key: Option<String>,
    /// File holding the sealing key in base64, as an alternative to --secret-key.
    #[arg(
        long,
        env = "AURORA_SECRET_KEY_FILE",
        conflicts_with = "secret_key",
        global = true
    )]
    pub secret_key_file: Option<std::path::PathBuf>,
}

impl SealArgs {
    /// Loads the sealing key, if one is configured.
    pub fn load(&self) -> Result<Option<crate::sealed::SealKey>, String> {
        let text = match (&self.secret_key, &self.secret_key_file) {
            (Some(text), _) => text.clone(),
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|error| {
                format!("reading the secret key file {}: {error}", path.display())
            })?,
            (None, None) => return Ok(None),
        };
        crate::sealed::SealKey::from_base64(&text)
            .map(Some)
            .map_err(|error| format!("invalid secret key: {error}"))
    }
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("{text:?} is not key=value")),
    }
}

/// Parses a duration such as `250ms`, `30s`, `5m` or `2h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|error| {
        format!("{text:?} is not a duration such as 250ms, 30s, 5m or 2h: {error}")
    })
}

/// Parses a duration that must be above zero, such as a timeout.
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("{text:?} must be above zero"));
    }
    Ok(duration)
}
