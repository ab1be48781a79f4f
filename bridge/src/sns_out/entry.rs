//! One event as an SNS message: body, attributes, FIFO ids and its size against the SNS limit.

use aurora_router::IncomingEvent;
use aws_sdk_sns::error::BuildError;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use sha2::{Digest, Sha256};

/// Largest message SNS accepts, attributes included, and largest total of one batch.
pub const SNS_MAX_BYTES: usize = 256 * 1024;

/// Message attribute that carries the payload's content type.
pub const CONTENT_TYPE_ATTRIBUTE: &str = "content_type";

/// Maximum length of a FIFO message group or deduplication id that SNS accepts.
const FIFO_MAX_ID_CHARS: usize = 128;

/// SNS data type of every attribute the bridge sets.
const STRING_TYPE: &str = "String";

/// Names of the attributes that carry the event type and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeNames {
    pub event_type: String,
    pub event_id: String,
}

/// An event ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub event_id: String,
    pub event_type: String,
    pub content_type: String,
    pub body: String,
    /// Message group id, for FIFO topics only.
    pub group_id: Option<String>,
    /// Deduplication id, for FIFO topics only.
    pub deduplication_id: Option<String>,
}

impl Entry {
    /// Builds the message of `event`; `key` is its Kafka record key, the FIFO message group.
    /// Fails when the payload is not UTF-8 text, which SNS messages must be.
    pub fn new(event: IncomingEvent, key: Option<&[u8]>, fifo: bool) -> Result<Entry, String> {
        let body = String::from_utf8(event.payload)
            .map_err(|_| "the payload is not UTF-8 text, which SNS messages must be".to_string())?;
        let (group_id, deduplication_id) = if fifo {
            let group = key
                .filter(|key| !key.is_empty())
                .unwrap_or(event.id.as_bytes());
            (Some(fifo_id(group)), Some(fifo_id(event.id.as_bytes())))
        } else {
            (None, None)
        };
        Ok(Entry {
            event_id: event.id,
            event_type: event.event_type,
            content_type: event.content_type,
            body,
            group_id,
            deduplication_id,
        })
    }

    /// Size as SNS counts it: the body plus each attribute's name, data type and value.
    pub fn size(&self, names: &AttributeNames) -> usize {
        let attributes = [
            (names.event_type.as_str(), self.event_type.as_str()),
            (names.event_id.as_str(), self.event_id.as_str()),
            (CONTENT_TYPE_ATTRIBUTE, self.content_type.as_str()),
        ];
        self.body.len()
            + attributes
                .iter()
                .map(|(name, value)| name.len() + STRING_TYPE.len() + value.len())
                .sum::<usize>()
    }

    /// Checks the size against the SNS limit, naming both when it is over.
    pub fn check_size(&self, names: &AttributeNames) -> Result<(), String> {
        let size = self.size(names);
        if size > SNS_MAX_BYTES {
            return Err(format!(
                "the message is {size} bytes with its attributes; SNS accepts at most {SNS_MAX_BYTES}"
            ));
        }
        Ok(())
    }

    /// Builds the PublishBatch entry with batch-local id `id`.
    pub fn request(
        &self,
        id: usize,
        names: &AttributeNames,
    ) -> Result<PublishBatchRequestEntry, BuildError> {
        PublishBatchRequestEntry::builder()
            .id(id.to_string())
            .message(&self.body)
            .message_attributes(&names.event_type, text(&self.event_type)?)
            .message_attributes(&names.event_id, text(&self.event_id)?)
            .message_attributes(CONTENT_TYPE_ATTRIBUTE, text(&self.content_type)?)
            .set_message_group_id(self.group_id.clone())
            .set_message_deduplication_id(self.deduplication_id.clone())
            .build()
    }
}

fn text(value: &str) -> Result<MessageAttributeValue, BuildError> {
    MessageAttributeValue::builder()
        .data_type(STRING_TYPE)
        .string_value(value)
        .build()
}

