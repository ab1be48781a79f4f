//! `aurora dev`: the whole pipeline in one process. When no broker accepts connections at
//! the bootstrap address, it starts a local one.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use aurora_common::{KafkaArgs, TopicArgs};
use clap::Args;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use aurora_common::sealed::SealKey;

use super::components::{deliverer_config, retry_config, router_config, DeliveryArgs};
use super::shutdown_on_signal;
use super::topics::create;
use crate::metrics_server::MetricsArgs;

/// Producer setting for the tansu broker this command starts: one record per batch, because
/// tansu 0.6.0 responds to a fetch from an offset inside a multi-record batch with the batches
/// after it, which would skip records after a restart.
const TANSU_BATCHING: (&str, &str) = ("batch.num.messages", "1");

/// Consumer setting for the tansu broker this command starts: tansu 0.6.0 keeps every fetch open
/// for the full fetch.wait.max.ms even when records arrive, so the default 500 ms would add
/// that much latency to every hop.
const TANSU_FETCH_WAIT: (&str, &str) = ("fetch.wait.max.ms", "20");

/// Subnets `aurora dev` adds to the SSRF guard's allowlist, so local receivers work.
const LOOPBACK_SUBNETS: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// How long to wait for a started broker to accept connections.
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(flatten)]
    topics: TopicArgs,
    #[command(flatten)]
    delivery: DeliveryArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    /// Events whose deliveries are not yet acknowledged, at most.
    #[arg(long = "router-max-in-flight", env = "AURORA_ROUTER_MAX_IN_FLIGHT", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    router_max_in_flight: u32,
    /// Retry records held at once, at most.
    #[arg(long = "retry-max-in-flight", env = "AURORA_RETRY_MAX_IN_FLIGHT", default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    retry_max_in_flight: u32,
    /// Never start a broker, and fail when none accepts connections at the bootstrap address.
    #[arg(long)]
    no_broker: bool,
}

pub async fn run(
    kafka: &KafkaArgs,
    seal_key: Option<SealKey>,
    args: DevArgs,
) -> anyhow::Result<()> {
    let mut kafka = kafka.clone();
    let address = kafka
        .bootstrap_servers
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let _broker = if reachable(&address).await {
        println!("Using the Kafka broker at {address}.");
        None
    } else if args.no_broker {
        bail!("no Kafka broker accepts connections at {address}; start one or drop --no-broker");
    } else {
        let broker = start_broker(&address).await?;
        let (key, value) = TANSU_BATCHING;
        kafka.producer_properties.push((key.into(), value.into()));
        let (key, value) = TANSU_FETCH_WAIT;
        kafka.consumer_properties.push((key.into(), value.into()));
        Some(broker)
    };
    let kafka = &kafka;
    let mut delivery = args.delivery.clone();
    for loopback in LOOPBACK_SUBNETS {
        let subnet = loopback.parse().expect("loopback subnets are valid CIDRs");
        if !delivery.allow_subnets.contains(&subnet) {
            delivery.allow_subnets.push(subnet);
        }
    }
    println!("Deliveries may reach loopback (127.0.0.0/8, ::1) in dev; other refused ranges stay refused.");

    create(kafka, &args.topics).await?;
    // One registry for the three components, served on one port.
    let metrics = args.metrics.start().await?;
    print_instructions(kafka);

    let shutdown = shutdown_on_signal();
    let router = aurora_router::run(
        router_config(kafka, args.router_max_in_flight, &metrics),
        shutdown.clone(),
    );
    let deliverer = aurora_deliverer::run(
        deliverer_config(kafka, &delivery, seal_key, &metrics),
        shutdown.clone(),
    );
    let retry = aurora_retry::run(
        retry_config(kafka, args.retry_max_in_flight, &metrics),
        shutdown.clone(),
    );
    let stop_all = |error: anyhow::Error| {
        shutdown.cancel();
        error
    };
    tokio::try_join!(
        async { router.await.map_err(|error| stop_all(error.into())) },
        async { deliverer.await.map_err(|error| stop_all(error.into())) },
        async { retry.await.map_err(|error| stop_all(error.into())) },
    )?;
    Ok(())
}

async fn reachable(address: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(address)).await,
        Ok(Ok(_))
    )
}

/// Starts tansu with the in-memory engine on `address`; the broker stops with this process.
async fn start_broker(address: &str) -> anyhow::Result<Child> {
    let tansu = find_tansu().context(
        "no Kafka broker answers and tansu is not installed; run scripts/broker install, or give --bootstrap-servers",
    )?;
    let url = format!("tcp://{address}");
    println!("Starting a local tansu broker on {address} (in-memory storage).");
    let child = Command::new(&tansu)
        .args(["broker", "--storage-engine", "memory://tansu/"])
        .args(["--listener-url", &url, "--advertised-listener-url", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", tansu.display()))?;
    let deadline = tokio::time::Instant::now() + BROKER_START_TIMEOUT;
    while !reachable(address).await {
        if tokio::time::Instant::now() > deadline {
            bail!("the tansu broker did not accept connections on {address} within {BROKER_START_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(child)
}

fn find_tansu() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("tansu"))
            .collect::<Vec<_>>()
    });
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .map(|home| home.join("bin/tansu"));
    on_path
        .chain(cargo_home)
        .find(|candidate| candidate.is_file())
}

fn print_instructions(kafka: &KafkaArgs) {
    let topics = kafka.topics();
    println!(
        "\nPipeline running: events from {} are delivered as signed webhooks.\n\n\
         1. Register an endpoint; the command prints its signing secret:\n   \
         aurora endpoint add --id demo --url http://127.0.0.1:9000/hook --filter 'user.*'\n\
         2. In another terminal, receive and verify the webhooks:\n   \
         aurora listen --listen 127.0.0.1:9000 --secret <the secret from step 1>\n\
         3. Send an event (or POST to `aurora ingest`, or use kcat with ce_id and ce_type headers):\n   \
         aurora produce --type user.created --data '{{\"name\":\"Ada\"}}'\n\n\
         Run these commands with the same AURORA_BOOTSTRAP_SERVERS, AURORA_TOPIC_PREFIX and\n\
         AURORA_PRODUCER_PROPERTIES as this one ({} here).\n\
         Press Ctrl-C to stop; press it again to stop at once.\n",
        topics.events,
        kafka.bootstrap_servers
    );
}
