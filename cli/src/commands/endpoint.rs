//! `aurora endpoint add|list|remove`: endpoints on the compacted subscriptions topic.

use std::sync::Arc;

use anyhow::{bail, Context};
use aurora_common::produce::produce;
use aurora_common::sealed::{self, SealKey};
use aurora_common::time::now_ms;
use aurora_common::{KafkaArgs, SubscriptionTable};
use aurora_deliverer::SigningKey;
use aurora_schemas::{Operation, OperationKind, RateLimit, Subscription};
use clap::{Args, Subcommand};
use rdkafka::producer::FutureRecord;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Add an endpoint; with --replace, replace the one with the same id.
    Add(AddArgs),
    /// List every endpoint.
    List,
    /// Remove an endpoint (writes a tombstone).
    Remove {
        /// Endpoint id.
        #[arg(long)]
        id: String,
    },
    /// Enable an endpoint; use `aurora dlq redrive` to send what was dead-lettered meanwhile.
    Enable {
        /// Endpoint id.
        #[arg(long)]
        id: String,
    },
    /// Replace an endpoint's signing secret; deliveries carry signatures with both secrets
    /// until the window ends, so receivers can switch at any time within it.
    RotateSecret {
        /// Endpoint id.
        #[arg(long)]
        id: String,
        /// How long the previous secret keeps signing (for example 24h).
        #[arg(long, default_value = "24h", value_parser = aurora_common::config::parse_duration)]
        window: std::time::Duration,
        /// New key, whsec_<base64> or whsk_<base64>; a new HMAC secret is generated when absent.
        #[arg(long)]
        secret: Option<String>,
    },
    /// Disable an endpoint; its deliveries are dead-lettered until it is enabled.
    Disable {
        /// Endpoint id.
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Endpoint id, unique; the key of the subscriptions topic.
    #[arg(long)]
    id: String,
    /// URL the deliveries are POSTed to (http or https).
    #[arg(long)]
    url: String,
    /// Event types to deliver: exact names, prefix.* wildcards or *; repeatable.
    #[arg(long = "filter", default_value = "*")]
    filters: Vec<String>,
    /// Signing key: a whsec_<base64> HMAC secret or a whsk_<base64> ed25519 secret key; a
    /// new HMAC secret is generated when absent. Sealed at rest when a secret key is configured.
    #[arg(long)]
    secret: Option<String>,
    /// Requests per second the endpoint accepts; unlimited when absent.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    rate_limit: Option<i32>,
    /// Requests allowed at once above the rate limit.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..), requires = "rate_limit")]
    burst: Option<i32>,
    /// Free-text description.
    #[arg(long, default_value = "")]
    description: String,
    /// Add the endpoint disabled; its deliveries are dead-lettered until it is enabled.
    #[arg(long)]
    disabled: bool,
    /// Replace an endpoint with the same id; its secret is kept unless --secret is given.
    #[arg(long)]
    replace: bool,
}

pub async fn run(
    kafka: &KafkaArgs,
    seal_key: Option<&SealKey>,
    command: EndpointCommand,
) -> anyhow::Result<()> {
    match command {
        EndpointCommand::Add(args) => add(kafka, seal_key, args).await,
        EndpointCommand::List => list(kafka).await,
        EndpointCommand::Remove { id } => remove(kafka, &id).await,
        EndpointCommand::Enable { id } => set_enabled(kafka, &id, true).await,
        EndpointCommand::Disable { id } => set_enabled(kafka, &id, false).await,
        EndpointCommand::RotateSecret { id, window, secret } => {
            rotate_secret(kafka, seal_key, &id, window, secret).await
        }
    }
}

