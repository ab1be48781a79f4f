//! `aurora topics create`: idempotent creation of every topic.

use anyhow::Context;
use aurora_common::{KafkaArgs, TopicArgs};
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct TopicsArgs {
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create the topics that do not exist yet; existing ones are left unchanged.
    Create(TopicArgs),
}

pub async fn run(kafka: &KafkaArgs, args: TopicsArgs) -> anyhow::Result<()> {
    let TopicsCommand::Create(layout) = args.command;
    create(kafka, &layout).await?;
    let topics = kafka.topics();
    println!(
        "Topics ready: {}, {}, {}, {}, {}, {}, {}, {}, {}{}",
        topics.events,
        topics.subscriptions,
        topics.deliveries,
        topics.attempts,
        topics.quarantine,
        topics.dead_letter,
        topics.operations,
        topics.tenants,
        topics.idempotency,
        topics
            .retry
            .iter()
            .map(|tier| format!(", {}", tier.topic))
            .collect::<String>()
    );
    Ok(())
}

/// Creates the topics, naming the brokers in the error.
pub async fn create(kafka: &KafkaArgs, layout: &TopicArgs) -> anyhow::Result<()> {
    let admin = aurora_common::kafka::admin(kafka)?;
    aurora_common::topics::create_topics(&admin, &kafka.topics(), layout)
        .await
        .with_context(|| {
            format!(
                "creating topics on {} failed; check that a Kafka broker is reachable there (AURORA_BOOTSTRAP_SERVERS)",
                kafka.bootstrap_servers
            )
        })
}