/// Returns `value` as a FIFO group or deduplication id when it is valid as one (1 to 128
/// visible ASCII characters), and its SHA-256 in hex otherwise, so that equal values always
/// give equal ids.
pub fn fifo_id(value: &[u8]) -> String {
    let valid = !value.is_empty()
        && value.len() <= FIFO_MAX_ID_CHARS
        && value.iter().all(u8::is_ascii_graphic);
    match std::str::from_utf8(value) {
        Ok(text) if valid => text.to_string(),
        _ => hex::encode(Sha256::digest(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(payload: &[u8]) -> IncomingEvent {
        IncomingEvent {
            id: "evt-1".into(),
            event_type: "order.created".into(),
            content_type: "application/json".into(),
            payload: payload.to_vec(),
            time_ms: 0,
            tenant_id: String::new(),
        }
    }

    fn names() -> AttributeNames {
        AttributeNames {
            event_type: "event_type".into(),
            event_id: "event_id".into(),
        }
    }

    #[test]
    fn standard_topics_get_no_fifo_ids() {
        let entry = Entry::new(event(b"{}"), Some(b"customer-1"), false).unwrap();
        assert_eq!(entry.group_id, None);
        assert_eq!(entry.deduplication_id, None);
        assert_eq!(entry.body, "{}");
    }

    #[test]
    fn fifo_ids_come_from_key_and_id() {
        let entry = Entry::new(event(b"{}"), Some(b"customer-1"), true).unwrap();
        assert_eq!(entry.group_id.as_deref(), Some("customer-1"));
        assert_eq!(entry.deduplication_id.as_deref(), Some("evt-1"));

        let keyless = Entry::new(event(b"{}"), None, true).unwrap();
        assert_eq!(keyless.group_id.as_deref(), Some("evt-1"));
    }

    #[test]
    fn fifo_ids_hash_values_sns_rejects() {
        let long = "x".repeat(129);
        let table: [(&[u8], bool); 4] = [
            (b"plain-id", false),
            (long.as_bytes(), true),
            (b"with space", true),
            (&[0xff, 0xfe], true),
        ];
        for (value, hashed) in table {
            let id = fifo_id(value);
            assert!(id.len() <= FIFO_MAX_ID_CHARS, "{id}");
            assert_eq!(id != String::from_utf8_lossy(value), hashed, "{value:?}");
        }
        assert_eq!(fifo_id(long.as_bytes()), fifo_id(long.as_bytes()));
    }

    #[test]
    fn non_utf8_payload_is_rejected() {
        let reason = Entry::new(event(&[0xff]), None, false).unwrap_err();
        assert!(reason.contains("UTF-8"), "{reason}");
    }

    #[test]
    fn size_counts_body_and_attributes() {
        let entry = Entry::new(event(b"{}"), None, false).unwrap();
        let expected = 2
            + ("event_type".len() + 6 + "order.created".len())
            + ("event_id".len() + 6 + "evt-1".len())
            + ("content_type".len() + 6 + "application/json".len());
        assert_eq!(entry.size(&names()), expected);
        assert!(entry.check_size(&names()).is_ok());

        let big = Entry::new(event(&vec![b' '; SNS_MAX_BYTES]), None, false).unwrap();
        let reason = big.check_size(&names()).unwrap_err();
        assert!(reason.contains("at most 262144"), "{reason}");
    }

    #[test]
    fn request_carries_attributes() {
        let entry = Entry::new(event(b"{}"), Some(b"k"), true).unwrap();
        let request = entry.request(3, &names()).unwrap();
        assert_eq!(request.id(), "3");
        let attributes = request.message_attributes().unwrap();
        assert_eq!(
            attributes["event_type"].string_value(),
            Some("order.created")
        );
        assert_eq!(attributes["event_id"].string_value(), Some("evt-1"));
        assert_eq!(request.message_group_id(), Some("k"));
        assert_eq!(request.message_deduplication_id(), Some("evt-1"));
    }
}
