//! Idempotency-Key: the first successful response to a key is stored for a window, and a
//! repeated request with the same key and body gets that response without producing again.
//!
//! Each instance keeps the keys it handles in memory, with the requests still in progress.
//! The responses are also written to the compacted idempotency topic, which every instance
//! reads, so a repeat that reaches another instance or comes after a restart gets the stored
//! response too (see `events.rs`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Longest Idempotency-Key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 255;

type Slot = (String, String);

/// Action for a request with a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use of the key: process the request, then call [`IdempotencyCache::finish`].
    New,
    /// Repeated key: respond with the stored response.
    Replay(StatusCode, Bytes),
    /// The first request with this key is still being processed.
    InFlight,
    /// The key was used with a different body.
    Mismatch,
}

enum State {
    InFlight,
    Done(StatusCode, Bytes),
}

struct Entry {
    fingerprint: [u8; 32],
    created: Instant,
    state: State,
}

#[derive(Default)]
struct Entries {
    by_slot: HashMap<Slot, Entry>,
    /// Slots in creation order, for expiry.
    order: VecDeque<(Slot, Instant)>,
}

/// Stored responses by tenant and key.
pub struct IdempotencyCache {
    window: Duration,
    max_keys: usize,
    entries: Mutex<Entries>,
}

impl IdempotencyCache {
    pub fn new(window: Duration, max_keys: usize) -> Self {
        IdempotencyCache {
            window,
            max_keys: max_keys.max(1),
            entries: Mutex::default(),
        }
    }

    /// Claims `key` for a request whose body has `fingerprint` (see [`fingerprint`]).
    pub fn claim(&self, tenant_id: &str, key: &str, fingerprint: [u8; 32]) -> Claim {
        let slot = (tenant_id.to_string(), key.to_string());
        let now = Instant::now();
        let mut entries = self.lock();
        self.expire(&mut entries, now);
        if let Some(entry) = entries.by_slot.get(&slot) {
            return match (&entry.state, entry.fingerprint == fingerprint) {
                (_, false) => Claim::Mismatch,
                (State::InFlight, true) => Claim::InFlight,
                (State::Done(status, body), true) => Claim::Replay(*status, body.clone()),
            };
        }
        while entries.by_slot.len() >= self.max_keys {
            let Some((oldest, created)) = entries.order.pop_front() else {
                break;
            };
            if entries
                .by_slot
                .get(&oldest)
                .is_some_and(|entry| entry.created == created)
            {
                entries.by_slot.remove(&oldest);
            }
        }
        entries.order.push_back((slot.clone(), now));
        entries.by_slot.insert(
            slot,
            Entry {
                fingerprint,
                created: now,
                state: State::InFlight,
            },
        );
        Claim::New
    }

    /// Stores the response to a claimed key. A failed request releases the key instead, so
    /// the client can retry it.
    pub fn finish(&self, tenant_id: &str, key: &str, status: StatusCode, body: Bytes) {
        let slot = (tenant_id.to_string(), key.to_string());
        let mut entries = self.lock();
        if status.is_success() {
            if let Some(entry) = entries.by_slot.get_mut(&slot) {
                entry.state = State::Done(status, body);
            }
        } else {
            entries.by_slot.remove(&slot);
        }
    }

    /// Releases a claimed key without storing a response, so the key can be used again.
    pub fn release(&self, tenant_id: &str, key: &str) {
        let slot = (tenant_id.to_string(), key.to_string());
        self.lock().by_slot.remove(&slot);
    }

