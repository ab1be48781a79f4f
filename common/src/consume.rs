//! The consumer loop shared by router, deliverer and retry: at-least-once by construction.
//!
//! Each record is handed to a handler that returns a future. The record's offset becomes
//! committable only when that future succeeds, and handlers resolve it only once the outcome
//! is durable. A handler error stops the loop without committing that record, so a restart
//! processes it again. Records may be processed concurrently, but commits follow the lowest
//! pending offset of each partition, so they never pass an unfinished record.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::KafkaArgs;
use crate::kafka::{consumer_config, ErrorLog};
use crate::metrics::{LagReporter, Metrics};
use crate::offsets::OffsetTracker;
use crate::Error;

/// A partition of a topic.
pub type TopicPartition = (String, i32);

type Tracker = Arc<Mutex<OffsetTracker<TopicPartition>>>;

/// Pause after a consumer error, such as an unreachable broker, before polling again.
const CONSUMER_ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// How often durable offsets are committed while records flow.
const COMMIT_INTERVAL: Duration = Duration::from_millis(200);

/// Consumer context that commits durable offsets of revoked partitions before a rebalance
/// takes them away, and drops their pending records.
pub struct CommitContext {
    tracker: Tracker,
    errors: ErrorLog,
    lag: Option<LagReporter>,
}

impl ClientContext for CommitContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.report(&error, reason);
    }

    fn stats_raw(&self, statistics: &[u8]) {
        if let Some(lag) = &self.lag {
            lag.report(statistics);
        }
    }
}

impl ConsumerContext for CommitContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let mut tracker = lock(&self.tracker);
        let revoked: Vec<TopicPartition> = revoked
            .elements()
            .iter()
            .map(|element| (element.topic().to_string(), element.partition()))
            .collect();
        let positions: Vec<(TopicPartition, i64)> = tracker
            .committable()
            .into_iter()
            .filter(|(partition, _)| revoked.contains(partition))
            .collect();
        if !positions.is_empty() {
            if let Err(error) = consumer.commit(&partition_list(&positions), CommitMode::Sync) {
                tracing::warn!(error = %error, "Committing offsets of revoked partitions failed; their records will be processed again.");
            }
        }
        for partition in &revoked {
            tracker.revoke(partition);
        }
        tracing::debug!(partitions = ?revoked, "Partitions revoked.");
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                let partitions: Vec<TopicPartition> = assigned
                    .elements()
                    .iter()
                    .map(|element| (element.topic().to_string(), element.partition()))
                    .collect();
                if partitions.is_empty() {
                    tracing::warn!("No partitions assigned. Other members of the group hold them; if none is running, the broker still counts a stopped member until its session times out (session.timeout.ms).");
                } else {
                    tracing::info!(partitions = ?partitions, "Partitions assigned.");
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => {
                tracing::warn!(error = %error, "Rebalance failed.");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(error) = result {
            tracing::warn!(error = %error, "Committing offsets failed; retrying with the next commit.");
            let mut tracker = lock(&self.tracker);
            for element in offsets.elements() {
                tracker.commit_failed(&(element.topic().to_string(), element.partition()));
            }
        }
    }
}

fn lock(tracker: &Tracker) -> std::sync::MutexGuard<'_, OffsetTracker<TopicPartition>> {
    // A panic while holding the lock leaves the tracker consistent: every method is a single
    // map update.
    tracker.lock().unwrap_or_else(PoisonError::into_inner)
}

fn partition_list(positions: &[(TopicPartition, i64)]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), position) in positions {
        // Adding an offset fails only for Offset::OffsetTail, which is never used here.
        let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*position));
    }
    list
}

/// Processing of one record, split in two: `start` runs in offset order, one record at a
/// time, and returns the work that completes the record, which may run concurrently with
/// the work of later records.
pub trait Handler: Send {
    /// Error that stops the consumer without committing the record.
    type Error: From<Error> + Send + 'static;
    /// Work that resolves once the record's outcome is durable.
    type Done: Future<Output = Result<(), Self::Error>> + Send + 'static;

    /// Starts processing a record, for example by enqueueing produce requests in order.
    fn start(
        &mut self,
        message: OwnedMessage,
    ) -> impl Future<Output = Result<Self::Done, Self::Error>> + Send;
}

/// A consumer in a group, subscribed to some topics, that commits only durable outcomes.
pub struct GroupConsumer {
    consumer: Arc<StreamConsumer<CommitContext>>,
    tracker: Tracker,
    /// Records processed at once, at most.
    pub max_in_flight: usize,
    /// How long shutdown waits for records in flight before leaving them uncommitted.
    pub shutdown_grace: Duration,
}

