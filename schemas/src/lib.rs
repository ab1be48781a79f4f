//! Avro contracts of every AuroraPress topic, and the Rust types that round-trip through them.
//!
//! Records are written in Avro single-object encoding, so each value names the schema it was
//! written with; readers resolve it against the current schema. Every schema version ever
//! released is kept under `avro/history/`, and a test checks that the current schema can read
//! all of them.

mod codec;
mod types;

pub use codec::{decode, encode, Contract, SchemaError, SchemaSet};
pub use types::{
    ApiKey, Attempt, AttemptOutcome, AttemptSummary, Delivery, Event, Header, IdempotentResponse,
    Operation, OperationKind, Quarantined, RateLimit, Subscription, Tenant,
};
