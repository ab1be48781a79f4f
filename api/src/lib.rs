//! The tenant API: tenants and their API keys, endpoints and their signing keys, events and
//! delivery attempts, as JSON over HTTP under `/v1`, described by `openapi.yaml`.
//!
//! State lives on Kafka topics. Endpoints are on the compacted subscriptions topic, so routers
//! and deliverers pick up changes without restarts. Tenants and stored Idempotency-Key
//! responses are on their own compacted topics, and attempts on the attempts topic, which each
//! instance reads into a bounded in-memory store.
//! Every write is acknowledged by the broker and read back before the response is sent, so a
//! client reads its own writes from any instance.

mod attempts;
mod auth;
mod config;
mod endpoints;
mod error;
mod events;
mod http;
mod idempotency;
mod locks;
mod server;
mod tenants;

pub use auth::{generate_api_key, hash_api_key, API_KEY_PREFIX};
pub use config::ApiConfig;
pub use error::Error;
pub use server::serve;

/// The OpenAPI document of this API, also served at `GET /v1/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../openapi.yaml");
