//! `aurora router`, `aurora deliverer` and `aurora retry`: one component per process, sharing
//! work with other instances through consumer groups.

use std::time::Duration;

use aurora_common::config::parse_duration;
use aurora_common::{KafkaArgs, TopicArgs};
use clap::Args;

use super::shutdown_on_signal;
use super::topics::create;

#[derive(Debug, Args)]
pub struct RouterArgs {
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Events whose deliveries are not yet acknowledged, at most.
    #[arg(long = "router-max-in-flight", env = "AURORA_ROUTER_MAX_IN_FLIGHT", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
}

#[derive(Debug, Args)]
pub struct DelivererArgs {
    #[command(flatten)]
    pub topics: TopicArgs,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

/// Settings of the deliverer, shared with `aurora dev`.
#[derive(Debug, Clone, Args)]
pub struct DeliveryArgs {
    /// Time allowed for one HTTP attempt, response included (for example 30s).
    #[arg(long, env = "AURORA_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Deliveries in flight at once, at most.
    #[arg(long = "deliverer-max-in-flight", env = "AURORA_DELIVERER_MAX_IN_FLIGHT", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Retry records held at once, at most.
    #[arg(long = "retry-max-in-flight", env = "AURORA_RETRY_MAX_IN_FLIGHT", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
}

pub fn router_config(kafka: &KafkaArgs, max_in_flight: u32) -> aurora_router::RouterConfig {
    aurora_router::RouterConfig {
        kafka: kafka.clone(),
        max_in_flight: max_in_flight as usize,
    }
}

pub fn deliverer_config(
    kafka: &KafkaArgs,
    args: &DeliveryArgs,
) -> aurora_deliverer::DelivererConfig {
    aurora_deliverer::DelivererConfig {
        kafka: kafka.clone(),
        request_timeout: args.request_timeout,
        max_in_flight: args.max_in_flight as usize,
    }
}

pub fn retry_config(kafka: &KafkaArgs, max_in_flight: u32) -> aurora_retry::RetryConfig {
    aurora_retry::RetryConfig {
        kafka: kafka.clone(),
        max_in_flight: max_in_flight as usize,
    }
}

pub async fn router(kafka: &KafkaArgs, args: RouterArgs) -> anyhow::Result<()> {
    create(kafka, &args.topics).await?;
    let config = router_config(kafka, args.max_in_flight);
    aurora_router::run(config, shutdown_on_signal()).await?;
    Ok(())
}

pub async fn deliverer(kafka: &KafkaArgs, args: DelivererArgs) -> anyhow::Result<()> {
    create(kafka, &args.topics).await?;
    let config = deliverer_config(kafka, &args.delivery);
    aurora_deliverer::run(config, shutdown_on_signal()).await?;
    Ok(())
}

pub async fn retry(kafka: &KafkaArgs, args: RetryArgs) -> anyhow::Result<()> {
    create(kafka, &args.topics).await?;
    let config = retry_config(kafka, args.max_in_flight);
    aurora_retry::run(config, shutdown_on_signal()).await?;
    Ok(())
}
