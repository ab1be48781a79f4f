//! One benchmark run: broker, topics, receiver, ceilings, endpoints, components, load, and
//! the figures of the measured part.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aurora_common::kafka::Producer;
use aurora_common::time::now_ms;
use aurora_common::{KafkaArgs, TopicArgs};
use tokio::runtime::Handle;

use crate::broker::Broker;
use crate::clock::now_us;
use crate::load::{produce_events, Endpoints, EventSpec, Produced, EVENT_TYPE, WARMUP_TYPE};
use crate::process::{machine_busy_seconds, thread_cpu_seconds, usage, Component, Profile, Usage};
use crate::receiver::{Receiver, Sample};
use crate::report::{
    BrokerInfo, Ceilings, ComponentFigures, Latency, Machine, Pipeline, Report, Scenario,
};
use crate::{Args, BrokerKind, RECEIVER_THREAD_NAME};

/// Retry tiers of the run: short, so retried deliveries arrive within the run.
const RETRY_TIERS: &str = "1s,5s,30s";
/// The components, in start order.
const COMPONENTS: [&str; 3] = ["router", "deliverer", "retry"];
/// Maximum wait for the warm-up event, which includes the components' start and group joins.
const WARMUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Default size of each ceiling, at most.
const MAX_CEILING_SIZE: u64 = 100_000;
/// How often the run checks for completion.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How often progress is printed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// Runs the benchmark described by `args`; the broker it starts is stopped on every path.
pub async fn execute(
    args: Args,
    command: String,
    receiver_runtime: Handle,
) -> anyhow::Result<Report> {
    let broker = match &args.bootstrap {
        Some(bootstrap) => Broker::given(bootstrap.clone(), args.broker_pid),
        None => Broker::start(args.broker_port)?,
    };
    let result = measure(&args, &broker, command, receiver_runtime).await;
    broker.stop();
    result
}

/// Figures of the components at one moment.
struct Snapshot {
    at: Instant,
    at_us: u64,
    components: Vec<Usage>,
    pids: Vec<u32>,
    broker: Option<Usage>,
    broker_pid: Option<u32>,
    bench: Usage,
    receiver_cpu_seconds: f64,
    machine_busy_seconds: f64,
}

/// Everything a run sets up before the measured part.
struct Setup {
    kafka: KafkaArgs,
    receiver: Arc<Receiver>,
    producer: Producer,
    events_topic: String,
    log_dir: PathBuf,
    aurora: PathBuf,
    env: Vec<(String, String)>,
    failing: usize,
    expected: u64,
}

/// Figures from the measured part of a run.
struct Measured {
    produced: Produced,
    start: Snapshot,
    end: Snapshot,
    complete: bool,
}

async fn measure(
    args: &Args,
    broker: &Broker,
    command: String,
    receiver_runtime: Handle,
) -> anyhow::Result<Report> {
    let prefix = format!("bench-{}-{}.", std::process::id(), now_ms());
    let (setup, endpoints, address) = set_up(args, broker, &prefix, receiver_runtime).await?;
    let ceilings = if args.no_ceilings {
        None
    } else {
        let secret = &endpoints.secrets[0];
        Some(measure_ceilings(args, &setup.kafka, &prefix, address, secret, setup.expected).await?)
    };
    let topics = setup.kafka.topics();
    endpoints
        .register(
            &setup.producer,
            &topics.subscriptions,
            &format!("http://{address}"),
        )
        .await?;

    let mut components = Vec::new();
    let measured = drive(args, broker, &setup, &mut components).await;
    for component in components.drain(..) {
        component.stop().await;
    }
    let measured = measured?;

    let pipeline = pipeline_figures(&setup, &measured);
    let ceilings = ceilings.map(|(broker_ceiling, http_ceiling)| Ceilings {
        pipeline_to_broker: pipeline.per_second / broker_ceiling.per_second,
        pipeline_to_http: pipeline.per_second / http_ceiling.per_second,
        broker: broker_ceiling,
        http: http_ceiling,
    });
    Ok(Report {
        command,
        machine: Machine::read(),
        broker: BrokerInfo {
            kind: match args.broker {
                BrokerKind::Tansu => "tansu 0.6.0 (memory engine)".into(),
                BrokerKind::Kafka => "Apache Kafka".into(),
            },
            bootstrap: broker.bootstrap.clone(),
            started_by_bench: args.bootstrap.is_none(),
        },
        scenario: Scenario {
            events: args.events,
            endpoints: args.endpoints as usize,
            failing_endpoints: setup.failing,
            rate: args.rate,
            backlog: args.backlog,
            payload_bytes: args.payload_bytes as usize,
            partitions: args.partitions,
        },
        pipeline,
        latency_ms: latency_figures(args, setup.receiver.take_latencies())?,
        ceilings,
        components: component_figures(&measured),
    })
}

