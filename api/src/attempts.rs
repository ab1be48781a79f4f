//! The attempts store: the attempts topic read into memory by every API instance, indexed by
//! endpoint and by event, with bounded retention by age and by count.
//!
//! It is rebuilt from the topic at start, from the offsets of the retention window's start,
//! so it needs no disk. Its memory is bounded by `attempts_max` records.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aurora_common::kafka::{consumer_config, QuietContext};
use aurora_common::time::now_ms;
use aurora_common::KafkaArgs;
use aurora_schemas::{Attempt, AttemptOutcome};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::http::{timestamp, Page};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
const READ_RETRY_DELAY: Duration = Duration::from_millis(500);

/// An attempt as the API shows it.
#[derive(Debug, Serialize)]
pub struct AttemptView {
    pub delivery_id: String,
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    pub url: String,
    pub attempt: i32,
    pub status: Option<i32>,
    pub outcome: AttemptOutcome,
    pub error: Option<String>,
    pub response_excerpt: String,
    pub started_at: String,
    pub duration_ms: i64,
    pub next_attempt_at: Option<String>,
}

impl From<&Attempt> for AttemptView {
    fn from(attempt: &Attempt) -> Self {
        AttemptView {
            delivery_id: attempt.delivery_id.clone(),
            event_id: attempt.event_id.clone(),
            event_type: attempt.event_type.clone(),
            endpoint_id: attempt.endpoint_id.clone(),
            url: attempt.url.clone(),
            attempt: attempt.attempt,
            status: attempt.status,
            outcome: attempt.outcome,
            error: attempt.error.clone(),
            response_excerpt: attempt.response_excerpt.clone(),
            started_at: timestamp(attempt.started_at_ms),
            duration_ms: attempt.duration_ms,
            next_attempt_at: attempt.next_attempt_at_ms.map(timestamp),
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Sequence number of the first record.
    first_seq: u64,
    records: VecDeque<Arc<Attempt>>,
    by_endpoint: HashMap<String, VecDeque<u64>>,
    by_event: HashMap<(String, String), VecDeque<u64>>,
}

/// Attempts in arrival order, with indexes.
pub struct AttemptStore {
    retention: Duration,
    max: usize,
    inner: Mutex<Inner>,
}

impl AttemptStore {
    pub fn new(retention: Duration, max: usize) -> Self {
        AttemptStore {
            retention,
            max: max.max(1),
            inner: Mutex::default(),
        }
    }

    /// Adds an attempt, dropping the oldest beyond the retention bounds.
    pub fn insert(&self, attempt: Attempt) {
        let mut inner = self.lock();
        let seq = inner.first_seq + inner.records.len() as u64;
        inner
            .by_endpoint
            .entry(attempt.endpoint_id.clone())
            .or_default()
            .push_back(seq);
        inner
            .by_event
            .entry((attempt.tenant_id.clone(), attempt.event_id.clone()))
            .or_default()
            .push_back(seq);
        inner.records.push_back(Arc::new(attempt));
        self.evict(&mut inner);
    }

    /// Lists an endpoint's attempts, newest first, before the iterator.
    pub fn by_endpoint(
        &self,
        endpoint_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Page<AttemptView> {
        let mut inner = self.lock();
        self.evict(&mut inner);
        page(&inner, inner.by_endpoint.get(endpoint_id), before, limit)
    }

    /// Lists a tenant's attempts of an event, newest first, before the iterator.
    pub fn by_event(
        &self,
        tenant_id: &str,
        event_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Page<AttemptView> {
        let mut inner = self.lock();
        self.evict(&mut inner);
        let key = (tenant_id.to_string(), event_id.to_string());
        page(&inner, inner.by_event.get(&key), before, limit)
    }

    fn evict(&self, inner: &mut Inner) {
        let oldest_kept_ms = now_ms().saturating_sub(self.retention.as_millis() as i64);
        while let Some(front) = inner.records.front() {
            if inner.records.len() <= self.max && front.started_at_ms >= oldest_kept_ms {
                break;
            }
            let seq = inner.first_seq;
            let endpoint_id = front.endpoint_id.clone();
            let event_key = (front.tenant_id.clone(), front.event_id.clone());
            inner.records.pop_front();
            inner.first_seq += 1;
            pop_index(&mut inner.by_endpoint, &endpoint_id, seq);
            pop_index(&mut inner.by_event, &event_key, seq);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn pop_index<K: std::hash::Hash + Eq>(index: &mut HashMap<K, VecDeque<u64>>, key: &K, seq: u64) {
    if let Some(seqs) = index.get_mut(key) {
        if seqs.front() == Some(&seq) {
            seqs.pop_front();
        }
        if seqs.is_empty() {
            index.remove(key);
        }
    }
}

fn page(
    inner: &Inner,
    seqs: Option<&VecDeque<u64>>,
    before: Option<u64>,
    limit: usize,
) -> Page<AttemptView> {
    let mut selected: Vec<u64> = seqs
        .into_iter()
        .flatten()
        .rev()
        .copied()
        .filter(|seq| before.is_none_or(|before| *seq < before))
        .take(limit + 1)
        .collect();
    let done = selected.len() <= limit;
    selected.truncate(limit);
    let data = selected
        .iter()
        .filter_map(|seq| {
            let index = seq.checked_sub(inner.first_seq)? as usize;
            inner
                .records
                .get(index)
                .map(|attempt| AttemptView::from(attempt.as_ref()))
        })
        .collect();
    Page {
        data,
        iterator: if done {
            None
        } else {
            selected.last().map(u64::to_string)
        },
        done,
    }
}

/// Starts reading the attempts topic into `store`, from the start of the retention window.
pub async fn start_reader(
    kafka: &KafkaArgs,
    store: Arc<AttemptStore>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let topic = kafka.topics().attempts;
    // The group id is required by librdkafka but unused: partitions are assigned, and
    // nothing is committed.
    let consumer: StreamConsumer<QuietContext> =
        consumer_config(kafka, &kafka.group_id("api-attempts-reader"))
            .create_with_context(QuietContext::default())
            .map_err(aurora_common::Error::kafka("creating the attempts reader"))?;
    let consumer = Arc::new(consumer);
    let start_ms = now_ms().saturating_sub(store.retention.as_millis() as i64);
    let assignment = start_offsets(consumer.clone(), &topic, start_ms).await?;
    consumer
        .assign(&assignment)
        .map_err(aurora_common::Error::kafka(
            "assigning the attempts partitions",
        ))?;
    tokio::spawn(read(consumer, store, topic, shutdown));
    Ok(())
}

/// Returns the offset of the first attempt at or after `start_ms` in every partition, or the
/// beginning when the broker cannot look it up.
async fn start_offsets(
    consumer: Arc<StreamConsumer<QuietContext>>,
    topic: &str,
    start_ms: i64,
) -> Result<TopicPartitionList, Error> {
    let topic = topic.to_string();
    let lookup = tokio::task::spawn_blocking(move || {
        let metadata = consumer
            .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
            .map_err(aurora_common::Error::kafka(format!("reading metadata of {topic}")))?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|found| found.name() == topic)
            .map(|found| found.partitions().len() as i32)
            .unwrap_or(0);
        if partitions == 0 {
            return Err(aurora_common::Error::TopicNotFound { topic });
        }
        let mut by_time = TopicPartitionList::new();
        let mut beginning = TopicPartitionList::new();
        for partition in 0..partitions {
            by_time
                .add_partition_offset(&topic, partition, Offset::Offset(start_ms))
                .map_err(aurora_common::Error::kafka("building the attempts assignment"))?;
            beginning
                .add_partition_offset(&topic, partition, Offset::Beginning)
                .map_err(aurora_common::Error::kafka("building the attempts assignment"))?;
        }
        match consumer.offsets_for_times(by_time, METADATA_TIMEOUT) {
            Ok(found) => Ok(with_beginning_for_unknown(found, &beginning)),
            Err(error) => {
                tracing::warn!(topic = %topic, error = %error, "Looking up attempts by time failed; reading from the beginning.");
                Ok(beginning)
            }
        }
    })
    .await
    .map_err(|_| aurora_common::Error::TaskStopped("the attempts offset lookup"))??;
    Ok(lookup)
}

/// Replaces offsets the time lookup could not find (past the newest record) with the end,
/// and any other unusable result with the beginning.
fn with_beginning_for_unknown(
    found: TopicPartitionList,
    beginning: &TopicPartitionList,
) -> TopicPartitionList {
    let mut assignment = TopicPartitionList::new();
    for element in found.elements() {
        let offset = match element.offset() {
            Offset::Offset(offset) => Offset::Offset(offset),
            Offset::End => Offset::End,
            _ => Offset::Beginning,
        };
        // Adding a partition to a fresh list fails only for invalid offsets, which the match
        // above rules out.
        let _ = assignment.add_partition_offset(element.topic(), element.partition(), offset);
    }
    if assignment.count() == 0 {
        beginning.clone()
    } else {
        assignment
    }
}

async fn read(
    consumer: Arc<StreamConsumer<QuietContext>>,
    store: Arc<AttemptStore>,
    topic: String,
    shutdown: CancellationToken,
) {
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
            received = consumer.recv() => received,
        };
        match received {
            Ok(message) => match message.payload().map(aurora_schemas::decode::<Attempt>) {
                Some(Ok(attempt)) => store.insert(attempt),
                Some(Err(error)) => {
                    tracing::warn!(topic = %topic, partition = message.partition(), offset = message.offset(), error = %error, "Attempt record skipped because it does not decode.");
                }
                None => {}
            },
            Err(error) => {
                tracing::warn!(topic = %topic, error = %error, "Reading attempts failed; retrying.");
                tokio::time::sleep(READ_RETRY_DELAY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(endpoint_id: &str, event_id: &str, number: i32, started_at_ms: i64) -> Attempt {
        Attempt {
            delivery_id: format!("dlv_{event_id}_{endpoint_id}"),
            event_id: event_id.into(),
            event_type: "invoice.paid".into(),
            endpoint_id: endpoint_id.into(),
            url: "http://127.0.0.1:1/hook".into(),
            attempt: number,
            started_at_ms,
            duration_ms: 3,
            status: Some(500),
            error: Some("HTTP 500".into()),
            response_excerpt: String::new(),
            outcome: AttemptOutcome::RetryScheduled,
            next_attempt_at_ms: None,
            tenant_id: "tn_1".into(),
        }
    }

    #[test]
    fn pages_newest_first() {
        let store = AttemptStore::new(Duration::from_secs(3600), 100);
        for number in 1..=5 {
            store.insert(attempt("ep_1", "evt_1", number, now_ms()));
        }
        store.insert(attempt("ep_2", "evt_1", 1, now_ms()));

        let first = store.by_endpoint("ep_1", None, 2);
        let numbers: Vec<i32> = first.data.iter().map(|view| view.attempt).collect();
        assert_eq!(numbers, [5, 4]);
        assert!(!first.done);
        let before = first.iterator.unwrap().parse().unwrap();
        let second = store.by_endpoint("ep_1", Some(before), 10);
        let numbers: Vec<i32> = second.data.iter().map(|view| view.attempt).collect();
        assert_eq!(numbers, [3, 2, 1]);
        assert!(second.done);
        assert_eq!(store.by_event("tn_1", "evt_1", None, 10).data.len(), 6);
        assert!(store.by_event("tn_2", "evt_1", None, 10).data.is_empty());
    }

    #[test]
    fn oldest_dropped_beyond_count() {
        let store = AttemptStore::new(Duration::from_secs(3600), 3);
        for number in 1..=5 {
            store.insert(attempt("ep_1", "evt_1", number, now_ms()));
        }
        let numbers: Vec<i32> = store
            .by_endpoint("ep_1", None, 10)
            .data
            .iter()
            .map(|view| view.attempt)
            .collect();
        assert_eq!(numbers, [5, 4, 3]);
    }

    #[test]
    fn attempts_older_than_retention_dropped() {
        let store = AttemptStore::new(Duration::from_secs(60), 100);
        store.insert(attempt("ep_1", "evt_1", 1, now_ms() - 120_000));
        store.insert(attempt("ep_1", "evt_1", 2, now_ms()));
        let page = store.by_endpoint("ep_1", None, 10);
        assert_eq!(page.data.len(), 1);
        assert_eq!(page.data[0].attempt, 2);
        assert_eq!(store.by_event("tn_1", "evt_1", None, 10).data.len(), 1);
    }
}