    fn expire(&self, entries: &mut Entries, now: Instant) {
        while let Some((slot, created)) = entries.order.front() {
            if now.duration_since(*created) < self.window {
                break;
            }
            // A slot released and claimed again has a newer entry; keep that one.
            if entries
                .by_slot
                .get(slot)
                .is_some_and(|entry| entry.created == *created)
            {
                entries.by_slot.remove(slot);
            }
            entries.order.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Returns the SHA-256 of a body's JSON with object keys sorted and no spacing, or of its
/// bytes when it is not JSON. Bodies that are the same JSON count as the same, whatever their
/// spacing or key order. Numbers and strings are compared as written, so `1.0` and `1` differ.
pub fn fingerprint(body: &[u8]) -> [u8; 32] {
    let mut canonical = String::with_capacity(body.len());
    let parsed = std::str::from_utf8(body)
        .ok()
        .and_then(|text| serde_json::from_str::<&RawValue>(text).ok());
    match parsed {
        Some(value) if write_canonical(value, 0, &mut canonical) => {
            Sha256::digest(canonical.as_bytes()).into()
        }
        _ => Sha256::digest(body).into(),
    }
}

/// Nesting depth up to which a body is put in canonical form; deeper bodies are compared by
/// their bytes.
const MAX_CANONICAL_DEPTH: usize = 64;

/// Appends `value` with object keys sorted and no spacing; returns false when it is nested
/// deeper than [`MAX_CANONICAL_DEPTH`].
fn write_canonical(value: &RawValue, depth: usize, out: &mut String) -> bool {
    if depth > MAX_CANONICAL_DEPTH {
        return false;
    }
    let text = value.get().trim();
    if text.starts_with('{') {
        let Ok(members) = serde_json::from_str::<BTreeMap<String, &RawValue>>(text) else {
            return false;
        };
        out.push('{');
        for (index, (key, member)) in members.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::Value::String(key.clone()).to_string());
            out.push(':');
            if !write_canonical(member, depth + 1, out) {
                return false;
            }
        }
        out.push('}');
    } else if text.starts_with('[') {
        let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(text) else {
            return false;
        };
        out.push('[');
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            if !write_canonical(item, depth + 1, out) {
                return false;
            }
        }
        out.push(']');
    } else {
        // A string, number, boolean or null, exactly as written.
        out.push_str(text);
    }
    true
}

/// Checks a key: 1 to [`MAX_KEY_BYTES`] visible ASCII characters.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_BYTES} characters long"
        ));
    }
    if !key.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err("Idempotency-Key may contain only visible ASCII characters".into());
    }
    Ok(())
}

/// Returns the hex SHA-256 of the tenant id, a zero byte and the key, which is the record key
/// of the stored response on the idempotency topic.
pub fn record_id(tenant_id: &str, key: &str) -> String {
    let digest = Sha256::new()
        .chain_update(tenant_id.as_bytes())
        .chain_update([0])
        .chain_update(key.as_bytes())
        .finalize();
    hex::encode(digest)
}

