//! One receive loop: long-poll a batch, map and produce every message, hand the receipts of
//! acknowledged ones to the deleter, then poll again.
//!
//! A message is handed to the deleter only after the broker has acknowledged its event or
//! its quarantine record, so a crash at any point leaves it in the queue to be received again.

use std::sync::Arc;

use aurora_common::kafka::Producer;
use aurora_producer::EventProducer;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::operation::receive_message::ReceiveMessageError;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use futures::future::join_all;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::config::{OnUnmappable, SqsInConfig};
use super::delete::Receipt;
use super::mapping::{is_text_type, map_message, AttributeValue, Attributes, ReceivedMessage};
use super::quarantine;
use crate::aws::{classify, error_code, Failure};
use crate::backoff::Backoff;
use crate::Error;

/// Outcome of one received message.
enum Outcome {
    /// Its event or quarantine record is acknowledged: delete it.
    Done(Receipt),
    /// It stays in the queue on purpose (unmappable, with `--on-unmappable leave`).
    Left,
    /// Producing failed: it stays in the queue and is received again.
    Failed,
}

/// Clients and settings shared by the receive loops of one process.
pub struct Inbound {
    pub sqs: aws_sdk_sqs::Client,
    pub config: SqsInConfig,
    pub events: EventProducer,
    pub quarantine: Producer,
    pub quarantine_topic: String,
    pub metrics: aurora_common::metrics::SqsInMetrics,
}

impl Inbound {
    /// Receives and processes batches until `shutdown` is cancelled, or a receive fails in a
    /// way that retrying does not fix. A batch being produced is finished before returning.
    pub async fn poll(
        self: Arc<Self>,
        shutdown: CancellationToken,
        deletes: mpsc::Sender<Receipt>,
    ) -> Result<(), Error> {
        let mut failures = 0;
        loop {
            if failures > 0 {
                let pause = Backoff::DEFAULT.delay(failures);
                if shutdown
                    .run_until_cancelled(tokio::time::sleep(pause))
                    .await
                    .is_none()
                {
                    return Ok(());
                }
            }
            let Some(received) = shutdown.run_until_cancelled(self.receive()).await else {
                return Ok(());
            };
            let messages = match received {
                Ok(messages) => messages,
                Err(error) => {
                    failures += 1;
                    self.receive_failed(error, failures)?;
                    continue;
                }
            };
            let produce_failed = self.process_batch(messages, &deletes).await?;
            failures = if produce_failed { failures + 1 } else { 0 };
        }
    }

    async fn receive(&self) -> Result<Vec<Message>, SdkError<ReceiveMessageError>> {
        let config = &self.config;
        let output = self
            .sqs
            .receive_message()
            .queue_url(&config.queue_url)
            .max_number_of_messages(config.max_messages)
            .wait_time_seconds(whole_seconds(config.wait_time))
            .visibility_timeout(whole_seconds(config.visibility_timeout))
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await?;
        Ok(output.messages.unwrap_or_default())
    }

    /// Logs a failed receive; returns an error when retrying cannot help.
    fn receive_failed(
        &self,
        error: SdkError<ReceiveMessageError>,
        failures: u32,
    ) -> Result<(), Error> {
        if classify(&error) == Failure::Permanent {
            return Err(Error::Aws {
                operation: format!("receiving from {}", self.config.queue_url),
                attempts: 1,
                source: error.into(),
            });
        }
        tracing::warn!(error = %DisplayErrorContext(&error), code = error_code(&error), queue_url = %self.config.queue_url, failures, "Receiving from SQS failed; retrying with backoff.");
        Ok(())
    }

    /// Produces every message of a batch at once, then hands the receipts of the acknowledged
    /// ones to the deleter. Returns whether producing failed for any of them.
    async fn process_batch(
        &self,
        messages: Vec<Message>,
        deletes: &mpsc::Sender<Receipt>,
    ) -> Result<bool, Error> {
        // join_all polls the futures in order, so the events are enqueued in receive order,
        // which keeps the order of a FIFO message group within its partition.
        // NOTE: when one produce of a batch fails, the later messages of its FIFO group are
        // still deleted, so the failed one arrives after them when SQS delivers it again.
        let outcomes = join_all(messages.into_iter().map(|message| self.process(message))).await;
        let mut produce_failed = false;
        for outcome in outcomes {
            match outcome {
                Outcome::Done(receipt) => deletes
                    .send(receipt)
                    .await
                    .map_err(|_| Error::TaskStopped("the SQS deleter"))?,
                Outcome::Left => {}
                Outcome::Failed => produce_failed = true,
            }
        }
        Ok(produce_failed)
    }

