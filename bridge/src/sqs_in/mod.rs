//! `aurora bridge sqs-in`: SQS messages (often an SNS topic's) become events, at least once.

pub mod config;
pub mod delete;
pub mod mapping;
mod poll;
pub mod quarantine;
mod run;

pub use config::{OnUnmappable, SqsInConfig};
pub use mapping::{Envelope, MappingRules};
pub use run::run;
