//! Settings of `aurora bridge sqs-in`, checked before any client is built.

use std::time::Duration;

use aurora_common::KafkaArgs;

use super::mapping::MappingRules;
use crate::aws::AwsSettings;
use crate::Error;

/// Handling of a message that cannot be mapped to an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnUnmappable {
    /// Copy it to the quarantine topic with the reason, then delete it from the queue.
    #[default]
    Quarantine,
    /// Leave it in the queue: it is received again after the visibility timeout, and the
    /// queue's redrive policy moves it to the dead-letter queue after maxReceiveCount receives.
    Leave,
}

/// Messages one ReceiveMessage or DeleteMessageBatch call handles, at most (an SQS limit).
pub const SQS_MAX_BATCH: i32 = 10;
/// Maximum long-poll wait that SQS accepts.
pub const SQS_MAX_WAIT: Duration = Duration::from_secs(20);
/// Maximum visibility timeout that SQS accepts (12 hours).
pub const SQS_MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// Settings of the inbound bridge.
#[derive(Debug, Clone)]
pub struct SqsInConfig {
    pub kafka: KafkaArgs,
    pub aws: AwsSettings,
    pub queue_url: String,
    pub mapping: MappingRules,
    pub on_unmappable: OnUnmappable,
    /// Messages per ReceiveMessage call, 1 to 10.
    pub max_messages: i32,
    /// Long-poll wait of each ReceiveMessage call, whole seconds up to 20 s.
    pub wait_time: Duration,
    /// How long a received message stays hidden from other receivers, whole seconds from
    /// 1 s to 12 h. A message not deleted by then is received again.
    pub visibility_timeout: Duration,
    /// Maximum time an acknowledged message waits for its delete batch to fill up.
    pub delete_interval: Duration,
    /// Receive loops that run at once in this process.
    pub pollers: usize,
    /// Registry the bridge records its metrics in.
    pub metrics: aurora_common::Metrics,
}

impl SqsInConfig {
    /// Settings with the defaults of the command line for `queue_url`.
    pub fn new(kafka: KafkaArgs, queue_url: impl Into<String>) -> Self {
        SqsInConfig {
            kafka,
            aws: AwsSettings::default(),
            queue_url: queue_url.into(),
            mapping: MappingRules::default(),
            on_unmappable: OnUnmappable::Quarantine,
            max_messages: SQS_MAX_BATCH,
            wait_time: SQS_MAX_WAIT,
            visibility_timeout: Duration::from_secs(30),
            delete_interval: Duration::from_secs(1),
            pollers: 2,
            metrics: aurora_common::Metrics::default(),
        }
    }

    /// Checks every value, so that a bad one stops start-up with its name.
    pub fn validate(&self) -> Result<(), Error> {
        self.check_receiving()?;
        self.check_mapping()
    }

    /// Checks the queue URL and the receive and delete settings against the SQS limits.
    fn check_receiving(&self) -> Result<(), Error> {
        let invalid = |name, reason: &str| {
            Err(Error::Config {
                name,
                reason: reason.to_string(),
            })
        };
        if !(self.queue_url.starts_with("https://") || self.queue_url.starts_with("http://")) {
            return Err(Error::Config {
                name: "--queue-url",
                reason: format!(
                    "{:?} is not a queue URL such as https://sqs.us-east-1.amazonaws.com/123456789012/orders",
                    self.queue_url
                ),
            });
        }
        if !(1..=SQS_MAX_BATCH).contains(&self.max_messages) {
            return invalid("--max-messages", "SQS returns 1 to 10 messages per receive");
        }
        if self.wait_time > SQS_MAX_WAIT || self.wait_time.subsec_nanos() != 0 {
            return invalid("--wait-time", "give whole seconds from 0s to 20s");
        }
        let visibility = self.visibility_timeout;
        if visibility < Duration::from_secs(1)
            || visibility > SQS_MAX_VISIBILITY
            || visibility.subsec_nanos() != 0
        {
            return invalid("--visibility-timeout", "give whole seconds from 1s to 12h");
        }
        if self.delete_interval.is_zero() {
            return invalid("--delete-interval", "it must be above zero, such as 1s");
        }
        if self.pollers == 0 {
            return invalid("--pollers", "at least one is required");
        }
        Ok(())
    }

    /// Checks the attribute names and the values that apply to every message.
    fn check_mapping(&self) -> Result<(), Error> {
        if self.mapping.type_attributes.is_empty() && self.mapping.default_event_type.is_none() {
            return Err(Error::Config {
                name: "--type-attribute",
                reason: "name at least one attribute, or give --default-event-type".into(),
            });
        }
        if let Some(tenant_id) = &self.mapping.tenant_id {
            crate::check_tenant_id(tenant_id)?;
        }
        if let Some(event_type) = &self.mapping.default_event_type {
            aurora_common::contract::check_event_fields(
                "id",
                event_type,
                "application/json",
                b"{}",
            )
            .map_err(|reason| Error::Config {
                name: "--default-event-type",
                reason,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SqsInConfig {
        SqsInConfig::new(
            KafkaArgs::new("127.0.0.1:9092", "aurora."),
            "http://127.0.0.1:5000/123456789012/orders",
        )
    }

    #[test]
    fn defaults_are_valid() {
        assert!(config().validate().is_ok());
    }

    #[test]
    fn invalid_values_name_their_option() {
        type Change = fn(&mut SqsInConfig);
        let cases: [(Change, &str); 9] = [
            (|c| c.queue_url = "orders".into(), "--queue-url"),
            (|c| c.max_messages = 11, "--max-messages"),
            (|c| c.wait_time = Duration::from_secs(21), "--wait-time"),
            (|c| c.wait_time = Duration::from_millis(1500), "--wait-time"),
            (
                |c| c.visibility_timeout = Duration::ZERO,
                "--visibility-timeout",
            ),
            (|c| c.delete_interval = Duration::ZERO, "--delete-interval"),
            (|c| c.pollers = 0, "--pollers"),
            (
                |c| c.mapping.default_event_type = Some("a b".into()),
                "--default-event-type",
            ),
            (|c| c.mapping.tenant_id = Some(String::new()), "--tenant-id"),
        ];
        for (change, option) in cases {
            let mut config = config();
            change(&mut config);
            match config.validate() {
                Err(Error::Config { name, .. }) => assert_eq!(name, option),
                other => panic!("{option}: expected a configuration error, got {other:?}"),
            }
        }
    }
}
