//! `aurora api`: the tenant API.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use aurora_common::config::{parse_duration, parse_positive_duration};
use aurora_common::sealed::SealKey;
use aurora_common::{KafkaArgs, TopicArgs};
use clap::Args;

use super::components::parse_subnet;
use super::shutdown_on_signal;
use super::topics::create;
use crate::metrics_server::MetricsArgs;

#[derive(Debug, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    topics: TopicArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    /// Address the API listens on.
    #[arg(long, env = "AURORA_API_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Admin key, which creates tenants and their API keys; admin routes are off without it.
    /// Prefer the environment variable, because command lines are visible to other users.
    #[arg(long, env = "AURORA_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "AURORA_API_MAX_BODY_BYTES", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    max_body_bytes: u64,
    /// How long a repeated Idempotency-Key returns the first response (for example 24h).
    #[arg(long, env = "AURORA_IDEMPOTENCY_WINDOW", default_value = "24h", value_parser = parse_duration)]
    idempotency_window: Duration,
    /// Idempotency keys remembered at once, at most; the oldest are forgotten first.
    #[arg(long, env = "AURORA_IDEMPOTENCY_MAX_KEYS", default_value_t = 100_000)]
    idempotency_max_keys: usize,
    /// How long attempts stay listed (for example 7d).
    #[arg(long, env = "AURORA_ATTEMPTS_RETENTION", default_value = "7d", value_parser = parse_positive_duration)]
    attempts_retention: Duration,
    /// Attempts kept in memory at once, at most; the oldest are dropped first.
    #[arg(long, env = "AURORA_ATTEMPTS_MAX", default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    attempts_max: u64,
    /// How long a rotated-out secret keeps signing when the rotation names no window.
    #[arg(long, env = "AURORA_ROTATION_WINDOW", default_value = "24h", value_parser = parse_duration)]
    rotation_window: Duration,
    /// Subnets endpoint URLs may name literally although the SSRF guard refuses their range,
    /// comma-separated CIDRs; give the deliverers the same list.
    #[arg(long = "allow-subnet", env = "AURORA_ALLOW_SUBNETS", value_delimiter = ',', value_parser = parse_subnet)]
    allow_subnets: Vec<ipnet::IpNet>,
    /// Refuse endpoint URLs that are not https://.
    #[arg(long, env = "AURORA_REQUIRE_HTTPS")]
    require_https: bool,
}

pub async fn run(
    kafka: &KafkaArgs,
    seal_key: Option<SealKey>,
    args: ApiArgs,
) -> anyhow::Result<()> {
    let Some(seal_key) = seal_key else {
        bail!("the tenant API seals endpoint secrets and needs a secret key: set AURORA_SECRET_KEY to the base64 of 32 random bytes (openssl rand -base64 32), and give the deliverers the same key");
    };
    if args.admin_key.as_deref().is_some_and(|key| key.len() < 16) {
        bail!("--admin-key must be at least 16 characters long; use a random value");
    }
    create(kafka, &args.topics).await?;
    let metrics = args.metrics.start().await?;
    let config = aurora_api::ApiConfig {
        kafka: kafka.clone(),
        admin_key_sha256: args.admin_key.as_deref().map(aurora_api::hash_api_key),
        seal_key,
        max_body_bytes: args.max_body_bytes as usize,
        idempotency_window: args.idempotency_window,
        idempotency_max_keys: args.idempotency_max_keys,
        attempts_retention: args.attempts_retention,
        attempts_max: args.attempts_max as usize,
        rotation_window: args.rotation_window,
        guard: aurora_deliverer::Guard {
            allow: args.allow_subnets,
            require_https: args.require_https,
        },
        metrics: metrics.api(),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding the tenant API to {}", args.listen))?;
    aurora_api::serve(config, listener, shutdown_on_signal()).await?;
    Ok(())
}
