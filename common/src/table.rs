//! A compacted topic read as a table (subscriptions, tenants, idempotency keys): every
//! partition, from the beginning, by every instance, with tombstones folded, kept current
//! while running. Rows that carry an expiry time are dropped once it passes.
//!
//! No consumer group is used, so each instance keeps the whole table. The topics are
//! compacted on Kafka. On a broker that does not compact, the reader still folds every version
//! and tombstone in order, so the result is the same.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aurora_schemas::{Contract, IdempotentResponse, Subscription, Tenant};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::KafkaArgs;
use crate::kafka::{consumer_config, QuietContext};
use crate::time::now_ms;
use crate::Error;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows inserted between two sweeps of expired rows.
const INSERTS_PER_SWEEP: usize = 1024;

/// Rows by key, as of the last record read.
pub type Rows<T> = Arc<HashMap<String, Arc<T>>>;
/// Endpoints by id, as of the last record read.
pub type Endpoints = Rows<Subscription>;

/// A record type of a compacted topic, keyed by one of its fields.
pub trait TableRecord: Contract + Send + Sync + 'static {
    /// The field that must equal the record's key.
    fn key(&self) -> &str;

    /// Returns the expiry time of the row in epoch milliseconds, or `None` when it never expires.
    fn expires_at_ms(&self) -> Option<i64> {
        None
    }
}

fn expired<T: TableRecord>(row: &T, now_ms: i64) -> bool {
    row.expires_at_ms().is_some_and(|expiry| expiry <= now_ms)
}

impl TableRecord for Subscription {
    fn key(&self) -> &str {
        &self.endpoint_id
    }
}

impl TableRecord for Tenant {
    fn key(&self) -> &str {
        &self.tenant_id
    }
}

impl TableRecord for IdempotentResponse {
    fn key(&self) -> &str {
        &self.id
    }

    fn expires_at_ms(&self) -> Option<i64> {
        Some(self.expires_at_ms)
    }
}

struct Shared<T> {
    rows: RwLock<Rows<T>>,
    /// Read progress per partition.
    progress: watch::Sender<Vec<Progress>>,
    /// Start time of the last completed catch-up, in epoch milliseconds.
    fresh_as_of_ms: RwLock<i64>,
    /// Taken by [`Table::ensure_fresh`] for its catch-up, so that callers that
    /// need one at the same time share it instead of each querying the broker.
    catch_up_turn: tokio::sync::Mutex<()>,
    /// Rows inserted since expired rows were last swept out.
    inserts_since_sweep: AtomicUsize,
}

/// How far the reader is in one partition.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// Offset after the last record applied.
    applied: i64,
    /// Whether the reader reached the end of the partition after its last record.
    at_end: bool,
}

impl Progress {
    fn covers(&self, end_offset: i64) -> bool {
        self.at_end && self.applied >= end_offset
    }
}

/// A live view of a compacted topic.
pub struct Table<T> {
    shared: Arc<Shared<T>>,
    consumer: Arc<StreamConsumer<QuietContext>>,
    topic: String,
}

impl<T> Clone for Table<T> {
    fn clone(&self) -> Self {
        Table {
            shared: self.shared.clone(),
            consumer: self.consumer.clone(),
            topic: self.topic.clone(),
        }
    }
}

/// A live view of the subscriptions topic.
pub type SubscriptionTable = Table<Subscription>;
/// A live view of the tenants topic.
pub type TenantTable = Table<Tenant>;
/// A live view of the idempotency topic.
pub type IdempotencyTable = Table<IdempotentResponse>;

impl SubscriptionTable {
    /// Returns every endpoint, as one consistent snapshot.
    pub fn endpoints(&self) -> Endpoints {
        self.rows()
    }
}