async fn add(kafka: &KafkaArgs, seal_key: Option<&SealKey>, args: AddArgs) -> anyhow::Result<()> {
    check_id(&args.id)?;
    check_url(&args.url)?;
    for filter in &args.filters {
        aurora_router::validate_filter(filter).map_err(anyhow::Error::msg)?;
    }
    let existing = current(kafka, &args.id).await?;
    if existing.is_some() && !args.replace {
        bail!(
            "endpoint {} already exists; add --replace to replace it",
            args.id
        );
    }
    let (stored, secret) = match (args.secret, &existing) {
        (Some(secret), _) => {
            SigningKey::parse(&secret).context("invalid --secret")?;
            (
                sealed::seal_if_configured(seal_key, &args.id, &secret),
                Some(secret),
            )
        }
        (None, Some(existing)) => (existing.secret.clone(), None),
        (None, None) => {
            let secret = aurora_deliverer::generate_secret();
            (
                sealed::seal_if_configured(seal_key, &args.id, &secret),
                Some(secret),
            )
        }
    };
    let subscription = Subscription {
        endpoint_id: args.id.clone(),
        url: args.url,
        secret: stored,
        event_types: args.filters,
        rate_limit: args.rate_limit.map(|per_second| RateLimit {
            per_second,
            burst: args.burst.unwrap_or(per_second),
        }),
        enabled: !args.disabled,
        description: args.description,
        updated_at_ms: now_ms(),
        disabled_reason: if args.disabled {
            "added disabled by an operator".into()
        } else {
            String::new()
        },
        previous_secret: None,
        previous_secret_expires_at_ms: 0,
        tenant_id: String::new(),
    };
    let producer = aurora_common::kafka::producer(kafka)?;
    let value = aurora_schemas::encode(&subscription)?;
    let topic = kafka.topics().subscriptions;
    produce(&producer, &topic, args.id.as_bytes(), &value, None).await?;
    println!(
        "Endpoint {} {}: {} for {}{}",
        args.id,
        if existing.is_some() {
            "replaced"
        } else {
            "added"
        },
        subscription.url,
        subscription.event_types.join(", "),
        if subscription.enabled {
            ""
        } else {
            " (disabled)"
        }
    );
    if let Some(previous) = existing.filter(|previous| !previous.enabled && subscription.enabled) {
        match previous.disabled_reason.as_str() {
            "" => println!("It was disabled and is enabled again."),
            reason => println!("It was disabled ({reason}) and is enabled again."),
        }
    }
    if let Some(secret) = secret {
        print_key(&secret);
    }
    Ok(())
}

/// Prints a new signing key: the secret, and the public key of an ed25519 key.
fn print_key(secret: &str) {
    println!("Signing secret: {secret}");
    if let Ok(Some(public_key)) = SigningKey::parse(secret).map(|key| key.public_key()) {
        println!("Public key: {public_key}");
    }
}

async fn list(kafka: &KafkaArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let table =
        SubscriptionTable::start(kafka, &kafka.topics().subscriptions, shutdown.clone()).await?;
    let endpoints = table.endpoints();
    shutdown.cancel();
    let mut rows: Vec<_> = endpoints.values().collect();
    rows.sort_by(|a, b| a.endpoint_id.cmp(&b.endpoint_id));
    println!(
        "{:<24} {:<8} {:<40} {:<12} {:<24} NOTE",
        "ID", "ENABLED", "URL", "RATE LIMIT", "FILTERS"
    );
    for endpoint in rows {
        let rate = endpoint.rate_limit.map_or("none".to_string(), |limit| {
            format!("{}/s+{}", limit.per_second, limit.burst)
        });
        println!(
            "{:<24} {:<8} {:<40} {:<12} {:<24} {}",
            endpoint.endpoint_id,
            endpoint.enabled,
            endpoint.url,
            rate,
            endpoint.event_types.join(","),
            endpoint.disabled_reason
        );
    }
    Ok(())
}

