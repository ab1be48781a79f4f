//! Batched deletes of messages whose event (or quarantine record) the broker acknowledged.
//!
//! Receipts wait until ten are collected or the oldest has waited the delete interval, then
//! go out in one DeleteMessageBatch call. A delete that fails only means the message is
//! received again after its visibility timeout and produced once more, with the same id.

use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::config::SQS_MAX_BATCH;
use crate::aws::{classify, Failure};
use crate::backoff::Backoff;

/// A message to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub message_id: String,
    pub receipt_handle: String,
}

/// DeleteMessageBatch calls in flight at once, at most.
const MAX_CONCURRENT_DELETES: usize = 4;

/// Attempts of one DeleteMessageBatch call that fails with a transient error.
const DELETE_ATTEMPTS: u32 = 3;

/// Deletes the messages received on `receipts` until every sender is dropped, then deletes
/// what is left and returns.
pub async fn run(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    interval: Duration,
    mut receipts: mpsc::Receiver<Receipt>,
) {
    let mut pending: Vec<Receipt> = Vec::new();
    let mut oldest = Instant::now();
    let mut calls = JoinSet::new();
    loop {
        let received = if pending.is_empty() {
            receipts.recv().await
        } else {
            match tokio::time::timeout_at(oldest + interval, receipts.recv()).await {
                Ok(received) => received,
                Err(_elapsed) => {
                    flush(&sqs, &queue_url, &mut pending, &mut calls).await;
                    continue;
                }
            }
        };
        let Some(receipt) = received else {
            break;
        };
        if pending.is_empty() {
            oldest = Instant::now();
        }
        pending.push(receipt);
        if pending.len() >= SQS_MAX_BATCH as usize {
            flush(&sqs, &queue_url, &mut pending, &mut calls).await;
        }
    }

    while !pending.is_empty() {
        flush(&sqs, &queue_url, &mut pending, &mut calls).await;
    }
    while calls.join_next().await.is_some() {}
}

/// Starts a DeleteMessageBatch call for up to ten pending receipts, waiting first while the
/// maximum number of calls is in flight.
async fn flush(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    pending: &mut Vec<Receipt>,
    calls: &mut JoinSet<()>,
) {
    while calls.len() >= MAX_CONCURRENT_DELETES {
        calls.join_next().await;
    }
    let count = pending.len().min(SQS_MAX_BATCH as usize);
    let batch: Vec<Receipt> = pending.drain(..count).collect();
    let sqs = sqs.clone();
    let queue_url = queue_url.to_string();
    calls.spawn(async move { delete_batch(&sqs, &queue_url, batch).await });
}

/// Deletes one batch, retrying transient failures of the whole call a few times.
async fn delete_batch(sqs: &aws_sdk_sqs::Client, queue_url: &str, batch: Vec<Receipt>) {
    let mut entries = Vec::with_capacity(batch.len());
    for (index, receipt) in batch.iter().enumerate() {
        let entry = DeleteMessageBatchRequestEntry::builder()
            .id(index.to_string())
            .receipt_handle(&receipt.receipt_handle)
            .build();
        // Building fails only when id or receipt handle is missing, and both are set above.
        if let Ok(entry) = entry {
            entries.push(entry);
        }
    }

    let mut failures = 0;
    let output = loop {
        let result = sqs
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries.clone()))
            .send()
            .await;
        match result {
            Ok(output) => break output,
            Err(error) => {
                failures += 1;
                let retry = classify(&error) == Failure::Transient && failures < DELETE_ATTEMPTS;
                tracing::warn!(error = %DisplayErrorContext(&error), messages = batch.len(), attempt = failures, retry, "Deleting messages from SQS failed; messages not deleted are received again after their visibility timeout.");
                if !retry {
                    return;
                }
                tokio::time::sleep(Backoff::DEFAULT.delay(failures)).await;
            }
        }
    };

    for failed in output.failed() {
        let message_id = failed
            .id()
            .parse::<usize>()
            .ok()
            .and_then(|index| batch.get(index))
            .map(|receipt| receipt.message_id.as_str());
        tracing::warn!(
            message_id,
            code = failed.code(),
            reason = failed.message(),
            "SQS did not delete a message; it is received again after its visibility timeout."
        );
    }
    tracing::trace!(
        deleted = output.successful().len(),
        "Deleted messages from SQS."
    );
}
