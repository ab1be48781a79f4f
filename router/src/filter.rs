//! Event-type filters and delivery ids.

use sha2::{Digest, Sha256};

/// Whether `filter` selects `event_type`: `*` selects every type, `prefix.*` selects the types
/// that start with `prefix.` (at any depth), anything else must be equal.
pub fn matches(filter: &str, event_type: &str) -> bool {
    if filter == "*" {
        return true;
    }
    match filter.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('.') => {
            event_type.len() > prefix.len() && event_type.starts_with(prefix)
        }
        _ => filter == event_type,
    }
}

/// Checks that a filter is an exact type, `*`, or `prefix.*`, naming what is wrong otherwise.
pub fn validate_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("an event-type filter is empty".into());
    }
    if filter.len() > aurora_common::contract::MAX_NAME_BYTES {
        return Err(format!(
            "filter {filter:?} is longer than {} bytes, the maximum length of an event type",
            aurora_common::contract::MAX_NAME_BYTES
        ));
    }
    if !filter.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!(
            "filter {filter:?} may contain only visible ASCII characters, without spaces, like event types"
        ));
    }
    let stars = filter.matches('*').count();
    let wildcard_ok = filter == "*" || (filter.ends_with(".*") && filter.len() > 2);
    if stars > 1 || (stars == 1 && !wildcard_ok) {
        return Err(format!(
            "filter {filter:?} is invalid; use an exact type, * or a prefix wildcard such as invoice.*"
        ));
    }
    Ok(())
}

/// Delivery id of (event, endpoint): the same pair always gets the same id, so a duplicate
/// produced after a restart is recognisable downstream.
pub fn delivery_id(event_id: &str, endpoint_id: &str) -> String {
    let mut hash = Sha256::new();
    // Length prefixes keep ("a", "bc") and ("ab", "c") apart.
    hash.update((event_id.len() as u64).to_be_bytes());
    hash.update(event_id.as_bytes());
    hash.update((endpoint_id.len() as u64).to_be_bytes());
    hash.update(endpoint_id.as_bytes());
    format!("dlv_{}", hex::encode(&hash.finalize()[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_select_types() {
        let table = [
            ("*", "user.created", true),
            ("user.created", "user.created", true),
            ("user.created", "user.deleted", false),
            ("user.*", "user.created", true),
            ("user.*", "user.profile.updated", true),
            ("user.*", "user", false),
            ("user.*", "user.", false),
            ("user.*", "users.created", false),
            ("invoice.paid", "invoice.paid.late", false),
        ];
        for (filter, event_type, expected) in table {
            assert_eq!(
                matches(filter, event_type),
                expected,
                "filter {filter} on {event_type}"
            );
        }
    }

    #[test]
    fn filter_validation() {
        assert!(validate_filter("user.*").is_ok());
        assert!(validate_filter("*").is_ok());
        assert!(validate_filter("user.created").is_ok());
        assert!(validate_filter("").is_err());
        assert!(validate_filter("us*er").is_err());
        assert!(validate_filter("user*").is_err());
        assert!(validate_filter(".*").is_err());
        assert!(validate_filter("a.*.*").is_err());
        assert!(validate_filter("a b").is_err());
    }

    #[test]
    fn delivery_id_is_deterministic_and_distinct() {
        assert_eq!(delivery_id("e1", "ep1"), delivery_id("e1", "ep1"));
        assert_ne!(delivery_id("e1", "ep1"), delivery_id("e1", "ep2"));
        assert_ne!(delivery_id("a", "bc"), delivery_id("ab", "c"));
        assert!(delivery_id("e1", "ep1").starts_with("dlv_"));
    }
}
