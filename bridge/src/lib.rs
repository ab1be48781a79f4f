//! Carries events between Amazon SNS/SQS and the AuroraPress events topic, at least once.
//!
//! - [`sqs_in`] long-polls an SQS queue, maps each message to an event and deletes the message
//!   only after the broker has acknowledged the event (or its quarantine record).
//! - [`sns_out`] consumes the events topic in its own consumer group and publishes the selected
//!   event types to an SNS topic. An offset is committed only after SNS has accepted the event.
//!
//! Either direction may repeat a message after a crash, never lose one; duplicates carry the
//! same event id.

pub mod aws;
pub mod backoff;
pub mod sns_out;
pub mod sqs_in;

use std::sync::Arc;

pub use aws::AwsSettings;

/// Errors that stop a bridge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Kafka plumbing failed.
    #[error(transparent)]
    Kafka(#[from] aurora_common::Error),
    /// The broker did not acknowledge a record the bridge produced.
    #[error(transparent)]
    Produce(#[from] aurora_common::produce::ProduceError),
    /// The event producer could not be created.
    #[error(transparent)]
    Producer(#[from] aurora_producer::Error),
    /// A quarantine record could not be encoded with its Avro schema.
    #[error(transparent)]
    Schema(#[from] aurora_schemas::SchemaError),
    /// A configuration value is invalid.
    #[error("invalid {name}: {reason}")]
    Config { name: &'static str, reason: String },
    /// An AWS API call failed in a way that retrying does not fix, or kept failing.
    #[error("{operation} failed after {attempts} attempt(s)")]
    Aws {
        operation: String,
        attempts: u32,
        #[source]
        source: aws_sdk_sqs::error::BoxError,
    },
    /// The same failure, reported to every record of a batch.
    #[error(transparent)]
    Shared(Arc<Error>),
    /// A background task stopped before it finished.
    #[error("{0} stopped unexpectedly")]
    TaskStopped(&'static str),
}

/// Maximum length of a tenant id, in bytes, as of event ids and types.
const MAX_TENANT_ID_BYTES: usize = aurora_common::contract::MAX_NAME_BYTES;

/// Checks a `--tenant-id` value: 1 to 256 visible ASCII characters, like the `ce_tenant` header.
pub fn check_tenant_id(tenant_id: &str) -> Result<(), Error> {
    let valid = !tenant_id.is_empty()
        && tenant_id.len() <= MAX_TENANT_ID_BYTES
        && tenant_id.chars().all(|c| c.is_ascii_graphic());
    if valid {
        return Ok(());
    }
    Err(Error::Config {
        name: "--tenant-id",
        reason: format!(
            "{tenant_id:?} is not a tenant id; give 1 to {MAX_TENANT_ID_BYTES} visible ASCII characters, such as tn_0123abcd"
        ),
    })
}
