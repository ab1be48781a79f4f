//! Appends events to the events topic: a Rust library, and the HTTP ingest API in [`ingest`].
//!
//! A send returns once the broker has acknowledged the record (idempotent producer, acks from
//! all in-sync replicas), with its partition and offset.

pub mod ingest;

use aurora_common::contract::{
    check_event_fields, CONTENT_TYPE_HEADER, EVENT_AVRO_CONTENT_TYPE, ID_HEADER, TENANT_HEADER,
    TYPE_HEADER,
};
use aurora_common::kafka::Producer;
use aurora_common::produce::produce;
use aurora_common::time::now_ms;
use aurora_common::KafkaArgs;
use rdkafka::message::{Header, OwnedHeaders};

/// Encoding of events on the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// CloudEvents binary mode: `ce_*` headers and the payload as the value.
    #[default]
    Headers,
    /// The `aurora.Event` Avro envelope as the value.
    Avro,
}

/// An event to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Event id; a random UUID when absent.
    pub id: Option<String>,
    pub event_type: String,
    /// Partition key; the event id when absent.
    pub key: Option<String>,
    pub content_type: String,
    pub payload: Vec<u8>,
    /// Tenant whose endpoints receive the event; endpoints without a tenant when absent.
    pub tenant_id: Option<String>,
}

/// Partition and offset of a stored event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Produced {
    pub id: String,
    pub partition: i32,
    pub offset: i64,
}

/// Errors of a send.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The event breaks the events-topic contract.
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    #[error(transparent)]
    Kafka(#[from] aurora_common::Error),
    #[error(transparent)]
    Produce(#[from] aurora_common::produce::ProduceError),
    #[error(transparent)]
    Schema(#[from] aurora_schemas::SchemaError),
}

impl Error {
    /// Returns whether the broker or the client rejected the record as larger than
    /// `message.max.bytes` allows, which no retry can fix.
    pub fn is_too_large(&self) -> bool {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode};
        matches!(
            self,
            Error::Produce(aurora_common::produce::ProduceError {
                source: KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize
                ),
                ..
            })
        )
    }
}

/// Producer of events, cheap to clone.
#[derive(Clone)]
pub struct EventProducer {
    producer: Producer,
    topic: String,
    source: String,
    encoding: Encoding,
}

impl EventProducer {
    /// Creates a producer for the events topic of `args`, naming `source` as the producing service.
    pub fn new(args: &KafkaArgs, source: &str, encoding: Encoding) -> Result<Self, Error> {
        Ok(EventProducer {
            producer: aurora_common::kafka::producer(args)?,
            topic: args.topics().events,
            source: source.to_string(),
            encoding,
        })
    }

    /// Checks and sends an event; returns once the broker has acknowledged it.
    pub async fn send(&self, event: NewEvent) -> Result<Produced, Error> {
        let id = event
            .id
            .unwrap_or_else(|| format!("evt_{}", uuid::Uuid::new_v4().simple()));
        check_event_fields(&id, &event.event_type, &event.content_type, &event.payload)
            .map_err(Error::InvalidEvent)?;
        let key = event.key.unwrap_or_else(|| id.clone());

        let (value, headers) = match self.encoding {
            Encoding::Headers => {
                let mut headers = OwnedHeaders::new_with_capacity(6)
                    .insert(header("ce_specversion", "1.0"))
                    .insert(header(ID_HEADER, &id))
                    .insert(header(TYPE_HEADER, &event.event_type))
                    .insert(header("ce_source", &self.source))
                    .insert(header(CONTENT_TYPE_HEADER, &event.content_type));
                if let Some(tenant_id) = &event.tenant_id {
                    headers = headers.insert(header(TENANT_HEADER, tenant_id));
                }
                (event.payload, headers)
            }
            Encoding::Avro => {
                let envelope = aurora_schemas::Event {
                    id: id.clone(),
                    event_type: event.event_type,
                    source: Some(self.source.clone()),
                    time_ms: now_ms(),
                    content_type: event.content_type,
                    data: event.payload,
                    tenant_id: event.tenant_id.unwrap_or_default(),
                };
                let headers = OwnedHeaders::new_with_capacity(1)
                    .insert(header(CONTENT_TYPE_HEADER, EVENT_AVRO_CONTENT_TYPE));
                (aurora_schemas::encode(&envelope)?, headers)
            }
        };
        let delivery = produce(
            &self.producer,
            &self.topic,
            key.as_bytes(),
            &value,
            Some(headers),
        )
        .await?;
        Ok(Produced {
            id,
            partition: delivery.partition,
            offset: delivery.offset,
        })
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}
