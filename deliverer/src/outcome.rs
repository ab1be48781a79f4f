//! Outcome records of an attempt: the attempt record, then a retry or dead-letter record, and
//! endpoint health events. A delivery is done only when the broker has acknowledged them all.

use aurora_common::produce::{enqueue, Pending};
use aurora_common::time::now_ms;
use aurora_schemas::{
    Attempt, AttemptOutcome, Contract, Delivery, Operation, OperationKind, Subscription,
};
use prometheus_client::metrics::counter::Counter;
use rdkafka::message::OwnedMessage;

use crate::classify::Verdict;
use crate::health::HealthChange;
use crate::run::{Shared, Tried};
use crate::schedule::{next_attempt_at_ms, next_tier};
use crate::Error;

/// Next stage of a delivery after an attempt.
enum Step {
    Delivered,
    Retry {
        tier: usize,
        at_ms: i64,
    },
    /// `disable` carries the run of consecutive failures when the endpoint is disabled.
    DeadLetter {
        reason: String,
        disable: Option<u32>,
    },
}

impl Shared {
    /// Writes the attempt record and what follows it, and waits for the acknowledgements.
    pub(crate) async fn record(
        &self,
        endpoint: &Subscription,
        mut delivery: Delivery,
        tried: Tried,
    ) -> Result<(), Error> {
        let now = now_ms();
        let succeeded = matches!(tried.verdict, Verdict::Delivered);
        let change = self.health.record(&endpoint.endpoint_id, succeeded, now);
        let step = self.next_step(&tried, change, now);
        let attempt = attempt_record(endpoint, &delivery, &tried, &step);
        log_attempt(&attempt);
        let (outcome_counter, detail_counter) = self.outcome_counters(&tried.verdict, &step);
        self.metrics
            .attempt_seconds
            .observe(tried.summary.duration_ms as f64 / 1000.0);

        let key = endpoint.endpoint_id.as_str();
        let mut pending = vec![self.enqueue(&self.topics.attempts, key, &attempt).await?];
        delivery.attempts.push(tried.summary);
        let mut disabled = false;
        match step {
            Step::Delivered => {}
            Step::Retry { tier, at_ms } => {
                delivery.not_before_ms = at_ms;
                pending.push(
                    self.enqueue(&self.topics.retry[tier].topic, key, &delivery)
                        .await?,
                );
            }
            Step::DeadLetter { reason, disable } => {
                if let Some(consecutive_failures) = disable {
                    let records = self.disable(endpoint, &reason, consecutive_failures, now);
                    pending.extend(records.await?);
                    disabled = true;
                }
                delivery.dead_letter_reason = Some(reason);
                pending.push(
                    self.enqueue(&self.topics.dead_letter, key, &delivery)
                        .await?,
                );
            }
        }
        if let Some(record) = self.health_event(endpoint, change, &attempt, now).await? {
            pending.push(record);
        }
        for record in pending {
            record.acked().await?;
        }
        outcome_counter.inc();
        if let Some(counter) = detail_counter {
            counter.inc();
        }
        if disabled {
            // Later deliveries of this endpoint must see it disabled.
            self.table.catch_up().await?;
        }
        Ok(())
    }

    /// Returns the counter of the delivery's outcome, and the retry tier's or dead-letter
    /// reason's counter.
    fn outcome_counters(&self, verdict: &Verdict, step: &Step) -> (&Counter, Option<&Counter>) {
        let metrics = &self.metrics;
        match step {
            Step::Delivered => (&metrics.delivered, None),
            Step::Retry { tier, .. } => (
                &metrics.retry_scheduled,
                metrics.retries_scheduled.get(*tier),
            ),
            Step::DeadLetter { disable: None, .. } => (
                &metrics.dead_lettered,
                Some(&metrics.dead_letters.attempts_exhausted),
            ),
            Step::DeadLetter { .. } if matches!(verdict, Verdict::Gone { .. }) => (
                &metrics.dead_lettered,
                Some(&metrics.dead_letters.endpoint_gone),
            ),
            Step::DeadLetter { .. } => (
                &metrics.dead_lettered,
                Some(&metrics.dead_letters.endpoint_disabled),
            ),
        }
    }

    fn next_step(&self, tried: &Tried, change: Option<HealthChange>, now: i64) -> Step {
        if let Some(HealthChange::Disable {
            consecutive_failures,
        }) = change
        {
            return Step::DeadLetter {
                reason: format!(
                    "endpoint disabled after {consecutive_failures} consecutive failures"
                ),
                disable: Some(consecutive_failures),
            };
        }
        match &tried.verdict {
            Verdict::Delivered => Step::Delivered,
            Verdict::Gone { reason } => Step::DeadLetter {
                reason: reason.clone(),
                disable: Some(1),
            },
            Verdict::Retry { not_before, .. } => {
                let delays: Vec<_> = self.topics.retry.iter().map(|tier| tier.delay).collect();
                match next_tier(&delays, tried.summary.attempt as usize, *not_before) {
                    Some(tier) => Step::Retry {
                        tier,
                        at_ms: next_attempt_at_ms(now, delays[tier], *not_before),
                    },
                    None => Step::DeadLetter {
                        reason: "attempts exhausted".into(),
                        disable: None,
                    },
                }
            }
        }
    }

