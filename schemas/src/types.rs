//! Rust types of the records in `avro/`; field documentation lives in the schema files.

use apache_avro::{serde_avro_bytes, serde_avro_bytes_opt};
use serde::{Deserialize, Serialize};

/// Envelope of an event written by a typed producer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub source: Option<String>,
    pub time_ms: i64,
    pub content_type: String,
    #[serde(with = "serde_avro_bytes")]
    pub data: Vec<u8>,
    #[serde(default)]
    pub tenant_id: String,
}

/// An endpoint and the event types it subscribes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub endpoint_id: String,
    pub url: String,
    pub secret: String,
    pub event_types: Vec<String>,
    pub rate_limit: Option<RateLimit>,
    pub enabled: bool,
    pub description: String,
    pub updated_at_ms: i64,
    pub disabled_reason: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at_ms: i64,
    #[serde(default)]
    pub tenant_id: String,
}

/// A customer of the platform and the hashes of its API keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub tenant_id: String,
    pub name: String,
    pub api_keys: Vec<ApiKey>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// The first successful response to a tenant's Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotentResponse {
    pub id: String,
    pub tenant_id: String,
    pub idempotency_key: String,
    pub fingerprint: String,
    pub status: i32,
    pub body: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// One API key of a tenant, stored as a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub key_id: String,
    pub sha256: String,
    pub created_at_ms: i64,
}

/// Requests per second an endpoint accepts, with a burst allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub per_second: i32,
    pub burst: i32,
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub delivery_id: String,
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    pub content_type: String,
    #[serde(with = "serde_avro_bytes")]
    pub payload: Vec<u8>,
    pub event_time_ms: i64,
    pub routed_at_ms: i64,
    pub attempts: Vec<AttemptSummary>,
    pub not_before_ms: i64,
    pub dead_letter_reason: Option<String>,
}

/// Summary of one attempt, kept in the delivery's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptSummary {
    pub attempt: i32,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub status: Option<i32>,
    pub error: Option<String>,
    pub response_excerpt: String,
}

/// One HTTP attempt, as written to the attempts topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub delivery_id: String,
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    pub url: String,
    pub attempt: i32,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub status: Option<i32>,
    pub error: Option<String>,
    pub response_excerpt: String,
    pub outcome: AttemptOutcome,
    pub next_attempt_at_ms: Option<i64>,
    #[serde(default)]
    pub tenant_id: String,
}

/// Outcome of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The endpoint accepted the request.
    Delivered,
    /// The attempt failed and the delivery went to a retry topic.
    RetryScheduled,
    /// The attempt failed and the delivery went to the dead-letter topic.
    DeadLettered,
}

/// A record that could not be understood, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    pub source_topic: String,
    pub partition: i32,
    pub offset: i64,
    #[serde(with = "serde_avro_bytes_opt")]
    pub key: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    #[serde(with = "serde_avro_bytes_opt")]
    pub value: Option<Vec<u8>>,
    pub reason: String,
    pub quarantined_at_ms: i64,
}

/// A Kafka record header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub name: String,
    #[serde(with = "serde_avro_bytes_opt")]
    pub value: Option<Vec<u8>>,
}

/// An operational event about an endpoint's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub endpoint_id: String,
    pub kind: OperationKind,
    pub reason: String,
    pub consecutive_failures: i32,
    pub at_ms: i64,
}

/// Kind of an endpoint health event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Deliveries keep failing; the endpoint may be disabled soon.
    Failing,
    /// The endpoint was disabled; its deliveries are dead-lettered until it is enabled.
    Disabled,
    /// A delivery succeeded after failures were reported.
    Recovered,
    /// An operator enabled the endpoint again.
    Enabled,
}
