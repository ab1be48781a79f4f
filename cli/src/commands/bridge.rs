//! `aurora bridge sqs-in` and `aurora bridge sns-out`: connect an SNS/SQS path to the events
//! topic without glue code.

use std::time::Duration;

use aurora_bridge::sns_out::SnsOutConfig;
use aurora_bridge::sqs_in::{Envelope, MappingRules, OnUnmappable, SqsInConfig};
use aurora_bridge::AwsSettings;
use aurora_common::config::{parse_duration, parse_positive_duration};
use aurora_common::{KafkaArgs, TopicArgs};
use clap::{Args, Subcommand, ValueEnum};

use super::shutdown_on_signal;
use super::topics::create;
use crate::metrics_server::MetricsArgs;

#[derive(Debug, Subcommand)]
pub enum BridgeCommand {
    /// Carry messages of an SQS queue (often subscribed to an SNS topic) into the events topic.
    SqsIn(SqsInArgs),
    /// Publish events of selected types from the events topic to an SNS topic.
    SnsOut(SnsOutArgs),
}

/// AWS endpoint and region. Credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID,
/// AWS_PROFILE, web identity, ECS or EC2 roles).
#[derive(Debug, Clone, Args)]
pub struct AwsArgs {
    /// Endpoint URL of SNS and SQS, for LocalStack, moto or another emulator; AWS_ENDPOINT_URL also sets it.
    #[arg(long)]
    endpoint_url: Option<String>,
    /// AWS region, such as eu-west-1; without it AWS_REGION or the profile's region applies.
    #[arg(long)]
    region: Option<String>,
}

impl AwsArgs {
    fn settings(&self) -> AwsSettings {
        AwsSettings {
            endpoint_url: self.endpoint_url.clone(),
            region: self.region.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct SqsInArgs {
    /// URL of the queue to receive from, such as https://sqs.eu-west-1.amazonaws.com/123456789012/orders.
    #[arg(long, env = "AURORA_BRIDGE_QUEUE_URL")]
    queue_url: String,
    /// How to read message bodies: an SNS notification envelope when there is one (auto), always one (sns), or never (raw).
    #[arg(
        long,
        env = "AURORA_BRIDGE_ENVELOPE",
        value_enum,
        default_value = "auto"
    )]
    envelope: EnvelopeArg,
    /// Message attributes that may carry the event type, comma-separated; the first present wins.
    #[arg(
        long = "type-attribute",
        env = "AURORA_BRIDGE_TYPE_ATTRIBUTE",
        value_delimiter = ',',
        default_value = "event_type,ce_type,type"
    )]
    type_attributes: Vec<String>,
    /// Message attributes that may carry the event id, comma-separated; without one, the SNS or SQS MessageId.
    #[arg(
        long = "id-attribute",
        env = "AURORA_BRIDGE_ID_ATTRIBUTE",
        value_delimiter = ',',
        default_value = "event_id,ce_id"
    )]
    id_attributes: Vec<String>,
    /// Message attribute that carries the partition key; without it, the FIFO message group id or the event id.
    #[arg(
        long,
        env = "AURORA_BRIDGE_KEY_ATTRIBUTE",
        default_value = "partition_key"
    )]
    key_attribute: String,
    /// Event type of messages that carry none in their attributes.
    #[arg(long, env = "AURORA_BRIDGE_DEFAULT_EVENT_TYPE")]
    default_event_type: Option<String>,
    /// Tenant of every event from this queue; without it the events have no tenant.
    #[arg(long, env = "AURORA_BRIDGE_TENANT_ID")]
    tenant_id: Option<String>,
    /// Handling of a message that cannot be mapped: quarantine (copy it with the reason, then delete it) or leave (for the queue's redrive policy).
    #[arg(
        long,
        env = "AURORA_BRIDGE_ON_UNMAPPABLE",
        value_enum,
        default_value = "quarantine"
    )]
    on_unmappable: OnUnmappableArg,
    /// Messages per receive call, 1 to 10.
    #[arg(long, env = "AURORA_BRIDGE_MAX_MESSAGES", default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=10))]
    max_messages: i32,
    /// Long-poll wait of each receive call, whole seconds up to 20s.
    #[arg(long, env = "AURORA_BRIDGE_WAIT_TIME", default_value = "20s", value_parser = parse_duration)]
    wait_time: Duration,
    /// How long a received message stays hidden from other receivers; one not deleted by then is received again (1s to 12h).
    #[arg(long, env = "AURORA_BRIDGE_VISIBILITY_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration)]
    visibility_timeout: Duration,
    /// Maximum time an acknowledged message waits for a batch of ten deletes; keep it well below the visibility timeout.
    #[arg(long, env = "AURORA_BRIDGE_DELETE_INTERVAL", default_value = "1s", value_parser = parse_positive_duration)]
    delete_interval: Duration,
    /// Receive loops that run at once in this process.
    #[arg(long, env = "AURORA_BRIDGE_POLLERS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pollers: u32,
    #[command(flatten)]
    aws: AwsArgs,
    #[command(flatten)]
    topics: TopicArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EnvelopeArg {
    Auto,
    Sns,
    Raw,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OnUnmappableArg {
    Quarantine,
    Leave,
}

#[derive(Debug, Args)]
pub struct SnsOutArgs {
    /// ARN of the topic to publish to, such as arn:aws:sns:eu-west-1:123456789012:orders.
    #[arg(long, env = "AURORA_BRIDGE_TOPIC_ARN")]
    topic_arn: String,
    /// Event types to publish, comma-separated: exact types, prefix.* or *.
    #[arg(
        long,
        env = "AURORA_BRIDGE_EVENT_TYPES",
        value_delimiter = ',',
        required = true
    )]
    event_types: Vec<String>,
    /// Tenant whose events are published; without it, events without a tenant.
    #[arg(long, env = "AURORA_BRIDGE_TENANT_ID")]
    tenant_id: Option<String>,
    /// Consumer group name after the topic prefix; give each SNS topic its own.
    #[arg(long, env = "AURORA_BRIDGE_GROUP", default_value = "sns-out")]
    group: String,
    /// Message attribute that carries the event type.
    #[arg(
        long,
        env = "AURORA_BRIDGE_TYPE_ATTRIBUTE",
        default_value = "event_type"
    )]
    type_attribute: String,
    /// Message attribute that carries the event id.
    #[arg(long, env = "AURORA_BRIDGE_ID_ATTRIBUTE", default_value = "event_id")]
    id_attribute: String,
    /// Messages per PublishBatch call, 1 to 10.
    #[arg(long, env = "AURORA_BRIDGE_BATCH_SIZE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10))]
    batch_size: u32,
    /// Maximum time the first event of a batch waits for more (for example 20ms).
    #[arg(long, env = "AURORA_BRIDGE_LINGER", default_value = "20ms", value_parser = parse_duration)]
    linger: Duration,
    /// PublishBatch calls in flight at once.
    #[arg(long, env = "AURORA_BRIDGE_PUBLISHERS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    publishers: u32,
    /// Attempts of a batch that fails with throttling or server errors before the bridge stops, uncommitted.
    #[arg(long, env = "AURORA_BRIDGE_MAX_ATTEMPTS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: u32,
    /// Events consumed but not yet published, at most.
    #[arg(long = "bridge-max-in-flight", env = "AURORA_BRIDGE_MAX_IN_FLIGHT", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    max_in_flight: u32,
    #[command(flatten)]
    aws: AwsArgs,
    #[command(flatten)]
    topics: TopicArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
}