/// Creates the topics under `prefix`, starts the receiver and prepares the components.
async fn set_up(
    args: &Args,
    broker: &Broker,
    prefix: &str,
    receiver_runtime: Handle,
) -> anyhow::Result<(Setup, Endpoints, std::net::SocketAddr)> {
    let kafka = kafka_args(args, &broker.bootstrap, prefix)?;
    let layout = TopicArgs {
        events_partitions: args.partitions,
        deliveries_partitions: args.partitions,
        replication_factor: 1,
    };
    let admin = aurora_common::kafka::admin(&kafka)?;
    aurora_common::topics::create_topics(&admin, &kafka.topics(), &layout).await?;

    let endpoint_count = args.endpoints as usize;
    let failing = (endpoint_count * args.failing_percent as usize + 50) / 100;
    let endpoints = Endpoints::generate(endpoint_count);
    let events = usize::try_from(args.events).context("--events is too large")?;
    let receiver = Arc::new(Receiver::new(
        &endpoints.secrets,
        failing,
        &endpoints.warmup_secret,
        events,
    )?);
    let address = receiver_runtime
        .spawn(crate::receiver::serve(receiver.clone()))
        .await
        .context("the receiver task panicked")?
        .context("binding the receiver")?;
    eprintln!("Receiver listening on http://{address}; topic prefix {prefix}");

    let log_dir = match &args.log_dir {
        Some(dir) => dir.clone(),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-runs"))
            .join(prefix.trim_end_matches('.')),
    };
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let setup = Setup {
        producer: aurora_common::kafka::producer(&kafka)?,
        events_topic: kafka.topics().events,
        env: component_env(args, &kafka),
        kafka,
        receiver,
        log_dir,
        aurora: aurora_binary(args)?,
        failing,
        expected: args.events * u64::from(args.endpoints),
    };
    Ok((setup, endpoints, address))
}

/// Produces the events and starts the components, in the order the scenario requires, and waits
/// for every delivery.
async fn drive(
    args: &Args,
    broker: &Broker,
    setup: &Setup,
    components: &mut Vec<Component>,
) -> anyhow::Result<Measured> {
    let spec = EventSpec {
        topic: setup.events_topic.clone(),
        event_type: EVENT_TYPE,
        first_seq: 0,
        count: args.events,
        payload_bytes: args.payload_bytes as usize,
        rate: args.rate,
    };
    if args.backlog {
        eprintln!("Producing the backlog of {} events...", args.events);
        let produced = produce_events(&setup.producer, &spec).await?;
        eprintln!(
            "Backlog produced at {:.0} events/s; starting the components.",
            produced.per_second()
        );
        // The run starts before the components do: the drain is measured from cold.
        let start = Snapshot {
            components: vec![Usage::default(); COMPONENTS.len()],
            ..snapshot(components, broker)
        };
        start_components(setup, components)?;
        let profiles = start_profiles(args, components)?;
        let (end, complete) = wait_for_deliveries(setup, broker, args.timeout, components).await?;
        finish_profiles(profiles).await;
        return Ok(Measured {
            produced,
            start,
            end,
            complete,
        });
    }

    start_components(setup, components)?;
    warm_up(setup, components).await?;
    let start = snapshot(components, broker);
    let profiles = start_profiles(args, components)?;
    let load = {
        let producer = setup.producer.clone();
        tokio::spawn(async move { produce_events(&producer, &spec).await })
    };
    let (end, complete) = wait_for_deliveries(setup, broker, args.timeout, components).await?;
    finish_profiles(profiles).await;
    let produced = load.await.context("the load task panicked")??;
    Ok(Measured {
        produced,
        start,
        end,
        complete,
    })
}

