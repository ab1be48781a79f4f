//! Maps an SQS message to an event: the SNS notification envelope or raw delivery, the event
//! type, id, partition key and content type from message attributes, and the events-topic
//! contract check. An error is the reason the message cannot be mapped.

use std::collections::BTreeMap;

use aurora_common::contract::check_event_fields;
use aurora_producer::NewEvent;
use serde::Deserialize;

/// Envelope handling of message bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Envelope {
    /// An SNS notification envelope when the body is one, the raw body otherwise.
    #[default]
    Auto,
    /// Always an SNS notification envelope (subscription without raw message delivery).
    Sns,
    /// Always the raw body: raw message delivery, or messages sent to SQS directly.
    Raw,
}

/// A message attribute value, from SQS or from the SNS envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// A `String` or `Number` attribute (custom suffixes such as `String.uuid` included).
    Text(String),
    /// Any other data type, such as `Binary` or `String.Array`, with its bytes as sent.
    Other { data_type: String, value: Vec<u8> },
}

/// Message attributes by name; names are case-sensitive, as in SQS and SNS.
pub type Attributes = BTreeMap<String, AttributeValue>;

/// The parts of a received SQS message that mapping reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// SQS message id, stable across redeliveries of the message.
    pub message_id: String,
    pub body: String,
    /// SQS message attributes (with raw delivery, the SNS message attributes).
    pub attributes: Attributes,
    /// Message group id of a FIFO queue.
    pub group_id: Option<String>,
}

/// Attribute names that carry the event's fields, and the values that no message sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingRules {
    pub envelope: Envelope,
    /// Attributes that may carry the event type, first present wins.
    pub type_attributes: Vec<String>,
    /// Attributes that may carry the event id, first present wins; without one the SNS
    /// MessageId (envelope) or the SQS MessageId (raw) is the id.
    pub id_attributes: Vec<String>,
    /// Attribute that carries the partition key; without it, the FIFO message group id or
    /// the event id.
    pub key_attribute: String,
    /// Event type of messages that carry none.
    pub default_event_type: Option<String>,
    /// Tenant of every event from this queue; events without a tenant when absent. It is
    /// never read from a message, so a sender cannot pick a tenant.
    pub tenant_id: Option<String>,
}

impl Default for MappingRules {
    fn default() -> Self {
        MappingRules {
            envelope: Envelope::Auto,
            type_attributes: vec!["event_type".into(), "ce_type".into(), "type".into()],
            id_attributes: vec!["event_id".into(), "ce_id".into()],
            key_attribute: "partition_key".into(),
            default_event_type: None,
            tenant_id: None,
        }
    }
}

/// Attributes that may carry the payload's content type, first present wins.
const CONTENT_TYPE_ATTRIBUTES: &[&str] = &["content_type", "content-type", "ce_datacontenttype"];

/// Content type of a payload without a content-type attribute.
const DEFAULT_CONTENT_TYPE: &str = "application/json";

/// The SNS notification envelope that SQS receives when raw message delivery is off.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Notification {
    #[serde(rename = "Type")]
    kind: String,
    message_id: String,
    topic_arn: String,
    message: String,
    #[serde(default)]
    message_attributes: BTreeMap<String, NotificationAttribute>,
}

#[derive(Debug, Deserialize)]
struct NotificationAttribute {
    #[serde(rename = "Type")]
    data_type: String,
    #[serde(rename = "Value")]
    value: String,
}

/// The message's payload, attributes and fallback id after the envelope is opened.
struct Opened {
    payload: String,
    attributes: Attributes,
    fallback_id: String,
}

/// Maps a message to an event, or returns why it cannot be mapped.
pub fn map_message(rules: &MappingRules, message: &ReceivedMessage) -> Result<NewEvent, String> {
    let opened = open(rules.envelope, message)?;

    let event_type = match first_text(&opened.attributes, &rules.type_attributes)? {
        Some(event_type) => event_type,
        None => rules.default_event_type.clone().ok_or_else(|| {
            format!(
                "no event type: none of the message attributes {} is set; set one, or start the bridge with --default-event-type",
                rules.type_attributes.join(", ")
            )
        })?,
    };
    let id = first_text(&opened.attributes, &rules.id_attributes)?.unwrap_or(opened.fallback_id);
    let key = first_text(
        &opened.attributes,
        std::slice::from_ref(&rules.key_attribute),
    )?
    .or_else(|| message.group_id.clone());
    let content_type = first_text(&opened.attributes, CONTENT_TYPE_ATTRIBUTES)?
        .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string());

    let payload = opened.payload.into_bytes();
    check_event_fields(&id, &event_type, &content_type, &payload)?;
    Ok(NewEvent {
        id: Some(id),
        event_type,
        key,
        content_type,
        payload,
        tenant_id: rules.tenant_id.clone(),
    })
}

