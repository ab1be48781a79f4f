//! Configuration, topic layout and Kafka client set-up shared by the AuroraPress components.

pub mod config;
pub mod consume;
pub mod contract;
pub mod kafka;
pub mod metrics;
pub mod offsets;
pub mod produce;
pub mod quarantine;
pub mod read;
pub mod sealed;
pub mod table;
pub mod time;
pub mod topics;

pub use config::{KafkaArgs, SealArgs, TopicArgs};
pub use metrics::Metrics;
pub use offsets::OffsetTracker;
pub use table::{IdempotencyTable, SubscriptionTable, Table, TenantTable};
pub use topics::{RetryTier, Topics};

/// Errors of the shared Kafka plumbing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Kafka client failed in the named operation.
    #[error("{operation} failed")]
    Kafka {
        operation: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Creating a topic failed for a reason other than that it exists.
    #[error("creating topic {topic} failed: {reason}")]
    CreateTopic { topic: String, reason: String },
    /// A topic has no partitions in the broker's metadata.
    #[error("topic {topic} was not found on the broker; run `aurora topics create` first")]
    TopicNotFound { topic: String },
    /// A configuration value is invalid.
    #[error("invalid {name}: {reason}")]
    Config { name: &'static str, reason: String },
    /// A background task stopped before it finished.
    #[error("{0} stopped unexpectedly")]
    TaskStopped(&'static str),
}

impl Error {
    /// Wraps a Kafka client error with the operation that failed.
    pub fn kafka(operation: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> Error {
        let operation = operation.into();
        move |source| Error::Kafka { operation, source }
    }
}
