//! Start-up and shutdown of the inbound bridge: clients, receive loops and the deleter.

use std::sync::Arc;

use aurora_producer::{Encoding, EventProducer};
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::QueueAttributeName;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::config::{OnUnmappable, SqsInConfig, SQS_MAX_BATCH};
use super::delete;
use super::poll::Inbound;
use crate::Error;

/// Runs the inbound bridge until `shutdown` is cancelled or a receive loop fails. On shutdown
/// the receive loops finish the batch they are producing and the deleter deletes every
/// acknowledged message before this returns.
pub async fn run(config: SqsInConfig, shutdown: CancellationToken) -> Result<(), Error> {
    config.validate()?;
    let sdk = crate::aws::load(&config.aws).await?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let inbound = Arc::new(connect(sqs.clone(), config.clone())?);
    warn_about_settings(&sqs, &config).await;

    let (deletes, receipts) = mpsc::channel(SQS_MAX_BATCH as usize * config.pollers * 2);
    let deleter = tokio::spawn(delete::run(
        sqs,
        config.queue_url.clone(),
        config.delete_interval,
        receipts,
    ));

    // A failing loop stops the others, so that the process exits and its supervisor restarts it.
    let stop = shutdown.child_token();
    let mut pollers = JoinSet::new();
    for _ in 0..config.pollers {
        pollers.spawn(inbound.clone().poll(stop.clone(), deletes.clone()));
    }
    drop(deletes);
    tracing::info!(queue_url = %config.queue_url, pollers = config.pollers, "Bridge from SQS started.");

    let mut failure = None;
    while let Some(joined) = pollers.join_next().await {
        let result = joined.unwrap_or(Err(Error::TaskStopped("an SQS receive loop")));
        if let Err(error) = result {
            stop.cancel();
            failure.get_or_insert(error);
        }
    }
    if deleter.await.is_err() {
        failure.get_or_insert(Error::TaskStopped("the SQS deleter"));
    }
    tracing::info!(queue_url = %config.queue_url, "Bridge from SQS stopped.");
    failure.map_or(Ok(()), Err)
}

/// Creates the Kafka producers. Each produce request gives up after the visibility timeout
/// (unless `message.timeout.ms` is set), so a message is rarely received again while its
/// first event is still on its way.
fn connect(sqs: aws_sdk_sqs::Client, config: SqsInConfig) -> Result<Inbound, Error> {
    let mut kafka = config.kafka.clone();
    let timeout_set = kafka
        .producer_properties
        .iter()
        .chain(&kafka.kafka_properties)
        .any(|(key, _)| key == "message.timeout.ms" || key == "delivery.timeout.ms");
    if !timeout_set {
        let timeout_ms = config.visibility_timeout.as_millis().to_string();
        kafka
            .producer_properties
            .push(("message.timeout.ms".into(), timeout_ms));
    }
    Ok(Inbound {
        events: EventProducer::new(&kafka, &config.queue_url, Encoding::Headers)?,
        quarantine: aurora_common::kafka::producer(&kafka)?,
        quarantine_topic: kafka.topics().quarantine,
        metrics: config.metrics.sqs_in(),
        sqs,
        config,
    })
}

/// Warns about settings that work but repeat or keep messages.
async fn warn_about_settings(sqs: &aws_sdk_sqs::Client, config: &SqsInConfig) {
    if config.delete_interval >= config.visibility_timeout {
        tracing::warn!(delete_interval = ?config.delete_interval, visibility_timeout = ?config.visibility_timeout, "The delete interval is not shorter than the visibility timeout, so messages may be received and produced again before they are deleted.");
    }
    if config.on_unmappable != OnUnmappable::Leave {
        return;
    }
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&config.queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await;
    match attributes {
        Ok(output) => {
            let has_policy = output
                .attributes()
                .is_some_and(|found| found.contains_key(&QueueAttributeName::RedrivePolicy));
            if !has_policy {
                tracing::warn!(queue_url = %config.queue_url, "The queue has no redrive policy, so with --on-unmappable leave a message that cannot be mapped is received again forever; add a dead-letter queue or use --on-unmappable quarantine.");
            }
        }
        Err(error) => {
            tracing::warn!(error = %DisplayErrorContext(&error), queue_url = %config.queue_url, "Reading the queue's redrive policy failed.");
        }
    }
}