/// Derives the event id of a request that names no id from its tenant, key and body
/// fingerprint. Instances handling the same request at once produce the same id, and a key
/// reused with another body after its window gets another id.
pub fn event_id(tenant_id: &str, key: &str, fingerprint: &[u8; 32]) -> String {
    let digest = Sha256::new()
        .chain_update(record_id(tenant_id, key).as_bytes())
        .chain_update(fingerprint)
        .finalize();
    format!("evt_{}", &hex::encode(digest)[..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"type":"a","payload":{}}"#;

    fn body() -> [u8; 32] {
        fingerprint(BODY)
    }

    #[test]
    fn repeated_key_replays_first_response() {
        let cache = IdempotencyCache::new(Duration::from_secs(60), 10);
        assert_eq!(cache.claim("tn_1", "k", body()), Claim::New);
        assert_eq!(cache.claim("tn_1", "k", body()), Claim::InFlight);
        cache.finish("tn_1", "k", StatusCode::CREATED, Bytes::from_static(b"{}"));
        assert_eq!(
            cache.claim("tn_1", "k", body()),
            Claim::Replay(StatusCode::CREATED, Bytes::from_static(b"{}"))
        );
    }

    #[test]
    fn same_json_with_other_spacing_replays() {
        let cache = IdempotencyCache::new(Duration::from_secs(60), 10);
        assert_eq!(cache.claim("tn_1", "k", body()), Claim::New);
        cache.finish("tn_1", "k", StatusCode::CREATED, Bytes::new());
        let reordered = br#"{ "payload": {}, "type": "a" }"#;
        assert!(matches!(
            cache.claim("tn_1", "k", fingerprint(reordered)),
            Claim::Replay(..)
        ));
    }

    #[test]
    fn event_id_depends_on_body() {
        assert_eq!(
            event_id("tn_1", "k", &body()),
            event_id("tn_1", "k", &body())
        );
        assert_ne!(
            event_id("tn_1", "k", &body()),
            event_id("tn_1", "k", &fingerprint(b"{}"))
        );
    }

    #[test]
    fn fingerprint_ignores_spacing_and_key_order() {
        let cases: [(&[u8], &[u8]); 3] = [
            (
                br#"{"a":1,"b":[true,null]}"#,
                br#" { "b" : [ true , null ], "a" : 1 } "#,
            ),
            (
                br#"{"x":{"z":"1","y":2}}"#,
                b"{\n\"x\": {\"y\": 2, \"z\": \"1\"}}",
            ),
            (br#"[]"#, b" [ ] "),
        ];
        for (left, right) in cases {
            assert_eq!(fingerprint(left), fingerprint(right), "{left:?} {right:?}");
        }
    }

    #[test]
    fn fingerprint_keeps_numbers_and_strings_as_written() {
        let cases: [(&[u8], &[u8]); 4] = [
            (
                br#"{"n":18446744073709551616}"#,
                br#"{"n":18446744073709551617}"#,
            ),
            (
                br#"{"n":0.1000000000000000055511151231257827}"#,
                br#"{"n":0.1}"#,
            ),
            (br#"{"n":1.0}"#, br#"{"n":1}"#),
            (br#"{"s":"a"}"#, br#"{"s":"b"}"#),
        ];
        for (left, right) in cases {
            assert_ne!(fingerprint(left), fingerprint(right), "{left:?} {right:?}");
        }
    }

    #[test]
    fn fingerprint_of_deep_or_invalid_body_uses_bytes() {
        let bytes_digest = |bytes: &[u8]| -> [u8; 32] { Sha256::digest(bytes).into() };
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(fingerprint(deep.as_bytes()), bytes_digest(deep.as_bytes()));
        assert_eq!(fingerprint(b"{not json"), bytes_digest(b"{not json"));
    }

    #[test]
    fn key_with_other_body_is_mismatch() {
        let cache = IdempotencyCache::new(Duration::from_secs(60), 10);
        assert_eq!(cache.claim("tn_1", "k", body()), Claim::New);
        assert_eq!(
            cache.claim("tn_1", "k", fingerprint(b"{}")),
            Claim::Mismatch
        );
    }

    #[test]
    fn keys_are_per_tenant() {
        let cache = IdempotencyCache::new(Duration::from_secs(60), 10);
        assert_eq!(cache.claim("tn_1", "k", body()), Claim::New);
        assert_eq!(cache.claim("tn_2", "k", body()), Claim::New);
        assert_ne!(
            event_id("tn_1", "k", &body()),
            event_id("tn_2", "k", &body())
        );
    }

    #[test]
    fn failed_request_releases_key() {
        let cache = IdempotencyCache::new(Duration::from_secs(60), 10);
        assert_eq!(cache.claim("tn_1", "k", body()), Claim::New);
        cache.finish("tn_1", "k", StatusCode::SERVICE_UNAVAILABLE, Bytes::new());
        assert_eq!(cache.claim("tn_1", "k", body()), Claim::New);
    }

    #[test]
    fn released_key_is_new_again() {
        let cache = IdempotencyCache::new(Duration::from_secs(60), 10);
        assert_eq!(cache.claim("tn_1", "k", body()), Claim::New);
        cache.release("tn_1", "k");
        assert_eq!(cache.claim("tn_1", "k", body()), Claim::New);
    }

    #[test]
    fn keys_expire_after_window() {
        let cache = IdempotencyCache::new(Duration::ZERO, 10);
        assert_eq!(cache.claim("tn_1", "k", body()), Claim::New);
        cache.finish("tn_1", "k", StatusCode::CREATED, Bytes::new());
        assert_eq!(cache.claim("tn_1", "k", body()), Claim::New);
    }

    #[test]
    fn oldest_key_is_forgotten_at_capacity() {
        let cache = IdempotencyCache::new(Duration::from_secs(60), 2);
        for key in ["a", "b", "c"] {
            assert_eq!(cache.claim("tn_1", key, body()), Claim::New);
            cache.finish("tn_1", key, StatusCode::CREATED, Bytes::new());
        }
        assert_eq!(cache.claim("tn_1", "a", body()), Claim::New);
        assert!(matches!(
            cache.claim("tn_1", "c", body()),
            Claim::Replay(..)
        ));
    }

    #[test]
    fn keys_are_checked() {
        assert!(check_key("order-42").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key("has space").is_err());
        assert!(check_key(&"x".repeat(MAX_KEY_BYTES + 1)).is_err());
    }
}
