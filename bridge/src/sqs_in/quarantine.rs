//! Quarantine records of SQS messages that cannot be mapped to an event.

use aurora_schemas::{Header, Quarantined};

use super::mapping::{AttributeValue, ReceivedMessage};

/// Builds the quarantine record of a message of `queue_url`. The record has no Kafka position,
/// so partition and offset are -1; the key is the SQS message id and the headers are the
/// message attributes.
pub fn record(queue_url: &str, message: &ReceivedMessage, reason: String) -> Quarantined {
    let headers = message
        .attributes
        .iter()
        .map(|(name, value)| Header {
            name: name.clone(),
            value: Some(match value {
                AttributeValue::Text(text) => text.as_bytes().to_vec(),
                AttributeValue::Other { value, .. } => value.clone(),
            }),
        })
        .collect();
    Quarantined {
        source_topic: queue_url.to_string(),
        partition: -1,
        offset: -1,
        key: Some(message.message_id.as_bytes().to_vec()),
        headers,
        value: Some(message.body.as_bytes().to_vec()),
        reason,
        quarantined_at_ms: aurora_common::time::now_ms(),
    }
}

/// Key of the quarantine record: the queue and the SQS message id.
pub fn key(queue_url: &str, message: &ReceivedMessage) -> String {
    format!("{queue_url}/{}", message.message_id)
}