/// Opens the SNS envelope when there is one, per `envelope`.
fn open(envelope: Envelope, message: &ReceivedMessage) -> Result<Opened, String> {
    let raw = || Opened {
        payload: message.body.clone(),
        attributes: message.attributes.clone(),
        fallback_id: message.message_id.clone(),
    };
    match envelope {
        Envelope::Raw => Ok(raw()),
        Envelope::Auto => Ok(parse_notification(&message.body)
            .ok()
            .map_or_else(raw, |notification| opened(notification, message))),
        Envelope::Sns => parse_notification(&message.body)
            .map(|notification| opened(notification, message))
            .map_err(|reason| {
                format!("{reason}; turn raw message delivery off on the subscription, or start the bridge with --envelope raw or auto")
            }),
    }
}

fn parse_notification(body: &str) -> Result<Notification, String> {
    let notification: Notification = serde_json::from_str(body)
        .map_err(|error| format!("the body is not an SNS notification envelope: {error}"))?;
    if notification.kind != "Notification" {
        return Err(format!(
            "the body is an SNS {:?} message, not a Notification",
            notification.kind
        ));
    }
    Ok(notification)
}

fn opened(notification: Notification, message: &ReceivedMessage) -> Opened {
    tracing::trace!(topic_arn = %notification.topic_arn, sns_message_id = %notification.message_id, "Opened an SNS notification envelope.");
    // SQS attributes are empty when SNS delivers an envelope; the envelope's win if both exist.
    let mut attributes = message.attributes.clone();
    for (name, attribute) in notification.message_attributes {
        let value = if is_text_type(&attribute.data_type) {
            AttributeValue::Text(attribute.value)
        } else {
            AttributeValue::Other {
                data_type: attribute.data_type,
                value: attribute.value.into_bytes(),
            }
        };
        attributes.insert(name, value);
    }
    Opened {
        payload: notification.message,
        attributes,
        fallback_id: notification.message_id,
    }
}

/// Returns whether an SNS or SQS attribute data type carries text usable as an id or type.
pub fn is_text_type(data_type: &str) -> bool {
    let base = data_type.split('.').next().unwrap_or("");
    (base == "String" || base == "Number") && data_type != "String.Array"
}