pub async fn run(kafka: &KafkaArgs, command: BridgeCommand) -> anyhow::Result<()> {
    match command {
        BridgeCommand::SqsIn(args) => sqs_in(kafka, args).await,
        BridgeCommand::SnsOut(args) => sns_out(kafka, args).await,
    }
}

async fn sqs_in(kafka: &KafkaArgs, args: SqsInArgs) -> anyhow::Result<()> {
    let mapping = MappingRules {
        envelope: match args.envelope {
            EnvelopeArg::Auto => Envelope::Auto,
            EnvelopeArg::Sns => Envelope::Sns,
            EnvelopeArg::Raw => Envelope::Raw,
        },
        type_attributes: args.type_attributes,
        id_attributes: args.id_attributes,
        key_attribute: args.key_attribute,
        default_event_type: args.default_event_type,
        tenant_id: args.tenant_id,
    };
    let config = SqsInConfig {
        aws: args.aws.settings(),
        metrics: args.metrics.start().await?,
        mapping,
        on_unmappable: match args.on_unmappable {
            OnUnmappableArg::Quarantine => OnUnmappable::Quarantine,
            OnUnmappableArg::Leave => OnUnmappable::Leave,
        },
        max_messages: args.max_messages,
        wait_time: args.wait_time,
        visibility_timeout: args.visibility_timeout,
        delete_interval: args.delete_interval,
        pollers: args.pollers as usize,
        ..SqsInConfig::new(kafka.clone(), args.queue_url)
    };
    config.validate()?;
    create(kafka, &args.topics).await?;
    aurora_bridge::sqs_in::run(config, shutdown_on_signal()).await?;
    Ok(())
}

async fn sns_out(kafka: &KafkaArgs, args: SnsOutArgs) -> anyhow::Result<()> {
    let config = SnsOutConfig {
        aws: args.aws.settings(),
        metrics: args.metrics.start().await?,
        tenant_id: args.tenant_id,
        group: args.group,
        type_attribute: args.type_attribute,
        id_attribute: args.id_attribute,
        batch_size: args.batch_size as usize,
        linger: args.linger,
        publishers: args.publishers as usize,
        max_attempts: args.max_attempts,
        max_in_flight: args.max_in_flight as usize,
        ..SnsOutConfig::new(kafka.clone(), args.topic_arn, args.event_types)
    };
    config.validate()?;
    create(kafka, &args.topics).await?;
    aurora_bridge::sns_out::run(config, shutdown_on_signal()).await?;
    Ok(())
}
