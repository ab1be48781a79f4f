//! Settings of `aurora bridge sns-out`, checked before any client is built.

use std::time::Duration;

use aurora_common::KafkaArgs;

use crate::aws::AwsSettings;
use crate::Error;

/// Entries one PublishBatch call accepts, at most (an SNS limit).
pub const SNS_MAX_BATCH: usize = 10;

/// Settings of the outbound bridge.
#[derive(Debug, Clone)]
pub struct SnsOutConfig {
    pub kafka: KafkaArgs,
    pub aws: AwsSettings,
    pub topic_arn: String,
    /// Event-type filters of the events to publish: exact types, `prefix.*` or `*`.
    pub event_types: Vec<String>,
    /// Tenant whose events are published; events without a tenant when absent. Events of
    /// other tenants are skipped, as the router sends them only to their tenant's endpoints.
    pub tenant_id: Option<String>,
    /// Consumer group name after the topic prefix; each SNS topic needs its own.
    pub group: String,
    /// Message attribute that carries the event type.
    pub type_attribute: String,
    /// Message attribute that carries the event id.
    pub id_attribute: String,
    /// Entries per PublishBatch call, 1 to 10.
    pub batch_size: usize,
    /// Maximum time the first event of a batch waits for the batch to fill up.
    pub linger: Duration,
    /// PublishBatch calls in flight at once.
    pub publishers: usize,
    /// Attempts of a batch that keeps failing transiently before the bridge stops, uncommitted.
    pub max_attempts: u32,
    /// Events consumed but not yet published (or skipped), at most.
    pub max_in_flight: usize,
    /// Registry the bridge reports its consumer group's lag in.
    pub metrics: aurora_common::Metrics,
}

impl SnsOutConfig {
    /// Settings with the defaults of the command line for `topic_arn` and `event_types`.
    pub fn new(kafka: KafkaArgs, topic_arn: impl Into<String>, event_types: Vec<String>) -> Self {
        SnsOutConfig {
            kafka,
            aws: AwsSettings::default(),
            topic_arn: topic_arn.into(),
            event_types,
            tenant_id: None,
            group: "sns-out".into(),
            type_attribute: "event_type".into(),
            id_attribute: "event_id".into(),
            batch_size: SNS_MAX_BATCH,
            linger: Duration::from_millis(20),
            publishers: 4,
            max_attempts: 10,
            max_in_flight: 1024,
            metrics: aurora_common::Metrics::default(),
        }
    }

    /// Returns whether the topic is a FIFO topic, whose messages need a group and deduplication id.
    pub fn fifo(&self) -> bool {
        self.topic_arn.ends_with(".fifo")
    }

    /// Checks every value, so that a bad one stops start-up with its name.
    pub fn validate(&self) -> Result<(), Error> {
        self.check_selection()?;
        self.check_batching()
    }

    /// Checks the topic, the event selection and the attribute names.
    fn check_selection(&self) -> Result<(), Error> {
        let invalid = |name, reason: String| Err(Error::Config { name, reason });
        if !self.topic_arn.starts_with("arn:") {
            return invalid(
                "--topic-arn",
                format!(
                    "{:?} is not a topic ARN such as arn:aws:sns:us-east-1:123456789012:orders",
                    self.topic_arn
                ),
            );
        }
        if self.event_types.is_empty() {
            return invalid(
                "--event-types",
                "give at least one filter, such as order.* or *".into(),
            );
        }
        for filter in &self.event_types {
            aurora_router::validate_filter(filter).map_err(|reason| Error::Config {
                name: "--event-types",
                reason,
            })?;
        }
        if let Some(tenant_id) = &self.tenant_id {
            crate::check_tenant_id(tenant_id)?;
        }
        if self.group.is_empty() {
            return invalid("--group", "it is empty".into());
        }
        for (name, attribute) in [
            ("--type-attribute", &self.type_attribute),
            ("--id-attribute", &self.id_attribute),
        ] {
            check_attribute_name(attribute).map_err(|reason| Error::Config { name, reason })?;
        }
        if self.type_attribute == self.id_attribute {
            return invalid(
                "--id-attribute",
                "it must differ from --type-attribute".into(),
            );
        }
        Ok(())
    }

    /// Checks the batch and concurrency limits.
    fn check_batching(&self) -> Result<(), Error> {
        let invalid = |name, reason: String| Err(Error::Config { name, reason });
        if !(1..=SNS_MAX_BATCH).contains(&self.batch_size) {
            return invalid(
                "--batch-size",
                "SNS accepts 1 to 10 messages per batch".into(),
            );
        }
        if self.publishers == 0 {
            return invalid("--publishers", "at least one is required".into());
        }
        if self.max_attempts == 0 {
            return invalid("--max-attempts", "at least one is required".into());
        }
        if self.max_in_flight == 0 {
            return invalid("--bridge-max-in-flight", "at least one is required".into());
        }
        Ok(())
    }
}

/// Checks a message attribute name against the SNS rules: up to 256 characters of letters,
/// digits, `_`, `-` and `.`, not starting with `AWS.` or `Amazon.`, and no `..`.
pub fn check_attribute_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
    let reserved = name.to_ascii_lowercase();
    if name.is_empty()
        || name.len() > 256
        || !name.chars().all(allowed)
        || name.starts_with('.')
        || name.ends_with('.')
        || name.contains("..")
        || reserved.starts_with("aws.")
        || reserved.starts_with("amazon.")
    {
        return Err(format!(
            "{name:?} is not a valid message attribute name; use up to 256 letters, digits, '_', '-' and '.', not starting with AWS. or Amazon."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SnsOutConfig {
        SnsOutConfig::new(
            KafkaArgs::new("127.0.0.1:9092", "aurora."),
            "arn:aws:sns:us-east-1:123456789012:orders",
            vec!["order.*".into()],
        )
    }

    #[test]
    fn defaults_are_valid() {
        assert!(config().validate().is_ok());
        assert!(!config().fifo());
    }

    #[test]
    fn fifo_topics_are_recognised() {
        let mut config = config();
        config.topic_arn = "arn:aws:sns:us-east-1:123456789012:orders.fifo".into();
        assert!(config.fifo());
    }

    #[test]
    fn invalid_values_name_their_option() {
        type Change = fn(&mut SnsOutConfig);
        let cases: [(Change, &str); 10] = [
            (|c| c.topic_arn = "orders".into(), "--topic-arn"),
            (|c| c.event_types.clear(), "--event-types"),
            (|c| c.event_types = vec!["order*".into()], "--event-types"),
            (|c| c.tenant_id = Some("tn 1".into()), "--tenant-id"),
            (|c| c.type_attribute = "AWS.type".into(), "--type-attribute"),
            (|c| c.id_attribute = "event id".into(), "--id-attribute"),
            (|c| c.id_attribute = "event_type".into(), "--id-attribute"),
            (|c| c.batch_size = 11, "--batch-size"),
            (|c| c.publishers = 0, "--publishers"),
            (|c| c.max_attempts = 0, "--max-attempts"),
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
