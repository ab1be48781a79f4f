//! Topic names and their idempotent creation.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::TopicArgs;
use crate::Error;

/// One retry topic and the delay its records wait before the next attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryTier {
    pub topic: String,
    pub delay: Duration,
}

impl RetryTier {
    /// Returns the tier of `delay`, named `{prefix}retry.{delay}` such as `aurora.retry.30s`.
    pub fn new(prefix: &str, delay: Duration) -> Self {
        let label = humantime::format_duration(delay)
            .to_string()
            .replace(' ', "");
        RetryTier {
            topic: format!("{prefix}retry.{label}"),
            delay,
        }
    }
}

/// Retention of the idempotency topic: 7 days.
pub const IDEMPOTENCY_RETENTION_MS: &str = "604800000";

/// A topic to create: name, partition count and topic configs.
struct TopicSpec {
    name: String,
    partitions: i32,
    configs: Vec<(&'static str, &'static str)>,
}

/// Names of every AuroraPress topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub events: String,
    pub subscriptions: String,
    pub deliveries: String,
    pub attempts: String,
    pub quarantine: String,
    pub dead_letter: String,
    pub operations: String,
    pub tenants: String,
    pub idempotency: String,
    pub retry: Vec<RetryTier>,
}

impl Topics {
    /// Topic names under `prefix`.
    pub fn new(prefix: &str, retry: Vec<RetryTier>) -> Self {
        Topics {
            events: format!("{prefix}events"),
            subscriptions: format!("{prefix}subscriptions"),
            deliveries: format!("{prefix}deliveries"),
            attempts: format!("{prefix}attempts"),
            quarantine: format!("{prefix}quarantine"),
            dead_letter: format!("{prefix}dead-letter"),
            operations: format!("{prefix}operations"),
            tenants: format!("{prefix}tenants"),
            idempotency: format!("{prefix}idempotency"),
            retry,
        }
    }

    fn specs(&self, layout: &TopicArgs) -> Vec<TopicSpec> {
        let spec = |name: &String, partitions, configs| TopicSpec {
            name: name.clone(),
            partitions,
            configs,
        };
        let mut specs = vec![
            spec(&self.events, layout.events_partitions, vec![]),
            spec(&self.subscriptions, 1, vec![("cleanup.policy", "compact")]),
            spec(&self.deliveries, layout.deliveries_partitions, vec![]),
            spec(&self.attempts, layout.deliveries_partitions, vec![]),
            spec(&self.quarantine, 1, vec![]),
            spec(&self.dead_letter, layout.deliveries_partitions, vec![]),
            spec(&self.operations, 1, vec![]),
            spec(&self.tenants, 1, vec![("cleanup.policy", "compact")]),
            // Keys expire, so old segments are deleted as well as compacted. An idempotency
            // window longer than this retention is cut short after a restart.
            spec(
                &self.idempotency,
                1,
                vec![
                    ("cleanup.policy", "compact,delete"),
                    ("retention.ms", IDEMPOTENCY_RETENTION_MS),
                ],
            ),
        ];
        for tier in &self.retry {
            specs.push(spec(&tier.topic, layout.deliveries_partitions, vec![]));
        }
        specs
    }
}

/// Creates every topic that does not exist yet; existing topics are left as they are.
pub async fn create_topics(
    admin: &AdminClient<DefaultClientContext>,
    topics: &Topics,
    layout: &TopicArgs,
) -> Result<(), Error> {
    let specs = topics.specs(layout);
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|spec| {
            let mut topic = NewTopic::new(
                &spec.name,
                spec.partitions,
                TopicReplication::Fixed(layout.replication_factor),
            );
            for (key, value) in &spec.configs {
                topic = topic.set(key, value);
            }
            topic
        })
        .collect();

    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(20)))
        .request_timeout(Some(Duration::from_secs(20)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(Error::kafka("creating topics"))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(Error::CreateTopic {
                    topic,
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(())
}
