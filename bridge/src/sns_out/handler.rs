//! The consumer-group handler: selects events by type and hands them to the publisher. An
//! event's offset becomes committable once SNS has accepted it, it was skipped, or its
//! quarantine record is acknowledged.

use aurora_common::consume::Handler;
use aurora_common::kafka::Producer;
use aurora_common::metrics::SnsOutMetrics;
use futures::future::{self, BoxFuture, FutureExt};
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use tokio::sync::{mpsc, oneshot};

use super::entry::{AttributeNames, Entry};
use super::publish::{Outcome, Pending};
use crate::Error;

/// Hands the selected events of the events topic to the publisher.
pub struct SnsOutHandler {
    pub filters: Vec<String>,
    /// Tenant whose events are published; empty for events without a tenant.
    pub tenant_id: String,
    pub names: AttributeNames,
    pub fifo: bool,
    pub publisher: mpsc::Sender<Pending>,
    pub quarantine: Quarantine,
    pub metrics: SnsOutMetrics,
}

/// Producer of quarantine records for events SNS cannot take.
#[derive(Clone)]
pub struct Quarantine {
    pub producer: Producer,
    pub topic: String,
    /// Metric handles that count the quarantined records.
    pub metrics: SnsOutMetrics,
}

impl Quarantine {
    /// Copies the event's record to the quarantine topic and waits for the acknowledgement.
    pub async fn record(self, message: OwnedMessage, reason: String) -> Result<(), Error> {
        let record = aurora_common::quarantine::record(&message, reason);
        let value = aurora_schemas::encode(&record)?;
        let key = aurora_common::quarantine::key(&record);
        aurora_common::produce::produce(&self.producer, &self.topic, key.as_bytes(), &value, None)
            .await?;
        self.metrics.quarantined.inc();
        Ok(())
    }
}

impl Handler for SnsOutHandler {
    type Error = Error;
    type Done = BoxFuture<'static, Result<(), Error>>;

    async fn start(&mut self, message: OwnedMessage) -> Result<Self::Done, Error> {
        // The router quarantines events that break the contract; here they are only skipped.
        let event = match aurora_router::parse_event(&message) {
            Ok(event) => event,
            Err(reason) => {
                tracing::debug!(partition = message.partition(), offset = message.offset(), reason = %reason, "Skipped an invalid event; the router quarantines it.");
                return Ok(future::ready(Ok(())).boxed());
            }
        };
        let selected = event.tenant_id == self.tenant_id
            && self
                .filters
                .iter()
                .any(|filter| aurora_router::matches(filter, &event.event_type));
        if !selected {
            return Ok(future::ready(Ok(())).boxed());
        }

        let entry = Entry::new(event, message.key(), self.fifo)
            .and_then(|entry| entry.check_size(&self.names).map(|()| entry));
        let entry = match entry {
            Ok(entry) => entry,
            Err(reason) => return Ok(self.quarantine.clone().record(message, reason).boxed()),
        };
        let (outcome_sender, outcome) = oneshot::channel();
        let pending = Pending {
            entry,
            outcome: outcome_sender,
        };
        self.publisher
            .send(pending)
            .await
            .map_err(|_| Error::TaskStopped("the SNS publisher"))?;

        let quarantine = self.quarantine.clone();
        let published = self.metrics.published.clone();
        Ok(async move {
            match outcome.await {
                Ok(Outcome::Published) => {
                    published.inc();
                    Ok(())
                }
                Ok(Outcome::Rejected(reason)) => quarantine.record(message, reason).await,
                Ok(Outcome::Failed(error)) => Err(Error::Shared(error)),
                Err(_) => Err(Error::TaskStopped("the SNS publisher")),
            }
        }
        .boxed())
    }
}
