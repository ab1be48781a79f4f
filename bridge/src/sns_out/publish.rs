//! Batch publishing to SNS: events wait up to the linger time for a batch of up to ten (and
//! 256 KiB), then go out in one PublishBatch call. Each event learns its own outcome.
//!
//! Throttling, server errors and network failures are retried with backoff, entry by entry,
//! up to the attempt limit. An entry that SNS rejects as the sender's fault is reported as
//! rejected, and the caller quarantines it. A call that fails for a reason that retrying
//! cannot fix, or that keeps failing, is reported as failed, which stops the bridge
//! uncommitted.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sns::error::DisplayErrorContext;
use aws_sdk_sns::operation::publish_batch::PublishBatchOutput;
use futures::future::join_all;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::entry::{AttributeNames, Entry, SNS_MAX_BYTES};
use crate::aws::{classify, error_code, Failure};
use crate::backoff::Backoff;
use crate::Error;

/// Outcome of one event sent to SNS.
#[derive(Debug)]
pub enum Outcome {
    /// SNS accepted it.
    Published,
    /// SNS rejected it as the sender's fault; the reason names SNS's error code and message.
    Rejected(String),
    /// Publishing failed for good, or kept failing; the bridge must stop without committing.
    Failed(Arc<Error>),
}

/// An event waiting to be published, and where its outcome goes.
pub struct Pending {
    pub entry: Entry,
    pub outcome: oneshot::Sender<Outcome>,
}

/// The SNS client and how batches are formed and retried.
pub struct Publisher {
    pub sns: aws_sdk_sns::Client,
    pub topic_arn: String,
    pub names: AttributeNames,
    pub batch_size: usize,
    pub linger: Duration,
    pub publishers: usize,
    pub max_attempts: u32,
}

impl Publisher {
    /// Forms batches from `queue` and publishes them, `publishers` calls at a time, until
    /// every sender is dropped and every batch has an outcome.
    pub async fn run(self: Arc<Self>, mut queue: mpsc::Receiver<Pending>) {
        let mut carried: Option<Pending> = None;
        let mut calls = JoinSet::new();
        loop {
            let first = match carried.take() {
                Some(pending) => pending,
                None => match queue.recv().await {
                    Some(pending) => pending,
                    None => break,
                },
            };
            let (batch, rest) = self.fill(first, &mut queue).await;
            carried = rest;
            while calls.len() >= self.publishers {
                calls.join_next().await;
            }
            calls.spawn(self.clone().publish(batch));
        }
        while calls.join_next().await.is_some() {}
    }

    /// Adds events to a batch until it is full, the linger time is over, or the next event
    /// would push it past 256 KiB; that event is returned to start the next batch.
    async fn fill(
        &self,
        first: Pending,
        queue: &mut mpsc::Receiver<Pending>,
    ) -> (Vec<Pending>, Option<Pending>) {
        let deadline = Instant::now() + self.linger;
        let mut bytes = first.entry.size(&self.names);
        let mut batch = vec![first];
        while batch.len() < self.batch_size {
            let Ok(Some(next)) = tokio::time::timeout_at(deadline, queue.recv()).await else {
                break;
            };
            let size = next.entry.size(&self.names);
            if bytes + size > SNS_MAX_BYTES {
                return (batch, Some(next));
            }
            bytes += size;
            batch.push(next);
        }
        (batch, None)
    }

    /// Publishes a batch, retrying the entries that failed transiently, until each has an
    /// outcome.
    // NOTE: on a FIFO topic, an entry retried after later entries of its message group were
    // accepted arrives after them, so a partly failed batch can reorder that group.
    async fn publish(self: Arc<Self>, mut batch: Vec<Pending>) {
        let mut failures = 0;
        loop {
            // An outcome without a receiver belongs to a consumer that stopped. Its event is
            // uncommitted and published again after the restart.
            batch.retain(|pending| !pending.outcome.is_closed());
            if batch.is_empty() {
                return;
            }
            let last_error = match self.call(&batch).await {
                Ok(output) => {
                    batch = self.settle(batch, &output);
                    if batch.is_empty() {
                        return;
                    }
                    aws_sdk_sns::error::BoxError::from(format!(
                        "SNS failed {} entries transiently; the first with {}",
                        batch.len(),
                        output
                            .failed()
                            .first()
                            .map_or("no code", |failed| failed.code())
                    ))
                }
                Err(CallError::Permanent(source)) => {
                    return self.fail(batch, failures + 1, source);
                }
                Err(CallError::Transient(source)) => source,
            };
            failures += 1;
            if failures >= self.max_attempts {
                return self.fail(batch, failures, last_error);
            }
            let pause = Backoff::DEFAULT.delay(failures);
            tracing::warn!(error = %aurora_common::error_chain(&*last_error), topic_arn = %self.topic_arn, entries = batch.len(), attempt = failures, pause = ?pause, "Publishing to SNS failed; retrying with backoff.");
            let receivers_gone = join_all(batch.iter_mut().map(|pending| pending.outcome.closed()));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = receivers_gone => {}
            }
        }
    }

    /// Sends one PublishBatch call for every entry of `batch`, with ids 0 to n−1.
    async fn call(&self, batch: &[Pending]) -> Result<PublishBatchOutput, CallError> {
        let mut entries = Vec::with_capacity(batch.len());
        for (index, pending) in batch.iter().enumerate() {
            let entry = pending
                .entry
                .request(index, &self.names)
                .map_err(|error| CallError::Permanent(error.into()))?;
            entries.push(entry);
        }
        let result = self
            .sns
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await;
        result.map_err(|error| {
            tracing::debug!(error = %DisplayErrorContext(&error), code = error_code(&error), "PublishBatch call failed.");
            match classify(&error) {
                Failure::Transient => CallError::Transient(error.into()),
                Failure::Permanent => CallError::Permanent(error.into()),
            }
        })
    }

    /// Reports the outcome of every entry SNS accepted or rejected for good; returns the
    /// entries to retry.
    fn settle(&self, batch: Vec<Pending>, output: &PublishBatchOutput) -> Vec<Pending> {
        let mut retry = Vec::new();
        for (index, pending) in batch.into_iter().enumerate() {
            let id = index.to_string();
            let failed = output.failed().iter().find(|failed| failed.id() == id);
            let outcome = match failed {
                None => Outcome::Published,
                Some(failed) if failed.sender_fault() => Outcome::Rejected(format!(
                    "SNS rejected the message: {}: {}",
                    failed.code(),
                    failed.message().unwrap_or("no message")
                )),
                Some(_) => {
                    retry.push(pending);
                    continue;
                }
            };
            // The receiver is gone only when its consumer stopped; nothing is left to tell.
            let _ = pending.outcome.send(outcome);
        }
        retry
    }

    fn fail(&self, batch: Vec<Pending>, attempts: u32, source: aws_sdk_sns::error::BoxError) {
        let error = Arc::new(Error::Aws {
            operation: format!("publishing to {}", self.topic_arn),
            attempts,
            source,
        });
        tracing::error!(error = %aurora_common::error_chain(&*error), entries = batch.len(), "Publishing to SNS failed; the bridge stops without committing these events.");
        for pending in batch {
            let _ = pending.outcome.send(Outcome::Failed(error.clone()));
        }
    }
}

/// A failed PublishBatch call, by whether retrying can help.
enum CallError {
    Transient(aws_sdk_sns::error::BoxError),
    Permanent(aws_sdk_sns::error::BoxError),
}