/// Computes the latency percentiles, and writes every sample as CSV when asked.
fn latency_figures(args: &Args, mut samples: Vec<Sample>) -> anyhow::Result<Latency> {
    if let Some(path) = &args.latency_csv {
        samples.sort_unstable_by_key(|sample| sample.sent_at_us);
        let first_us = samples.first().map_or(0, |sample| sample.sent_at_us);
        let mut csv = String::from("sent_after_ms,latency_ms\n");
        for sample in &samples {
            let sent_after_ms = (sample.sent_at_us - first_us) as f64 / 1000.0;
            let latency_ms = f64::from(sample.latency_us) / 1000.0;
            csv.push_str(&format!("{sent_after_ms:.3},{latency_ms:.3}\n"));
        }
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
    }
    let latencies = samples.iter().map(|sample| sample.latency_us).collect();
    Ok(Latency::from_micros(latencies))
}

fn kafka_args(args: &Args, bootstrap: &str, prefix: &str) -> anyhow::Result<KafkaArgs> {
    let mut kafka = KafkaArgs::new(bootstrap, prefix);
    kafka.retry_tiers = RETRY_TIERS
        .split(',')
        .map(aurora_common::config::parse_duration)
        .collect::<Result<_, _>>()
        .map_err(anyhow::Error::msg)?;
    kafka.producer_properties = properties(&producer_properties(args))?;
    kafka.consumer_properties = properties(&consumer_properties(args))?;
    Ok(kafka)
}

/// Producer properties of the components and the load.
fn producer_properties(args: &Args) -> Vec<String> {
    let mut all = Vec::new();
    if args.broker == BrokerKind::Tansu {
        // tansu 0.6.0 skips records when a fetch starts inside a multi-record batch.
        all.push("batch.num.messages=1".to_string());
    }
    all.extend(args.producer_properties.iter().cloned());
    all
}

/// Consumer properties of the components and the broker ceiling.
fn consumer_properties(args: &Args) -> Vec<String> {
    let mut all = Vec::new();
    if args.broker == BrokerKind::Tansu {
        // tansu 0.6.0 keeps every fetch open for the full fetch.wait.max.ms.
        all.push("fetch.wait.max.ms=20".to_string());
    }
    all.extend(args.consumer_properties.iter().cloned());
    all
}

fn properties(pairs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => Ok((key.to_string(), value.to_string())),
            None => bail!("property {pair:?} is not key=value"),
        })
        .collect()
}

