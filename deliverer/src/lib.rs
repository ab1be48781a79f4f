//! The deliverer: consumes deliveries, POSTs them signed the Standard Webhooks way, and
//! records every attempt.
//!
//! A delivery's offset is committed only after its attempt record and, on failure, its retry
//! or dead-letter record are acknowledged by the broker.

pub mod classify;
pub mod client;
pub mod health;
mod keys;
mod limits;
mod outcome;
mod run;
pub mod schedule;
pub mod signature;
pub mod ssrf;

pub use classify::{classify, Verdict};
pub use client::WebhookClient;
pub use health::HealthPolicy;
pub use run::{run, DelivererConfig};
pub use signature::{
    generate_key_pair, generate_secret, KeyPair, PublicKey, Secret, SignatureError, SigningKey,
    Verifier,
};
pub use ssrf::Guard;

/// Errors that stop the deliverer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Kafka plumbing failed.
    #[error(transparent)]
    Kafka(#[from] aurora_common::Error),
    /// The broker did not acknowledge a record the deliverer produced.
    #[error(transparent)]
    Produce(#[from] aurora_common::produce::ProduceError),
    /// A record could not be encoded with its Avro schema.
    #[error(transparent)]
    Schema(#[from] aurora_schemas::SchemaError),
    /// Shutdown began before the attempt started; the delivery stays uncommitted.
    #[error("shutting down before the attempt started")]
    ShuttingDown,
}
