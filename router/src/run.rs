//! The router's consumer loop: event → matching endpoints → deliveries, or → quarantine.

use std::future::Future;
use std::pin::Pin;

use aurora_common::consume::{GroupConsumer, Handler};
use aurora_common::kafka::Producer;
use aurora_common::metrics::{Metrics, RouterMetrics};
use aurora_common::produce::{enqueue, Pending, ProduceError};
use aurora_common::time::now_ms;
use aurora_common::{KafkaArgs, SubscriptionTable, Topics};
use aurora_schemas::Delivery;
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use tokio_util::sync::CancellationToken;

use crate::event::{parse_event, IncomingEvent};
use crate::filter::{delivery_id, matches};
use crate::Error;

/// Settings of a router instance.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    pub kafka: KafkaArgs,
    /// Events routed at once whose deliveries are not yet acknowledged, at most.
    pub max_in_flight: usize,
    /// Registry the router records its metrics in.
    pub metrics: Metrics,
}

/// Runs a router until `shutdown` is cancelled.
pub async fn run(config: RouterConfig, shutdown: CancellationToken) -> Result<(), Error> {
    let kafka = &config.kafka;
    let topics = kafka.topics();
    let table =
        SubscriptionTable::start(kafka, &topics.subscriptions, shutdown.child_token()).await?;
    let producer = aurora_common::kafka::producer(kafka)?;
    let group = kafka.group_id("router");
    let mut consumer =
        GroupConsumer::with_metrics(kafka, &group, &[&topics.events], &[], &config.metrics)?;
    consumer.max_in_flight = config.max_in_flight;
    tracing::info!(topic = %topics.events, group = %group, "Router started.");

    let router = Router {
        table,
        producer,
        topics,
        metrics: config.metrics.router(),
    };
    let result = consumer.run(shutdown, router).await;
    tracing::info!("Router stopped.");
    result
}

struct Router {
    table: SubscriptionTable,
    producer: Producer,
    topics: Topics,
    metrics: RouterMetrics,
}

type Done = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

impl Handler for Router {
    type Error = Error;
    type Done = Done;

    async fn start(&mut self, message: OwnedMessage) -> Result<Done, Error> {
        let (pending, routed) = match parse_event(&message) {
            Ok(event) => (self.route(&message, event).await?, true),
            Err(reason) => (vec![self.quarantine(&message, reason).await?], false),
        };
        let events_routed = self.metrics.events_routed.clone();
        Ok(Box::pin(async move {
            for record in pending {
                record.acked().await.map_err(produce_error)?;
            }
            if routed {
                events_routed.inc();
            }
            Ok(())
        }))
    }
}

impl Router {
    /// Enqueues one delivery per endpoint whose filters select the event's type.
    async fn route(
        &mut self,
        message: &OwnedMessage,
        event: IncomingEvent,
    ) -> Result<Vec<Pending>, Error> {
        // Subscriptions written before the event must be visible to it.
        let written_ms = message.timestamp().to_millis().unwrap_or_else(now_ms);
        self.table.ensure_fresh(written_ms).await?;

        let endpoints = self.table.endpoints();
        let routed_at_ms = now_ms();
        let mut pending = Vec::new();
        for endpoint in endpoints.values() {
            // Endpoints receive only their own tenant's events.
            if endpoint.tenant_id != event.tenant_id {
                continue;
            }
            if !endpoint
                .event_types
                .iter()
                .any(|filter| matches(filter, &event.event_type))
            {
                continue;
            }
            let delivery = Delivery {
                delivery_id: delivery_id(&event.id, &endpoint.endpoint_id),
                event_id: event.id.clone(),
                event_type: event.event_type.clone(),
                endpoint_id: endpoint.endpoint_id.clone(),
                content_type: event.content_type.clone(),
                payload: event.payload.clone(),
                event_time_ms: event.time_ms,
                routed_at_ms,
                attempts: Vec::new(),
                not_before_ms: 0,
                dead_letter_reason: None,
            };
            let value = aurora_schemas::encode(&delivery)?;
            let record = enqueue(
                &self.producer,
                &self.topics.deliveries,
                endpoint.endpoint_id.as_bytes(),
                &value,
                None,
            )
            .await
            .map_err(produce_error)?;
            pending.push(record);
        }
        self.metrics.deliveries_routed.inc_by(pending.len() as u64);
        if pending.is_empty() {
            self.metrics.events_unmatched.inc();
        }
        tracing::trace!(event_id = %event.id, event_type = %event.event_type, partition = message.partition(), offset = message.offset(), deliveries = pending.len(), "Event routed.");
        Ok(pending)
    }

    /// Enqueues a copy of an event that cannot be routed, with the reason.
    async fn quarantine(&self, message: &OwnedMessage, reason: String) -> Result<Pending, Error> {
        let record = aurora_common::quarantine::record(message, reason);
        self.metrics.quarantined.inc();
        let value = aurora_schemas::encode(&record)?;
        let key = aurora_common::quarantine::key(&record);
        enqueue(
            &self.producer,
            &self.topics.quarantine,
            key.as_bytes(),
            &value,
            None,
        )
        .await
        .map_err(produce_error)
    }
}

fn produce_error(error: ProduceError) -> Error {
    Error::Produce {
        topic: error.topic,
        source: error.source,
    }
}