fn component_env(args: &Args, kafka: &KafkaArgs) -> Vec<(String, String)> {
    let pairs = [
        ("AURORA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers.clone()),
        ("AURORA_TOPIC_PREFIX", kafka.topic_prefix.clone()),
        ("AURORA_RETRY_TIERS", RETRY_TIERS.to_string()),
        ("AURORA_EVENTS_PARTITIONS", args.partitions.to_string()),
        ("AURORA_DELIVERIES_PARTITIONS", args.partitions.to_string()),
        ("AURORA_ALLOW_SUBNETS", "127.0.0.0/8".to_string()),
        (
            "AURORA_PRODUCER_PROPERTIES",
            producer_properties(args).join(","),
        ),
        (
            "AURORA_CONSUMER_PROPERTIES",
            consumer_properties(args).join(","),
        ),
        ("RUST_LOG", args.log_level.clone()),
    ];
    pairs
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
}

fn aurora_binary(args: &Args) -> anyhow::Result<PathBuf> {
    let path = match &args.aurora {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("locating this executable")?
            .with_file_name("aurora"),
    };
    if !path.is_file() {
        bail!(
            "{} not found; build it with `cargo build --release -p aurora` or pass --aurora",
            path.display()
        );
    }
    Ok(path)
}

async fn measure_ceilings(
    args: &Args,
    kafka: &KafkaArgs,
    prefix: &str,
    receiver: std::net::SocketAddr,
    secret: &str,
    expected: u64,
) -> anyhow::Result<(crate::ceiling::BrokerCeiling, crate::ceiling::HttpCeiling)> {
    let records = args
        .ceiling_records
        .unwrap_or(expected.min(MAX_CEILING_SIZE));
    eprintln!("Measuring the broker ceiling with {records} records...");
    let topic = format!("{prefix}ceiling");
    let broker = crate::ceiling::broker(
        kafka,
        &topic,
        args.partitions,
        records,
        args.payload_bytes as usize,
    )
    .await?;
    let requests = args
        .ceiling_requests
        .unwrap_or(expected.min(MAX_CEILING_SIZE));
    eprintln!("Measuring the HTTP ceiling with {requests} requests...");
    let http = crate::ceiling::http(
        receiver,
        secret,
        requests,
        args.http_concurrency as usize,
        args.payload_bytes as usize,
    )
    .await?;
    Ok((broker, http))
}

fn start_components(setup: &Setup, components: &mut Vec<Component>) -> anyhow::Result<()> {
    for name in COMPONENTS {
        components.push(Component::spawn(
            &setup.aurora,
            name,
            &setup.env,
            &setup.log_dir,
        )?);
    }
    eprintln!("Components started; logs in {}.", setup.log_dir.display());
    Ok(())
}

/// Waits until a warm-up event has passed router, deliverer and retry: its first attempt
/// fails on purpose.
async fn warm_up(setup: &Setup, components: &mut [Component]) -> anyhow::Result<()> {
    let warmup = EventSpec {
        topic: setup.events_topic.clone(),
        event_type: WARMUP_TYPE,
        first_seq: 0,
        count: 1,
        payload_bytes: 64,
        rate: None,
    };
    produce_events(&setup.producer, &warmup).await?;
    let deadline = Instant::now() + WARMUP_TIMEOUT;
    while setup.receiver.counters.warmup.load(Ordering::Relaxed) == 0 {
        check_running(components)?;
        if Instant::now() > deadline {
            bail!(
                "the warm-up event did not arrive within {WARMUP_TIMEOUT:?}; see the logs in {}",
                setup.log_dir.display()
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    eprintln!("Warm-up event arrived; the pipeline is running.");
    Ok(())
}

fn check_running(components: &mut [Component]) -> anyhow::Result<()> {
    for component in components.iter_mut() {
        if component.exited() {
            bail!(
                "aurora {} exited during the run; see its log",
                component.name
            );
        }
    }
    Ok(())
}

/// Waits until every expected delivery has arrived or `timeout` has passed; returns the
/// closing snapshot and whether every delivery arrived.
async fn wait_for_deliveries(
    setup: &Setup,
    broker: &Broker,
    timeout: Duration,
    components: &mut [Component],
) -> anyhow::Result<(Snapshot, bool)> {
    let started = Instant::now();
    let mut next_progress = started + PROGRESS_INTERVAL;
    let complete = loop {
        let delivered = setup.receiver.counters.delivered.load(Ordering::Relaxed);
        if delivered >= setup.expected {
            break true;
        }
        if started.elapsed() > timeout {
            eprintln!(
                "Timed out after {timeout:?} with {delivered} of {} delivered.",
                setup.expected
            );
            break false;
        }
        check_running(components)?;
        if Instant::now() >= next_progress {
            eprintln!(
                "{:>6.1} s: {delivered} of {} delivered",
                started.elapsed().as_secs_f64(),
                setup.expected
            );
            next_progress += PROGRESS_INTERVAL;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    Ok((snapshot(components, broker), complete))
}

fn snapshot(components: &[Component], broker: &Broker) -> Snapshot {
    Snapshot {
        at: Instant::now(),
        at_us: now_us(),
        components: components
            .iter()
            .map(|component| usage(component.pid).unwrap_or_default())
            .collect(),
        pids: components.iter().map(|component| component.pid).collect(),
        broker: broker.pid.and_then(|pid| usage(pid).ok()),
        broker_pid: broker.pid,
        bench: usage(std::process::id()).unwrap_or_default(),
        receiver_cpu_seconds: thread_cpu_seconds(RECEIVER_THREAD_NAME),
        machine_busy_seconds: machine_busy_seconds(),
    }
}

fn start_profiles(args: &Args, components: &[Component]) -> anyhow::Result<Vec<Profile>> {
    let Some(dir) = &args.profile else {
        return Ok(Vec::new());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    components
        .iter()
        .map(|component| Profile::start(component.pid, component.name, dir))
        .collect()
}

async fn finish_profiles(profiles: Vec<Profile>) {
    for profile in profiles {
        let output = profile.output.clone();
        profile.finish().await;
        eprintln!("Profile written to {}", output.display());
    }
}

fn pipeline_figures(setup: &Setup, measured: &Measured) -> Pipeline {
    let counters = &setup.receiver.counters;
    let delivered = counters.delivered.load(Ordering::Relaxed);
    // The run ends at the last first arrival; without any, at the closing snapshot.
    let last_us = counters.last_delivered_us.load(Ordering::Relaxed);
    let seconds = if measured.complete && last_us > measured.start.at_us {
        (last_us - measured.start.at_us) as f64 / 1e6
    } else {
        measured
            .end
            .at
            .duration_since(measured.start.at)
            .as_secs_f64()
    };
    Pipeline {
        expected: setup.expected,
        delivered,
        duplicates: counters.duplicates.load(Ordering::Relaxed),
        failed_on_purpose: counters.failed_on_purpose.load(Ordering::Relaxed),
        rejected: counters.rejected.load(Ordering::Relaxed),
        receiver_connections: counters.connections.load(Ordering::Relaxed),
        complete: measured.complete,
        seconds,
        per_second: delivered as f64 / seconds.max(f64::EPSILON),
        produce_per_second: measured.produced.per_second(),
        produce_seconds: measured.produced.elapsed.as_secs_f64(),
    }
}

fn component_figures(measured: &Measured) -> Vec<ComponentFigures> {
    let (start, end) = (&measured.start, &measured.end);
    let mut figures: Vec<ComponentFigures> = COMPONENTS
        .iter()
        .zip(&end.pids)
        .zip(end.components.iter().zip(&start.components))
        .map(|((name, pid), (end, start))| {
            let cpu = end.cpu_seconds - start.cpu_seconds;
            ComponentFigures::new(name, Some(*pid), cpu, Some(end.peak_rss_bytes))
        })
        .collect();
    if let (Some(end_usage), Some(start_usage)) = (end.broker, start.broker) {
        let cpu = end_usage.cpu_seconds - start_usage.cpu_seconds;
        figures.push(ComponentFigures::new(
            "broker (tansu)",
            end.broker_pid,
            cpu,
            Some(end_usage.peak_rss_bytes),
        ));
    }
    let receiver_cpu = end.receiver_cpu_seconds - start.receiver_cpu_seconds;
    let bench_cpu = end.bench.cpu_seconds - start.bench.cpu_seconds;
    figures.push(ComponentFigures::new(
        "bench: load and harness",
        Some(std::process::id()),
        bench_cpu - receiver_cpu,
        Some(end.bench.peak_rss_bytes),
    ));
    figures.push(ComponentFigures::new(
        "bench: receiver threads",
        None,
        receiver_cpu,
        None,
    ));
    let ours: f64 = figures
        .iter()
        .filter(|figure| figure.peak_rss_mib.is_some())
        .map(|figure| figure.cpu_seconds)
        .sum::<f64>()
        + receiver_cpu;
    let busy = end.machine_busy_seconds - start.machine_busy_seconds;
    figures.push(ComponentFigures::new(
        "other processes",
        None,
        (busy - ours).max(0.0),
        None,
    ));
    figures
}