    /// Writes the endpoint's subscription with `enabled` off, and the operational event.
    async fn disable(
        &self,
        endpoint: &Subscription,
        reason: &str,
        consecutive_failures: u32,
        now: i64,
    ) -> Result<Vec<Pending>, Error> {
        // NOTE: an endpoint change written between the table's copy and this write is
        // overwritten; the window is the duration of one attempt.
        let mut subscription = self
            .table
            .get(&endpoint.endpoint_id)
            .map_or_else(|| endpoint.clone(), |latest| (*latest).clone());
        subscription.enabled = false;
        subscription.updated_at_ms = now;
        subscription.disabled_reason = reason.to_string();
        tracing::error!(endpoint_id = %endpoint.endpoint_id, reason, "Endpoint disabled; its deliveries are dead-lettered until it is enabled.");
        let key = endpoint.endpoint_id.as_str();
        let operation = Operation {
            endpoint_id: endpoint.endpoint_id.clone(),
            kind: OperationKind::Disabled,
            reason: reason.to_string(),
            consecutive_failures: i32::try_from(consecutive_failures).unwrap_or(i32::MAX),
            at_ms: now,
        };
        Ok(vec![
            self.enqueue(&self.topics.subscriptions, key, &subscription)
                .await?,
            self.enqueue(&self.topics.operations, key, &operation)
                .await?,
        ])
    }

    /// Writes a failing or recovered event when the health of the endpoint changed.
    async fn health_event(
        &self,
        endpoint: &Subscription,
        change: Option<HealthChange>,
        attempt: &Attempt,
        now: i64,
    ) -> Result<Option<Pending>, Error> {
        let (kind, consecutive_failures) = match change {
            Some(HealthChange::Failing {
                consecutive_failures,
            }) => (OperationKind::Failing, consecutive_failures),
            Some(HealthChange::Recovered {
                consecutive_failures,
            }) => (OperationKind::Recovered, consecutive_failures),
            // Disabling writes its own event.
            Some(HealthChange::Disable { .. }) | None => return Ok(None),
        };
        tracing::warn!(endpoint_id = %endpoint.endpoint_id, kind = ?kind, consecutive_failures, "Endpoint health changed.");
        let operation = Operation {
            endpoint_id: endpoint.endpoint_id.clone(),
            kind,
            reason: attempt.error.clone().unwrap_or_else(|| "delivered".into()),
            consecutive_failures: i32::try_from(consecutive_failures).unwrap_or(i32::MAX),
            at_ms: now,
        };
        Ok(Some(
            self.enqueue(&self.topics.operations, &endpoint.endpoint_id, &operation)
                .await?,
        ))
    }

    pub(crate) async fn dead_letter(
        &self,
        mut delivery: Delivery,
        reason: &str,
    ) -> Result<(), Error> {
        tracing::error!(delivery_id = %delivery.delivery_id, endpoint_id = %delivery.endpoint_id, event_id = %delivery.event_id, reason, "Delivery dead-lettered.");
        delivery.dead_letter_reason = Some(reason.to_string());
        let key = delivery.endpoint_id.clone();
        self.enqueue(&self.topics.dead_letter, &key, &delivery)
            .await?
            .acked()
            .await?;
        self.metrics.dead_lettered.inc();
        Ok(())
    }

    pub(crate) async fn quarantine(
        &self,
        message: &OwnedMessage,
        reason: String,
    ) -> Result<(), Error> {
        let record = aurora_common::quarantine::record(message, reason);
        let key = aurora_common::quarantine::key(&record);
        self.enqueue(&self.topics.quarantine, &key, &record)
            .await?
            .acked()
            .await?;
        self.metrics.quarantined.inc();
        Ok(())
    }

    async fn enqueue<T: Contract>(
        &self,
        topic: &str,
        key: &str,
        record: &T,
    ) -> Result<Pending, Error> {
        let value = aurora_schemas::encode(record)?;
        Ok(enqueue(&self.producer, topic, key.as_bytes(), &value, None).await?)
    }
}

fn attempt_record(
    endpoint: &Subscription,
    delivery: &Delivery,
    tried: &Tried,
    step: &Step,
) -> Attempt {
    let (outcome, next_attempt_at_ms) = match step {
        Step::Delivered => (AttemptOutcome::Delivered, None),
        Step::Retry { at_ms, .. } => (AttemptOutcome::RetryScheduled, Some(*at_ms)),
        Step::DeadLetter { .. } => (AttemptOutcome::DeadLettered, None),
    };
    let summary = &tried.summary;
    Attempt {
        delivery_id: delivery.delivery_id.clone(),
        event_id: delivery.event_id.clone(),
        event_type: delivery.event_type.clone(),
        endpoint_id: delivery.endpoint_id.clone(),
        url: endpoint.url.clone(),
        attempt: summary.attempt,
        started_at_ms: summary.started_at_ms,
        duration_ms: summary.duration_ms,
        status: summary.status,
        error: summary.error.clone(),
        response_excerpt: summary.response_excerpt.clone(),
        outcome,
        next_attempt_at_ms,
        tenant_id: endpoint.tenant_id.clone(),
    }
}

fn log_attempt(attempt: &Attempt) {
    let status = attempt.status.unwrap_or(0);
    let error = attempt.error.as_deref().unwrap_or("");
    match attempt.outcome {
        AttemptOutcome::Delivered => {
            tracing::trace!(delivery_id = %attempt.delivery_id, endpoint_id = %attempt.endpoint_id, attempt = attempt.attempt, status, "Delivered.")
        }
        AttemptOutcome::RetryScheduled => {
            tracing::warn!(delivery_id = %attempt.delivery_id, endpoint_id = %attempt.endpoint_id, attempt = attempt.attempt, status, error, "Attempt failed; retry scheduled.")
        }
        AttemptOutcome::DeadLettered => {
            tracing::error!(delivery_id = %attempt.delivery_id, endpoint_id = %attempt.endpoint_id, attempt = attempt.attempt, status, error, "Attempt failed; delivery dead-lettered.")
        }
    }
}
