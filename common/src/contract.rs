//! The events-topic contract that producers and the router share.
//!
//! Two forms are accepted:
//! - CloudEvents Kafka binary mode, which plain `kcat` can write: headers `ce_id` and
//!   `ce_type` (required), `content-type` (optional, default `application/json`), and the
//!   payload as the value. JSON payloads (`application/json` or any `+json` type) must parse.
//!   The optional `ce_tenant` header names the tenant whose endpoints receive the event.
//! - The Avro envelope `aurora.Event` for typed producers: header
//!   `content-type: application/avro` and the value in Avro single-object encoding.

/// Content type of an event value that is an Avro-encoded `aurora.Event` envelope.
pub const EVENT_AVRO_CONTENT_TYPE: &str = "application/avro";
/// Header that carries the event id.
pub const ID_HEADER: &str = "ce_id";
/// Header that carries the event type.
pub const TYPE_HEADER: &str = "ce_type";
/// CloudEvents extension header that carries the tenant; events without it go to endpoints
/// without a tenant.
pub const TENANT_HEADER: &str = "ce_tenant";
/// Header that carries the payload's media type.
pub const CONTENT_TYPE_HEADER: &str = "content-type";
/// Maximum length of an event id or type, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// Checks an event's id, type and payload; the error states what is wrong and how to fix it.
pub fn check_event_fields(
    id: &str,
    event_type: &str,
    content_type: &str,
    payload: &[u8],
) -> Result<(), String> {
    check_name("event id", id)?;
    check_name("event type", event_type)?;
    if event_type.contains('*') {
        return Err(format!(
            "event type {:?} contains '*', which is reserved for filters",
            event_type
        ));
    }
    if is_json(content_type) {
        serde_json::from_slice::<serde::de::IgnoredAny>(payload).map_err(|error| {
            format!(
                "the value is not valid JSON although its content type is {}: {error}",
                content_type
            )
        })?;
        return Ok(());
    }
    Err(format!(
        "content type {:?} is not supported; use application/json (or a +json type) for the payload, or {EVENT_AVRO_CONTENT_TYPE} for an aurora.Event envelope",
        content_type
    ))
}

fn check_name(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} is empty"));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{field} is {} bytes long; the maximum is {MAX_NAME_BYTES}",
            value.len()
        ));
    }
    if !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!(
            "{field} {value:?} may contain only visible ASCII characters, without spaces"
        ));
    }
    Ok(())
}

/// Returns the media type of a content type, lower-cased and without parameters.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Returns whether a content type is JSON: application/json or any +json type.
pub fn is_json(content_type: &str) -> bool {
    let media = media_type(content_type);
    media == "application/json" || media.ends_with("+json")
}
