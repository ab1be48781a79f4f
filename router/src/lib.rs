//! The router: joins events with the subscriptions table and emits one delivery per
//! matching endpoint, keyed by endpoint id.
//!
//! An event's offset is committed only after every delivery produced from it (or its
//! quarantine record) is acknowledged by the broker.

pub mod event;
pub mod filter;
mod run;

pub use event::{parse_event, IncomingEvent, EVENT_AVRO_CONTENT_TYPE};
pub use filter::{delivery_id, matches, validate_filter};
pub use run::{run, RouterConfig};

/// Errors that stop the router.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Kafka plumbing failed.
    #[error(transparent)]
    Kafka(#[from] aurora_common::Error),
    /// The broker did not acknowledge a record the router produced.
    #[error("producing to {topic} failed")]
    Produce {
        topic: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A record could not be encoded with its Avro schema.
    #[error(transparent)]
    Schema(#[from] aurora_schemas::SchemaError),
}