async fn set_enabled(kafka: &KafkaArgs, id: &str, enabled: bool) -> anyhow::Result<()> {
    check_id(id)?;
    let topics = kafka.topics();
    let current = found(kafka, id).await?;

    let now = now_ms();
    let mut subscription = (*current).clone();
    subscription.enabled = enabled;
    subscription.updated_at_ms = now;
    subscription.disabled_reason = if enabled {
        String::new()
    } else {
        "disabled by an operator".into()
    };
    let operation = Operation {
        endpoint_id: id.to_string(),
        kind: if enabled {
            OperationKind::Enabled
        } else {
            OperationKind::Disabled
        },
        reason: format!(
            "{} by an operator",
            if enabled { "enabled" } else { "disabled" }
        ),
        consecutive_failures: 0,
        at_ms: now,
    };
    let producer = aurora_common::kafka::producer(kafka)?;
    let value = aurora_schemas::encode(&subscription)?;
    produce(
        &producer,
        &topics.subscriptions,
        id.as_bytes(),
        &value,
        None,
    )
    .await?;
    let value = aurora_schemas::encode(&operation)?;
    produce(&producer, &topics.operations, id.as_bytes(), &value, None).await?;
    println!(
        "Endpoint {id} {}.",
        if enabled { "enabled" } else { "disabled" }
    );
    Ok(())
}

async fn rotate_secret(
    kafka: &KafkaArgs,
    seal_key: Option<&SealKey>,
    id: &str,
    window: std::time::Duration,
    secret: Option<String>,
) -> anyhow::Result<()> {
    check_id(id)?;
    let current = found(kafka, id).await?;
    let secret = match secret {
        Some(secret) => {
            SigningKey::parse(&secret).context("invalid --secret")?;
            secret
        }
        None => aurora_deliverer::generate_secret(),
    };
    let now = now_ms();
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let mut subscription = (*current).clone();
    subscription.previous_secret = Some(subscription.secret.clone());
    subscription.previous_secret_expires_at_ms = now.saturating_add(window_ms);
    subscription.secret = sealed::seal_if_configured(seal_key, id, &secret);
    subscription.updated_at_ms = now;
    let producer = aurora_common::kafka::producer(kafka)?;
    let value = aurora_schemas::encode(&subscription)?;
    produce(
        &producer,
        &kafka.topics().subscriptions,
        id.as_bytes(),
        &value,
        None,
    )
    .await?;
    println!(
        "Secret of endpoint {id} rotated; the previous one keeps signing for {}.",
        humantime::format_duration(window)
    );
    print_key(&secret);
    Ok(())
}

async fn remove(kafka: &KafkaArgs, id: &str) -> anyhow::Result<()> {
    check_id(id)?;
    found(kafka, id).await?;
    let producer = aurora_common::kafka::producer(kafka)?;
    let topic = kafka.topics().subscriptions;
    let tombstone: FutureRecord<'_, str, [u8]> = FutureRecord::to(&topic).key(id);
    producer
        .send(tombstone, std::time::Duration::from_secs(30))
        .await
        .map_err(|(error, _)| error)
        .with_context(|| format!("writing the tombstone of {id} to {topic}"))?;
    println!("Endpoint {id} removed.");
    Ok(())
}

/// Returns the endpoint with this id as the subscriptions topic has it now, if it exists.
async fn current(kafka: &KafkaArgs, id: &str) -> anyhow::Result<Option<Arc<Subscription>>> {
    let shutdown = CancellationToken::new();
    let table =
        SubscriptionTable::start(kafka, &kafka.topics().subscriptions, shutdown.clone()).await;
    shutdown.cancel();
    Ok(table?.get(id))
}

/// Returns the endpoint with this id, or an error naming it when it does not exist.
async fn found(kafka: &KafkaArgs, id: &str) -> anyhow::Result<Arc<Subscription>> {
    match current(kafka, id).await? {
        Some(endpoint) => Ok(endpoint),
        None => bail!("endpoint {id} not found; `aurora endpoint list` shows the endpoints"),
    }
}

fn check_id(id: &str) -> anyhow::Result<()> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        bail!("invalid endpoint id {id:?}: use 1 to 128 letters, digits, '.', '_' or '-'");
    }
    Ok(())
}

/// Checks a URL as the deliverer will use it: stored as given, so it must parse as an HTTP
/// request target too.
fn check_url(url: &str) -> anyhow::Result<()> {
    aurora_deliverer::ssrf::parse_endpoint_url(url)
        .map_err(|why| anyhow::anyhow!("invalid --url {url:?}: {why}"))?;
    url.parse::<hyper::Uri>()
        .with_context(|| format!("invalid --url {url:?}"))?;
    Ok(())
}
