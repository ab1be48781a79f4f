//! Quarantine records: a copy of a record that could not be understood, with the reason.

use aurora_schemas::{Header, Quarantined};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::Message;

use crate::time::now_ms;

/// Builds the quarantine record of `message`.
pub fn record(message: &OwnedMessage, reason: String) -> Quarantined {
    tracing::warn!(topic = message.topic(), partition = message.partition(), offset = message.offset(), reason = %reason, "Record quarantined.");
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|header| Header {
                    name: header.key.to_string(),
                    value: header.value.map(<[u8]>::to_vec),
                })
                .collect()
        })
        .unwrap_or_default();
    Quarantined {
        source_topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        headers,
        value: message.payload().map(<[u8]>::to_vec),
        reason,
        quarantined_at_ms: now_ms(),
    }
}

/// Key of a quarantine record: where the original record was.
pub fn key(record: &Quarantined) -> String {
    format!(
        "{}/{}/{}",
        record.source_topic, record.partition, record.offset
    )
}
