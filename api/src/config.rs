//! Settings of an API instance.

use std::time::Duration;

use aurora_common::metrics::RequestMetrics;
use aurora_common::sealed::SealKey;
use aurora_common::KafkaArgs;
use aurora_deliverer::Guard;

/// Settings of an API instance.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub kafka: KafkaArgs,
    /// SHA-256 of the admin key, which creates tenants; admin routes are off when absent.
    pub admin_key_sha256: Option<String>,
    /// Key that seals endpoint secrets on the subscriptions topic.
    pub seal_key: SealKey,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long a repeated Idempotency-Key returns the first result.
    pub idempotency_window: Duration,
    /// Idempotency keys remembered at once, at most; the oldest are forgotten first.
    pub idempotency_max_keys: usize,
    /// How long attempts stay listed.
    pub attempts_retention: Duration,
    /// Attempts kept in memory at once, at most; the oldest are dropped first.
    pub attempts_max: usize,
    /// How long a rotated-out secret keeps signing, unless a rotation request sets a window.
    pub rotation_window: Duration,
    /// Addresses endpoint URLs may name literally; hostnames are checked on every delivery.
    pub guard: Guard,
    /// Counter of responses by status.
    pub metrics: RequestMetrics,
}