impl<T: TableRecord> Table<T> {
    /// Starts reading `topic` from the beginning; the reader stops when `shutdown` is cancelled.
    pub async fn start(
        args: &KafkaArgs,
        topic: &str,
        shutdown: CancellationToken,
    ) -> Result<Self, Error> {
        // librdkafka requires a group id even for manual assignment; this one never joins a
        // group or commits, because partitions are assigned, not subscribed.
        let consumer: StreamConsumer<QuietContext> =
            consumer_config(args, &args.group_id("table-reader"))
                .set("enable.partition.eof", "true")
                .create_with_context(QuietContext::default())
                .map_err(Error::kafka(format!("creating the reader of {topic}")))?;
        let consumer = Arc::new(consumer);
        let partitions = partition_count(&consumer, topic).await?;

        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .map_err(Error::kafka(format!("assigning the partitions of {topic}")))?;
        }
        consumer
            .assign(&assignment)
            .map_err(Error::kafka(format!("assigning the partitions of {topic}")))?;

        let shared = Arc::new(Shared {
            rows: RwLock::new(Arc::default()),
            progress: watch::channel(vec![Progress::default(); partitions as usize]).0,
            fresh_as_of_ms: RwLock::new(i64::MIN),
            catch_up_turn: tokio::sync::Mutex::new(()),
            inserts_since_sweep: AtomicUsize::new(0),
        });
        let table = Table {
            shared,
            consumer,
            topic: topic.to_string(),
        };
        tokio::spawn(table.clone().read(shutdown));
        table.catch_up().await?;
        Ok(table)
    }

    /// Returns the row with this key, if it exists and has not expired.
    pub fn get(&self, key: &str) -> Option<Arc<T>> {
        self.rows()
            .get(key)
            .filter(|row| !expired(row.as_ref(), now_ms()))
            .cloned()
    }

    /// Returns every row, as one consistent snapshot. Expired rows may remain until the next
    /// sweep.
    pub fn rows(&self) -> Rows<T> {
        self.shared
            .rows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Waits until every record written before this call has been applied.
    ///
    /// A partition is caught up when the reader has applied records up to the end offset the
    /// broker reported at the start, and has then reached the end of what it fetched. The
    /// second condition matters on tansu 0.6.0, whose end offset is the first offset of the
    /// last batch plus one rather than the offset after the last record.
    pub async fn catch_up(&self) -> Result<(), Error> {
        let started_ms = now_ms();
        let end_offsets = self.end_offsets().await?;
        let mut progress = self.shared.progress.subscribe();
        progress
            .wait_for(|progress| {
                progress
                    .iter()
                    .zip(&end_offsets)
                    .all(|(partition, end)| partition.covers(*end))
            })
            .await
            .map_err(|_| Error::TaskStopped("the table reader"))?;
        let mut fresh = self
            .shared
            .fresh_as_of_ms
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *fresh = (*fresh).max(started_ms);
        Ok(())
    }

    /// Makes sure every change written before `time_ms` has been applied, catching up only
    /// when the last catch-up started at or before that time.
    ///
    /// Guarantee: this returns only after a catch-up that started after `time_ms` has
    /// completed. Callers that need a catch-up at the same time share one: they queue behind
    /// the catch-up in progress, and when it completes every caller whose time is before its
    /// start returns, while the rest share the next one. So at most one catch-up runs at a
    /// time, a caller waits for at most two, and under a steady stream the broker receives one
    /// end-offset query per partition per catch-up rather than per record.
    pub async fn ensure_fresh(&self, time_ms: i64) -> Result<(), Error> {
        if time_ms < self.fresh_as_of_ms() {
            return Ok(());
        }
        let _turn = self.shared.catch_up_turn.lock().await;
        // The catch-up this call waited for may have started after `time_ms`.
        if time_ms < self.fresh_as_of_ms() {
            return Ok(());
        }
        self.catch_up().await
    }

    fn fresh_as_of_ms(&self) -> i64 {
        *self
            .shared
            .fresh_as_of_ms
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn end_offsets(&self) -> Result<Vec<i64>, Error> {
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        let partitions = self.shared.progress.borrow().len() as i32;
        tokio::task::spawn_blocking(move || {
            (0..partitions)
                .map(|partition| {
                    consumer
                        .fetch_watermarks(&topic, partition, METADATA_TIMEOUT)
                        .map(|(_, high)| high)
                        .map_err(Error::kafka(format!("reading the end offsets of {topic}")))
                })
                .collect()
        })
        .await
        .map_err(|_| Error::TaskStopped("the watermark query"))?
    }

    async fn read(self, shutdown: CancellationToken) {
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => return,
                received = self.consumer.recv() => received,
            };
            match received {
                Ok(message) => self.apply(&message),
                Err(KafkaError::PartitionEOF(partition)) => {
                    self.shared.progress.send_modify(|progress| {
                        if let Some(partition) = progress.get_mut(partition as usize) {
                            partition.at_end = true;
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(topic = %self.topic, error = %error, "Reading the table failed; retrying.");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    fn apply(&self, message: &BorrowedMessage<'_>) {
        let partition = message.partition();
        let offset = message.offset();
        let key = message.key().map(String::from_utf8_lossy);
        match (key, message.payload()) {
            (None, _) => {
                tracing::error!(topic = %self.topic, partition, offset, "Record without a key ignored; the key must be the record's id.");
            }
            (Some(key), None) => {
                self.update(|rows| {
                    rows.remove(key.as_ref());
                });
            }
            (Some(key), Some(value)) => match aurora_schemas::decode::<T>(value) {
                Ok(row) if row.key() == key => self.upsert(key.into_owned(), row),
                Ok(row) => {
                    tracing::error!(topic = %self.topic, partition, offset, key = %key, id = %row.key(), "Record ignored because its key differs from its id.");
                }
                Err(error) => {
                    tracing::error!(topic = %self.topic, partition, offset, error = %error, "Record ignored because it does not decode.");
                }
            },
        }
        self.shared.progress.send_modify(|progress| {
            if let Some(progress) = progress.get_mut(partition as usize) {
                progress.applied = progress.applied.max(offset + 1);
                progress.at_end = false;
            }
        });
    }

    /// Inserts a row, or removes its key when the row has already expired. Every
    /// [`INSERTS_PER_SWEEP`] inserts, it also removes the rows that expired since.
    fn upsert(&self, key: String, row: T) {
        let now = now_ms();
        if expired(&row, now) {
            self.update(|rows| {
                rows.remove(&key);
            });
            return;
        }
        let sweep = row.expires_at_ms().is_some()
            && self
                .shared
                .inserts_since_sweep
                .fetch_add(1, Ordering::Relaxed)
                >= INSERTS_PER_SWEEP;
        self.update(|rows| {
            rows.insert(key, Arc::new(row));
            if sweep {
                rows.retain(|_, row| !expired(row.as_ref(), now));
            }
        });
        if sweep {
            self.shared.inserts_since_sweep.store(0, Ordering::Relaxed);
        }
    }

    fn update(&self, change: impl FnOnce(&mut HashMap<String, Arc<T>>)) {
        let mut rows = self
            .shared
            .rows
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        change(Arc::make_mut(&mut rows));
    }
}

/// Number of partitions of `topic`, from the broker's metadata.
async fn partition_count(
    consumer: &Arc<StreamConsumer<QuietContext>>,
    topic: &str,
) -> Result<i32, Error> {
    let client = consumer.clone();
    let name = topic.to_string();
    let metadata = tokio::task::spawn_blocking(move || {
        client
            .client()
            .fetch_metadata(Some(&name), METADATA_TIMEOUT)
    })
    .await
    .map_err(|_| Error::TaskStopped("the metadata query"))?
    .map_err(Error::kafka(format!("reading metadata of {topic}")))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|found| found.name() == topic && found.error().is_none())
        .map(|found| found.partitions().len())
        .unwrap_or(0);
    if partitions == 0 {
        return Err(Error::TopicNotFound {
            topic: topic.to_string(),
        });
    }
    Ok(partitions as i32)
}
