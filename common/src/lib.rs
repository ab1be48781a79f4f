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

/// Returns an error and its sources joined with ": ", leaving out a source whose text is
/// already part of the message, as when a wrapper repeats its cause.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

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

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layers(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |source, text| {
                Some(Layer {
                    text,
                    source: source.map(Box::new),
                })
            })
            .unwrap()
    }

    #[test]
    fn error_chain_joins_sources() {
        let error = layers(&["sending failed", "connect", "connection refused"]);
        assert_eq!(
            error_chain(&error),
            "sending failed: connect: connection refused"
        );
    }

    #[test]
    fn error_chain_skips_repeated_source() {
        let error = layers(&[
            "client error (Connect)",
            "client error (Connect)",
            "connection refused",
        ]);
        assert_eq!(
            error_chain(&error),
            "client error (Connect): connection refused"
        );
    }
}
