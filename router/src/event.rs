//! The events-topic contract, and the check that turns a Kafka record into an event or a
//! reason to quarantine it.
//!
//! Two forms are accepted:
//! - CloudEvents Kafka binary mode, which plain `kcat` can write: headers `ce_id` and
//!   `ce_type` (required), `content-type` (optional, default `application/json`), and the
//!   payload as the value. JSON payloads (`application/json` or any `+json` type) must parse.
//! - The Avro envelope `aurora.Event` for typed producers: header
//!   `content-type: application/avro` and the value in Avro single-object encoding.
//!
//! The record key is the producer's partition key; routing does not read it.

use aurora_schemas::Event;
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::Message;

use aurora_common::contract::{check_event_fields, media_type};
pub use aurora_common::contract::{
    CONTENT_TYPE_HEADER, EVENT_AVRO_CONTENT_TYPE, ID_HEADER, MAX_NAME_BYTES, TENANT_HEADER,
    TYPE_HEADER,
};

/// An event that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingEvent {
    pub id: String,
    pub event_type: String,
    pub content_type: String,
    pub payload: Vec<u8>,
    pub time_ms: i64,
    /// Tenant whose endpoints receive the event; empty for endpoints without a tenant.
    pub tenant_id: String,
}

/// Reads and checks an events-topic record; the error is the quarantine reason.
pub fn parse_event(message: &OwnedMessage) -> Result<IncomingEvent, String> {
    let content_type =
        header(message, CONTENT_TYPE_HEADER)?.unwrap_or_else(|| "application/json".to_string());
    let time_ms = message
        .timestamp()
        .to_millis()
        .unwrap_or_else(aurora_common::time::now_ms);
    let value = message
        .payload()
        .ok_or("the record has no value (tombstone)")?;

    let event = if media_type(&content_type) == EVENT_AVRO_CONTENT_TYPE {
        let envelope = aurora_schemas::decode::<Event>(value)
            .map_err(|error| format!("the value is not an aurora.Event Avro envelope: {error}"))?;
        IncomingEvent {
            id: envelope.id,
            event_type: envelope.event_type,
            content_type: envelope.content_type,
            payload: envelope.data,
            time_ms: envelope.time_ms,
            tenant_id: envelope.tenant_id,
        }
    } else {
        let missing = |name: &str| {
            format!(
                "header {name} is missing; set it to the event's {}",
                if name == ID_HEADER {
                    "unique id"
                } else {
                    "type, such as invoice.paid"
                }
            )
        };
        IncomingEvent {
            id: header(message, ID_HEADER)?.ok_or_else(|| missing(ID_HEADER))?,
            event_type: header(message, TYPE_HEADER)?.ok_or_else(|| missing(TYPE_HEADER))?,
            content_type,
            payload: value.to_vec(),
            time_ms,
            tenant_id: header(message, TENANT_HEADER)?.unwrap_or_default(),
        }
    };
    check_event_fields(
        &event.id,
        &event.event_type,
        &event.content_type,
        &event.payload,
    )?;
    Ok(event)
}

fn header(message: &OwnedMessage, name: &str) -> Result<Option<String>, String> {
    let Some(headers) = message.headers() else {
        return Ok(None);
    };
    for found in headers.iter() {
        if found.key.eq_ignore_ascii_case(name) {
            let Some(value) = found.value else {
                return Ok(None);
            };
            return String::from_utf8(value.to_vec())
                .map(Some)
                .map_err(|_| format!("header {name} is not valid UTF-8"));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{Header, OwnedHeaders, Timestamp};

    fn record(headers: &[(&str, &str)], value: Option<&[u8]>) -> OwnedMessage {
        let mut owned = OwnedHeaders::new();
        for (key, value) in headers {
            owned = owned.insert(Header {
                key,
                value: Some(*value),
            });
        }
        OwnedMessage::new(
            value.map(<[u8]>::to_vec),
            None,
            "events".into(),
            Timestamp::CreateTime(1_000),
            0,
            7,
            Some(owned),
        )
    }

    #[test]
    fn accepts_cloudevents_headers() {
        let event = parse_event(&record(
            &[("ce_id", "e1"), ("ce_type", "user.created")],
            Some(br#"{"a":1}"#),
        ))
        .unwrap();
        assert_eq!(event.id, "e1");
        assert_eq!(event.event_type, "user.created");
        assert_eq!(event.content_type, "application/json");
        assert_eq!(event.time_ms, 1_000);
    }

    #[test]
    fn accepts_avro_envelope() {
        let envelope = Event {
            id: "e2".into(),
            event_type: "invoice.paid".into(),
            source: None,
            time_ms: 5,
            content_type: "application/json".into(),
            data: b"[1,2]".to_vec(),
            tenant_id: String::new(),
        };
        let bytes = aurora_schemas::encode(&envelope).unwrap();
        let event = parse_event(&record(
            &[("content-type", "application/avro")],
            Some(&bytes),
        ))
        .unwrap();
        assert_eq!(event.id, "e2");
        assert_eq!(event.payload, b"[1,2]");
    }

    #[test]
    fn rejects_with_reasons() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a [u8]>, &'a str);
        let cases: [Case<'_>; 7] = [
            (&[("ce_type", "a.b")], Some(b"{}"), "ce_id is missing"),
            (&[("ce_id", "e")], Some(b"{}"), "ce_type is missing"),
            (
                &[("ce_id", "e"), ("ce_type", "a.b")],
                Some(b"{not json"),
                "not valid JSON",
            ),
            (&[("ce_id", "e"), ("ce_type", "a.b")], None, "no value"),
            (
                &[("ce_id", " "), ("ce_type", "a.b")],
                Some(b"{}"),
                "event id is empty",
            ),
            (
                &[("ce_id", "e"), ("ce_type", "a.*")],
                Some(b"{}"),
                "reserved for filters",
            ),
            (
                &[
                    ("ce_id", "e"),
                    ("ce_type", "a.b"),
                    ("content-type", "text/plain"),
                ],
                Some(b"hi"),
                "not supported",
            ),
        ];
        for (headers, value, expected) in cases {
            let reason = parse_event(&record(headers, value)).unwrap_err();
            assert!(
                reason.contains(expected),
                "{reason:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn rejects_bad_avro_envelope() {
        let reason = parse_event(&record(
            &[("content-type", "application/avro")],
            Some(b"{}"),
        ))
        .unwrap_err();
        assert!(reason.contains("aurora.Event"), "{reason}");
    }
}
