//! `aurora bridge sns-out`: selected event types are published to an SNS topic, at least once.

pub mod config;
pub mod entry;
mod handler;
pub mod publish;
mod run;

pub use config::SnsOutConfig;
pub use run::run;