    async fn process(&self, message: Message) -> Outcome {
        let Some(receipt_handle) = message.receipt_handle.clone() else {
            tracing::warn!(
                message_id = message.message_id(),
                "SQS returned a message without a receipt handle; skipping it."
            );
            return Outcome::Left;
        };
        let receive_count = system_attribute(
            &message,
            MessageSystemAttributeName::ApproximateReceiveCount,
        );
        let received = received_message(message);
        let receipt = Receipt {
            message_id: received.message_id.clone(),
            receipt_handle,
        };

        let event = match map_message(&self.config.mapping, &received) {
            Ok(event) => event,
            Err(reason) => {
                return self
                    .unmappable(&received, receipt, reason, receive_count)
                    .await
            }
        };
        match self.events.send(event).await {
            Ok(produced) => {
                self.metrics.events.inc();
                tracing::trace!(message_id = %received.message_id, event_id = %produced.id, partition = produced.partition, offset = produced.offset, "Produced an event from SQS.");
                Outcome::Done(receipt)
            }
            Err(aurora_producer::Error::InvalidEvent(reason)) => {
                self.unmappable(&received, receipt, reason, receive_count)
                    .await
            }
            Err(error) => {
                tracing::warn!(error = %error, message_id = %received.message_id, "Producing an event failed; the message stays in the queue and is received again after its visibility timeout.");
                Outcome::Failed
            }
        }
    }

    async fn unmappable(
        &self,
        message: &ReceivedMessage,
        receipt: Receipt,
        reason: String,
        receive_count: Option<String>,
    ) -> Outcome {
        if self.config.on_unmappable == OnUnmappable::Leave {
            tracing::warn!(message_id = %message.message_id, receive_count, reason = %reason, "Message cannot be mapped to an event; left in the queue for its redrive policy.");
            return Outcome::Left;
        }
        match self.quarantine(message, reason).await {
            Ok(()) => Outcome::Done(receipt),
            Err(error) => {
                tracing::warn!(error = %error, message_id = %message.message_id, "Quarantining a message failed; it stays in the queue and is received again after its visibility timeout.");
                Outcome::Failed
            }
        }
    }

    async fn quarantine(&self, message: &ReceivedMessage, reason: String) -> Result<(), Error> {
        let queue_url = &self.config.queue_url;
        tracing::warn!(queue_url = %queue_url, message_id = %message.message_id, reason = %reason, "Message quarantined.");
        let record = quarantine::record(queue_url, message, reason);
        let value = aurora_schemas::encode(&record)?;
        let key = quarantine::key(queue_url, message);
        aurora_common::produce::produce(
            &self.quarantine,
            &self.quarantine_topic,
            key.as_bytes(),
            &value,
            None,
        )
        .await?;
        self.metrics.quarantined.inc();
        Ok(())
    }
}

/// Converts a received SQS message into the form mapping reads.
fn received_message(message: Message) -> ReceivedMessage {
    let group_id = system_attribute(&message, MessageSystemAttributeName::MessageGroupId);
    let mut attributes = Attributes::new();
    for (name, value) in message.message_attributes.unwrap_or_default() {
        let converted = match (is_text_type(value.data_type()), value.string_value) {
            (true, Some(text)) => AttributeValue::Text(text),
            (_, text) => AttributeValue::Other {
                data_type: value.data_type,
                value: value
                    .binary_value
                    .map(|blob| blob.into_inner())
                    .or_else(|| text.map(String::into_bytes))
                    .unwrap_or_default(),
            },
        };
        attributes.insert(name, converted);
    }
    ReceivedMessage {
        message_id: message.message_id.unwrap_or_default(),
        body: message.body.unwrap_or_default(),
        attributes,
        group_id,
    }
}

fn system_attribute(message: &Message, name: MessageSystemAttributeName) -> Option<String> {
    message
        .attributes()
        .and_then(|attributes| attributes.get(&name).cloned())
}

/// Seconds of a duration that the configuration check limited to 12 hours.
fn whole_seconds(duration: std::time::Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}
