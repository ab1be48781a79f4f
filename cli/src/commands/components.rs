//! `aurora router`, `aurora deliverer` and `aurora retry`: one component per process, sharing
//! work with other instances through consumer groups.

use std::time::Duration;

use aurora_common::config::parse_duration;
use aurora_common::sealed::SealKey;
use aurora_common::{KafkaArgs, Metrics, TopicArgs};
use clap::Args;

use crate::metrics_server::MetricsArgs;

use super::shutdown_on_signal;
use super::topics::create;

#[derive(Debug, Args)]
pub struct RouterArgs {
    #[command(flatten)]
    pub topics: TopicArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// Events whose deliveries are not yet acknowledged, at most.
    #[arg(long = "router-max-in-flight", env = "AURORA_ROUTER_MAX_IN_FLIGHT", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
}

#[derive(Debug, Args)]
pub struct DelivererArgs {
    #[command(flatten)]
    pub topics: TopicArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

/// Settings of the deliverer, shared with `aurora dev`.
#[derive(Debug, Clone, Args)]
pub struct DeliveryArgs {
    /// Time allowed for one HTTP attempt, response included (for example 30s).
    #[arg(long, env = "AURORA_REQUEST_TIMEOUT", default_value = "30s", value_parser = aurora_common::config::parse_positive_duration)]
    pub request_timeout: Duration,
    /// Deliveries in flight at once, at most.
    #[arg(long = "deliverer-max-in-flight", env = "AURORA_DELIVERER_MAX_IN_FLIGHT", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
    /// Deliveries of one endpoint in flight at once, at most, so a slow endpoint takes no more slots.
    #[arg(long, env = "AURORA_ENDPOINT_MAX_IN_FLIGHT", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub endpoint_max_in_flight: u32,
    /// Concurrent requests to one endpoint, at most.
    #[arg(long, env = "AURORA_ENDPOINT_MAX_CONCURRENCY", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub endpoint_max_concurrency: u32,
    /// Maximum delay a Retry-After header on 429 or 503 can request (for example 1h).
    #[arg(long, env = "AURORA_MAX_RETRY_AFTER", default_value = "1h", value_parser = parse_duration)]
    pub max_retry_after: Duration,
    /// Subnets deliveries may reach although the SSRF guard refuses their range, comma-separated CIDRs such as 10.1.0.0/16.
    #[arg(long = "allow-subnet", env = "AURORA_ALLOW_SUBNETS", value_delimiter = ',', value_parser = parse_subnet)]
    pub allow_subnets: Vec<ipnet::IpNet>,
    /// Refuse endpoints that are not https://.
    #[arg(long, env = "AURORA_REQUIRE_HTTPS")]
    pub require_https: bool,
    /// Consecutive failures after which an endpoint is reported failing.
    #[arg(long, env = "AURORA_HEALTH_FAILING_AFTER", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub health_failing_after: u32,
    /// Consecutive failures after which an endpoint is disabled, once they span --health-disable-span.
    #[arg(long, env = "AURORA_HEALTH_DISABLE_AFTER", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub health_disable_after: u32,
    /// Minimum time from the first to the latest of those failures (for example 24h).
    #[arg(long, env = "AURORA_HEALTH_DISABLE_SPAN", default_value = "24h", value_parser = parse_duration)]
    pub health_disable_span: Duration,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    #[command(flatten)]
    pub topics: TopicArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// Retry records held at once, at most.
    #[arg(long = "retry-max-in-flight", env = "AURORA_RETRY_MAX_IN_FLIGHT", default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
}

pub fn router_config(
    kafka: &KafkaArgs,
    max_in_flight: u32,
    metrics: &Metrics,
) -> aurora_router::RouterConfig {
    aurora_router::RouterConfig {
        kafka: kafka.clone(),
        max_in_flight: max_in_flight as usize,
        metrics: metrics.clone(),
    }
}

pub fn deliverer_config(
    kafka: &KafkaArgs,
    args: &DeliveryArgs,
    seal_key: Option<SealKey>,
    metrics: &Metrics,
) -> aurora_deliverer::DelivererConfig {
    aurora_deliverer::DelivererConfig {
        kafka: kafka.clone(),
        request_timeout: args.request_timeout,
        max_in_flight: args.max_in_flight as usize,
        endpoint_max_in_flight: args.endpoint_max_in_flight as usize,
        endpoint_max_concurrency: args.endpoint_max_concurrency as usize,
        max_retry_after: args.max_retry_after,
        guard: aurora_deliverer::Guard {
            allow: args.allow_subnets.clone(),
            require_https: args.require_https,
        },
        health: aurora_deliverer::HealthPolicy {
            failing_after: args.health_failing_after,
            disable_after: args.health_disable_after,
            disable_span: args.health_disable_span,
        },
        seal_key,
        metrics: metrics.clone(),
    }
}

pub fn retry_config(
    kafka: &KafkaArgs,
    max_in_flight: u32,
    metrics: &Metrics,
) -> aurora_retry::RetryConfig {
    aurora_retry::RetryConfig {
        kafka: kafka.clone(),
        max_in_flight: max_in_flight as usize,
        metrics: metrics.clone(),
    }
}

pub async fn router(kafka: &KafkaArgs, args: RouterArgs) -> anyhow::Result<()> {
    create(kafka, &args.topics).await?;
    let metrics = args.metrics.start().await?;
    let config = router_config(kafka, args.max_in_flight, &metrics);
    aurora_router::run(config, shutdown_on_signal()).await?;
    Ok(())
}

pub async fn deliverer(
    kafka: &KafkaArgs,
    seal_key: Option<SealKey>,
    args: DelivererArgs,
) -> anyhow::Result<()> {
    create(kafka, &args.topics).await?;
    let metrics = args.metrics.start().await?;
    let config = deliverer_config(kafka, &args.delivery, seal_key, &metrics);
    aurora_deliverer::run(config, shutdown_on_signal()).await?;
    Ok(())
}

pub async fn retry(kafka: &KafkaArgs, args: RetryArgs) -> anyhow::Result<()> {
    create(kafka, &args.topics).await?;
    let metrics = args.metrics.start().await?;
    let config = retry_config(kafka, args.max_in_flight, &metrics);
    aurora_retry::run(config, shutdown_on_signal()).await?;
    Ok(())
}

pub fn parse_subnet(text: &str) -> Result<ipnet::IpNet, String> {
    text.trim().parse().map_err(|_| {
        format!("{text:?} is not a subnet in CIDR form such as 10.1.0.0/16 or fd00::/8")
    })
}
