//! `aurora-bench`: end-to-end throughput and latency of the AuroraPress pipeline, with router,
//! deliverer and retry as separate release-built processes and a hyper receiver on 127.0.0.1.
//! Each run also measures the two ceilings the pipeline runs under: the broker's bare
//! produce-then-consume rate and a bare pooled HTTP client's rate against the same receiver.

mod broker;
mod ceiling;
mod clock;
mod load;
mod process;
mod receiver;
mod report;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "aurora-bench",
    about = "Benchmark the AuroraPress pipeline end to end, next to the broker and HTTP ceilings."
)]
pub struct Args {
    /// Events produced in the measured run.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub events: u64,
    /// Benchmark endpoints; every event is delivered to each of them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub endpoints: u32,
    /// Percentage of endpoints (rounded) that respond 500 to the first attempt of half their
    /// events, so those deliveries go through the retry stage.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub failing_percent: u32,
    /// Events produced per second; without it events are produced as fast as the producer
    /// takes them.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Produce every event before starting the components, then measure the drain from cold.
    #[arg(long)]
    pub backlog: bool,
    /// Size of each event's JSON payload, in bytes.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(64..=1_048_576))]
    pub payload_bytes: u64,
    /// Bootstrap servers of a running broker; without it a tansu broker is started on
    /// 127.0.0.1 with scripts/broker and stopped at the end.
    #[arg(long)]
    pub bootstrap: Option<String>,
    /// Port of the tansu broker this run starts; a free port when absent.
    #[arg(long)]
    pub broker_port: Option<u16>,
    /// Process id of the broker given with --bootstrap, to report its CPU time and memory.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Kind of broker: tansu 0.6.0 needs one record per produce batch and a short fetch wait.
    #[arg(long, value_enum, default_value = "tansu")]
    pub broker: BrokerKind,
    /// Partitions of the events, deliveries, attempts and retry topics.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub partitions: i32,
    /// Records of the broker ceiling; by default the run's deliveries, at most 100,000.
    #[arg(long)]
    pub ceiling_records: Option<u64>,
    /// Requests of the HTTP ceiling; by default the run's deliveries, at most 100,000.
    #[arg(long)]
    pub ceiling_requests: Option<u64>,
    /// Requests the bare HTTP client sends at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub http_concurrency: u32,
    /// Skip both ceilings.
    #[arg(long)]
    pub no_ceilings: bool,
    /// Time the measured run may take; a run that has not finished by then is reported as
    /// incomplete (for example 30m).
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also write every delivery's send time and latency as CSV to this file.
    #[arg(long)]
    pub latency_csv: Option<PathBuf>,
    /// The aurora binary; by default the one next to this executable.
    #[arg(long)]
    pub aurora: Option<PathBuf>,
    /// Directory for the components' logs; by default target/bench-runs/PREFIX.
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// RUST_LOG of the components.
    #[arg(long, default_value = "warn")]
    pub log_level: String,
    /// Record a perf profile of each component during the measured run into this directory.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Extra librdkafka producer property for the components and the load, as key=value;
    /// repeatable.
    #[arg(long = "producer-property")]
    pub producer_properties: Vec<String>,
    /// Extra librdkafka consumer property for the components, as key=value; repeatable.
    #[arg(long = "consumer-property")]
    pub consumer_properties: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BrokerKind {
    Tansu,
    Kafka,
}

/// Worker threads of the receiver's runtime, named so their CPU time can be read apart.
const RECEIVER_THREADS: usize = 2;
/// Thread name prefix of the receiver's runtime.
const RECEIVER_THREAD_NAME: &str = "bench-receiver";

fn main() -> ExitCode {
    let args = Args::parse();
    let command = command_line();
    let runtimes = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RECEIVER_THREADS)
        .thread_name(RECEIVER_THREAD_NAME)
        .enable_all()
        .build()
        .and_then(|receiver| {
            let main = tokio::runtime::Builder::new_multi_thread()
                .thread_name("bench-main")
                .enable_all()
                .build()?;
            Ok((receiver, main))
        });
    let (receiver_runtime, main_runtime) = match runtimes {
        Ok(runtimes) => runtimes,
        Err(error) => {
            eprintln!("error: starting the async runtimes failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let receiver_handle = receiver_runtime.handle().clone();
    let result = main_runtime.block_on(run::execute(args.clone(), command, receiver_handle));
    receiver_runtime.shutdown_background();
    match result {
        Ok(report) => {
            report.print();
            let json = match serde_json::to_string_pretty(&report) {
                Ok(json) => json,
                Err(error) => {
                    eprintln!("error: serializing the figures failed: {error}");
                    return ExitCode::FAILURE;
                }
            };
            println!("\n{json}");
            if let Some(path) = &args.json {
                if let Err(error) = std::fs::write(path, json + "\n") {
                    eprintln!("error: writing {} failed: {error}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            if report.pipeline.complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Returns the command line of this run, without the program's directory.
fn command_line() -> String {
    let mut words = std::env::args();
    let program = words
        .next()
        .and_then(|path| {
            std::path::Path::new(&path)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "aurora-bench".into());
    std::iter::once(program)
        .chain(words)
        .collect::<Vec<_>>()
        .join(" ")
}
