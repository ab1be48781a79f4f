//! The `aurora` command line: every AuroraPress component, the local dev pipeline and the
//! webhook listener.

mod commands;
mod metrics_server;
mod progress;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use aurora_common::sealed::SealKey;
use aurora_common::{KafkaArgs, SealArgs};

#[derive(Debug, Parser)]
#[command(
    name = "aurora",
    version,
    about = "AuroraPress: Kafka events in, signed webhooks out."
)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,

    #[command(flatten)]
    seal: SealArgs,

    /// Log output format.
    #[arg(
        long,
        env = "AURORA_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,

    /// Check the command's options and environment, print the command and the environment variables it reads as JSON, and exit without connecting.
    #[arg(long, global = true)]
    check_config: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create every AuroraPress topic that does not exist yet.
    Topics(commands::topics::TopicsArgs),
    /// Produce events to the events topic.
    Produce(commands::produce::ProduceArgs),
    /// Serve the tenant API: tenants, endpoints, secrets, events and attempts.
    Api(commands::api::ApiArgs),
    /// Serve the HTTP ingest API (POST /v1/events).
    Ingest(commands::ingest::IngestArgs),
    /// Run a router: events joined with subscriptions become deliveries.
    Router(commands::components::RouterArgs),
    /// Run a deliverer: deliveries become signed HTTP requests.
    Deliverer(commands::components::DelivererArgs),
    /// Run the retry stage: failed deliveries wait in retry topics until due.
    Retry(commands::components::RetryArgs),
    /// Run router, deliverer and retry in one process, starting a local broker if needed.
    Dev(commands::dev::DevArgs),
    /// Receive webhooks locally, verify their signatures and print them.
    Listen(commands::listen::ListenArgs),
    /// Send dead-lettered deliveries back to delivery.
    #[command(subcommand)]
    Dlq(commands::dlq::DlqCommand),
    /// Reset a consumer group's offsets to an offset or a time, to process records again.
    Replay(commands::replay::ReplayArgs),
    /// Print each endpoint's success rate, last error and backlog, and each group's backlog.
    Status(commands::status::StatusArgs),
    /// Print the records of an internal topic as JSON lines.
    Inspect(commands::inspect::InspectArgs),
    /// Add, list, remove, enable or disable endpoints, or rotate their secrets, on the subscriptions topic.
    #[command(subcommand)]
    Endpoint(commands::endpoint::EndpointCommand),
    /// Carry events between Amazon SNS/SQS and the events topic.
    #[command(subcommand)]
    Bridge(commands::bridge::BridgeCommand),
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    init_logging(cli.log_format);
    if let Err(error) = cli.kafka.validate() {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let seal_key = match cli.seal.load() {
        Ok(seal_key) => seal_key,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        println!("{}", checked_config(&matches));
        return ExitCode::SUCCESS;
    }
    match runtime.block_on(run(cli.kafka, seal_key, cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(kafka: KafkaArgs, seal_key: Option<SealKey>, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Topics(args) => commands::topics::run(&kafka, args).await,
        Command::Produce(args) => commands::produce::run(&kafka, args).await,
        Command::Api(args) => commands::api::run(&kafka, seal_key, args).await,
        Command::Ingest(args) => commands::ingest::run(&kafka, args).await,
        Command::Router(args) => commands::components::router(&kafka, args).await,
        Command::Deliverer(args) => commands::components::deliverer(&kafka, seal_key, args).await,
        Command::Retry(args) => commands::components::retry(&kafka, args).await,
        Command::Dev(args) => commands::dev::run(&kafka, seal_key, args).await,
        Command::Listen(args) => commands::listen::run(args).await,
        Command::Dlq(command) => commands::dlq::run(&kafka, command).await,
        Command::Replay(args) => commands::replay::run(&kafka, args).await,
        Command::Inspect(args) => commands::inspect::run(&kafka, args).await,
        Command::Status(args) => commands::status::run(&kafka, args).await,
        Command::Endpoint(command) => {
            commands::endpoint::run(&kafka, seal_key.as_ref(), command).await
        }
        Command::Bridge(command) => commands::bridge::run(&kafka, command).await,
    }
}

/// Describes the parsed command for `--check-config`: its subcommand path and every
/// environment variable it reads, so that deployment files can be checked against the parser.
fn checked_config(matches: &clap::ArgMatches) -> serde_json::Value {
    let mut command = Cli::command();
    command.build();
    let mut path = Vec::new();
    let mut environment = std::collections::BTreeSet::new();
    let mut collect = |command: &clap::Command| {
        for argument in command.get_arguments() {
            if let Some(name) = argument.get_env() {
                environment.insert(name.to_string_lossy().into_owned());
            }
        }
    };
    collect(&command);
    let mut current = &command;
    let mut current_matches = matches;
    while let Some((name, sub_matches)) = current_matches.subcommand() {
        let Some(sub_command) = current.find_subcommand(name) else {
            break;
        };
        path.push(name.to_string());
        collect(sub_command);
        current = sub_command;
        current_matches = sub_matches;
    }
    serde_json::json!({"command": path, "environment": environment})
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