impl GroupConsumer {
    /// Joins `group_id` and subscribes to `topics`.
    pub fn new(
        args: &KafkaArgs,
        group_id: &str,
        topics: &[&str],
        overrides: &[(&str, &str)],
    ) -> Result<Self, Error> {
        GroupConsumer::with_metrics(args, group_id, topics, overrides, &Metrics::default())
    }

    /// Joins `group_id` and subscribes to `topics`; reports the group's lag to `metrics`
    /// when they are served.
    pub fn with_metrics(
        args: &KafkaArgs,
        group_id: &str,
        topics: &[&str],
        overrides: &[(&str, &str)],
        metrics: &Metrics,
    ) -> Result<Self, Error> {
        let tracker = Tracker::default();
        let mut config = consumer_config(args, group_id);
        for (key, value) in overrides {
            config.set(*key, *value);
        }
        let lag = metrics.consumer_lag(group_id);
        if let Some(lag) = &lag {
            // A statistics.interval.ms the user set wins.
            if config.get("statistics.interval.ms").is_none() {
                config.set("statistics.interval.ms", lag.statistics_interval_ms());
            }
        }
        let consumer: StreamConsumer<CommitContext> = config
            .create_with_context(CommitContext {
                tracker: tracker.clone(),
                errors: ErrorLog::default(),
                lag,
            })
            .map_err(Error::kafka(format!(
                "creating consumer of group {group_id}"
            )))?;
        consumer
            .subscribe(topics)
            .map_err(Error::kafka(format!("subscribing to {topics:?}")))?;
        Ok(GroupConsumer {
            consumer: Arc::new(consumer),
            tracker,
            max_in_flight: 1024,
            shutdown_grace: Duration::from_secs(10),
        })
    }

    /// Returns the underlying consumer, for pausing and resuming partitions.
    pub fn consumer(&self) -> Arc<StreamConsumer<CommitContext>> {
        self.consumer.clone()
    }

    /// Consumes until `shutdown` is cancelled or a handler fails.
    pub async fn run<H: Handler>(
        &self,
        shutdown: CancellationToken,
        mut handler: H,
    ) -> Result<(), H::Error> {
        let slots = Arc::new(Semaphore::new(self.max_in_flight));
        let mut tasks: JoinSet<Result<(), H::Error>> = JoinSet::new();
        let mut commit_timer = tokio::time::interval(COMMIT_INTERVAL);
        let failure = loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break None,
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Some(error) = task_error(joined) {
                        break Some(error);
                    }
                }
                _ = commit_timer.tick() => self.commit(CommitMode::Async),
                received = self.consumer.recv() => {
                    let message = match received {
                        Ok(message) => message.detach(),
                        Err(error) => {
                            tracing::warn!(error = %error, "Consumer error; retrying in 1 s.");
                            tokio::time::sleep(CONSUMER_ERROR_BACKOFF).await;
                            continue;
                        }
                    };
                    if let Err(error) = self.start(&mut handler, message, &slots, &mut tasks).await {
                        break Some(error);
                    }
                }
            }
        };
        self.drain(tasks).await;
        self.commit(CommitMode::Sync);
        match failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    async fn start<H: Handler>(
        &self,
        handler: &mut H,
        message: OwnedMessage,
        slots: &Arc<Semaphore>,
        tasks: &mut JoinSet<Result<(), H::Error>>,
    ) -> Result<(), H::Error> {
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::TaskStopped("the in-flight limiter"))?;
        let ticket = lock(&self.tracker).begin(
            (message.topic().to_string(), message.partition()),
            message.offset(),
        );
        let work = handler.start(message).await?;
        let tracker = self.tracker.clone();
        tasks.spawn(async move {
            let result = work.await;
            if result.is_ok() {
                lock(&tracker).complete(&ticket);
            }
            drop(slot);
            result
        });
        Ok(())
    }

    async fn drain<E: Send + 'static>(&self, mut tasks: JoinSet<Result<(), E>>) {
        let waited = tokio::time::timeout(self.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if waited.is_err() {
            tracing::warn!(
                pending = tasks.len(),
                "Records still in flight at shutdown are left uncommitted and will be processed again."
            );
            tasks.abort_all();
        }
    }

    fn commit(&self, mode: CommitMode) {
        let positions = lock(&self.tracker).committable();
        if positions.is_empty() {
            return;
        }
        match self.consumer.commit(&partition_list(&positions), mode) {
            Ok(()) => {
                let mut tracker = lock(&self.tracker);
                for (partition, position) in &positions {
                    tracker.mark_committed(partition, *position);
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, "Committing offsets failed; retrying with the next commit.")
            }
        }
    }
}

fn task_error<E: From<Error>>(joined: Result<Result<(), E>, tokio::task::JoinError>) -> Option<E> {
    match joined {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error),
        Err(join_error) if join_error.is_cancelled() => None,
        Err(_) => Some(E::from(Error::TaskStopped("a record handler"))),
    }
}