/// Returns the value of the first of `names` that is set, which must be text.
fn first_text(
    attributes: &Attributes,
    names: &[impl AsRef<str>],
) -> Result<Option<String>, String> {
    for name in names {
        let name = name.as_ref();
        match attributes.get(name) {
            None => continue,
            Some(AttributeValue::Text(value)) => return Ok(Some(value.clone())),
            Some(AttributeValue::Other { data_type, .. }) => {
                return Err(format!(
                "message attribute {name} has data type {data_type}; it must be a String attribute"
            ))
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> AttributeValue {
        AttributeValue::Text(value.to_string())
    }

    fn raw(body: &str, attributes: &[(&str, AttributeValue)]) -> ReceivedMessage {
        ReceivedMessage {
            message_id: "sqs-1".into(),
            body: body.into(),
            attributes: attributes
                .iter()
                .map(|(name, value)| (name.to_string(), value.clone()))
                .collect(),
            group_id: None,
        }
    }

    fn envelope(message: &str, attributes: &str) -> String {
        serde_json::json!({
            "Type": "Notification",
            "MessageId": "sns-1",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:orders",
            "Message": message,
            "Timestamp": "2026-12-04T10:00:00.000Z",
            "MessageAttributes": serde_json::from_str::<serde_json::Value>(attributes).unwrap(),
        })
        .to_string()
    }

    #[test]
    fn envelope_gives_payload_attributes_and_id() {
        let body = envelope(
            r#"{"order":7}"#,
            r#"{"event_type":{"Type":"String","Value":"order.created"}}"#,
        );
        let event = map_message(&MappingRules::default(), &raw(&body, &[])).unwrap();
        assert_eq!(event.id.as_deref(), Some("sns-1"));
        assert_eq!(event.event_type, "order.created");
        assert_eq!(event.payload, br#"{"order":7}"#);
        assert_eq!(event.content_type, "application/json");
        assert_eq!(event.key, None);
        assert_eq!(event.tenant_id, None);
    }

    #[test]
    fn configured_tenant_applies_to_every_event() {
        let rules = MappingRules {
            tenant_id: Some("tn_1".into()),
            ..MappingRules::default()
        };
        let message = raw(
            "{}",
            &[("event_type", text("a.b")), ("ce_tenant", text("tn_2"))],
        );
        let event = map_message(&rules, &message).unwrap();
        assert_eq!(event.tenant_id.as_deref(), Some("tn_1"));
    }

    #[test]
    fn raw_delivery_reads_sqs_attributes() {
        let message = raw(
            r#"{"order":7}"#,
            &[
                ("ce_type", text("order.paid")),
                ("event_id", text("evt-9")),
                ("partition_key", text("customer-3")),
            ],
        );
        let event = map_message(&MappingRules::default(), &message).unwrap();
        assert_eq!(event.id.as_deref(), Some("evt-9"));
        assert_eq!(event.event_type, "order.paid");
        assert_eq!(event.key.as_deref(), Some("customer-3"));
    }

    #[test]
    fn raw_id_falls_back_to_sqs_message_id() {
        let message = raw("[]", &[("type", text("a.b"))]);
        let event = map_message(&MappingRules::default(), &message).unwrap();
        assert_eq!(event.id.as_deref(), Some("sqs-1"));
    }

    #[test]
    fn fifo_group_is_the_default_key() {
        let mut message = raw("{}", &[("event_type", text("a.b"))]);
        message.group_id = Some("group-4".into());
        let event = map_message(&MappingRules::default(), &message).unwrap();
        assert_eq!(event.key.as_deref(), Some("group-4"));
    }

    #[test]
    fn default_event_type_applies_without_attribute() {
        let rules = MappingRules {
            default_event_type: Some("legacy.message".into()),
            ..MappingRules::default()
        };
        let event = map_message(&rules, &raw("{}", &[])).unwrap();
        assert_eq!(event.event_type, "legacy.message");
    }

    #[test]
    fn raw_mode_keeps_an_envelope_as_payload() {
        let body = envelope("{}", r#"{"event_type":{"Type":"String","Value":"a.b"}}"#);
        let rules = MappingRules {
            envelope: Envelope::Raw,
            ..MappingRules::default()
        };
        let message = raw(&body, &[("event_type", text("wrapped.event"))]);
        let event = map_message(&rules, &message).unwrap();
        assert_eq!(event.event_type, "wrapped.event");
        assert_eq!(event.payload, body.as_bytes());
    }

    #[test]
    fn unmappable_messages_give_reasons() {
        let binary = AttributeValue::Other {
            data_type: "Binary".into(),
            value: vec![1, 2],
        };
        let sns_only = MappingRules {
            envelope: Envelope::Sns,
            ..MappingRules::default()
        };
        let default = MappingRules::default();
        let cases: [(&MappingRules, ReceivedMessage, &str); 6] = [
            (&default, raw("{}", &[]), "no event type"),
            (
                &default,
                raw("not json", &[("event_type", text("a.b"))]),
                "not valid JSON",
            ),
            (
                &default,
                raw("{}", &[("event_type", binary)]),
                "data type Binary",
            ),
            (
                &default,
                raw("{}", &[("event_type", text("a.*"))]),
                "reserved for filters",
            ),
            (
                &default,
                raw(
                    "hi",
                    &[
                        ("event_type", text("a.b")),
                        ("content_type", text("text/plain")),
                    ],
                ),
                "not supported",
            ),
            (
                &sns_only,
                raw("{}", &[("event_type", text("a.b"))]),
                "not an SNS notification envelope",
            ),
        ];
        for (rules, message, expected) in cases {
            let reason = map_message(rules, &message).unwrap_err();
            assert!(
                reason.contains(expected),
                "{reason:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn envelope_with_non_json_message_is_unmappable() {
        let body = envelope("hello", r#"{"event_type":{"Type":"String","Value":"a.b"}}"#);
        let reason = map_message(&MappingRules::default(), &raw(&body, &[])).unwrap_err();
        assert!(reason.contains("not valid JSON"), "{reason}");
    }

    #[test]
    fn text_types_are_string_and_number() {
        let table = [
            ("String", true),
            ("Number", true),
            ("String.uuid", true),
            ("Number.float", true),
            ("String.Array", false),
            ("Binary", false),
            ("Binary.gif", false),
        ];
        for (data_type, expected) in table {
            assert_eq!(is_text_type(data_type), expected, "{data_type}");
        }
    }
}
