//! Round trips through every schema, and the backward-compatibility gate on schema changes.

use std::collections::BTreeSet;
use std::path::Path;

use aurora_schemas::{
    decode, encode, ApiKey, Attempt, AttemptOutcome, AttemptSummary, Contract, Delivery, Event,
    Header, IdempotentResponse, Operation, OperationKind, Quarantined, RateLimit, SchemaError,
    Subscription, Tenant,
};
use proptest::prelude::*;

fn sample_delivery() -> Delivery {
    Delivery {
        delivery_id: "dlv_1".into(),
        event_id: "evt_1".into(),
        event_type: "invoice.paid".into(),
        endpoint_id: "ep_1".into(),
        content_type: "application/json".into(),
        payload: br#"{"amount":12}"#.to_vec(),
        event_time_ms: 1_700_000_000_000,
        routed_at_ms: 1_700_000_000_005,
        attempts: vec![AttemptSummary {
            attempt: 1,
            started_at_ms: 1_700_000_000_010,
            duration_ms: 31,
            status: Some(503),
            error: Some("HTTP 503".into()),
            response_excerpt: "busy".into(),
        }],
        not_before_ms: 1_700_000_001_010,
        dead_letter_reason: None,
    }
}

/// Encodes a record the generic way: to an Avro value, resolved against the schema, then to
/// bytes. `encode` serializes directly and must write the same bytes.
fn value_encoding<T: Contract>(record: &T) -> Vec<u8> {
    let schema = T::schemas().current();
    let value = apache_avro::to_value(record)
        .and_then(|value| value.resolve(schema))
        .expect("record converts to a value of its schema");
    apache_avro::to_avro_datum(schema, value).expect("value encodes")
}

/// Checks that `encode` wrote the header and then exactly the generic encoding.
fn assert_encodes_like_values<T: Contract + std::fmt::Debug>(record: &T) {
    let encoded = encode(record).unwrap();
    assert_eq!(&encoded[..2], &[0xC3, 0x01], "{record:?}");
    assert_eq!(
        &encoded[10..],
        value_encoding(record).as_slice(),
        "{record:?}"
    );
}

#[test]
fn every_record_type_round_trips() {
    let event = Event {
        id: "evt_1".into(),
        event_type: "user.created".into(),
        source: Some("billing".into()),
        time_ms: 5,
        content_type: "application/json".into(),
        data: b"{}".to_vec(),
        tenant_id: "tn_1".into(),
    };
    assert_eq!(decode::<Event>(&encode(&event).unwrap()).unwrap(), event);
    assert_encodes_like_values(&event);

    let subscription = Subscription {
        endpoint_id: "ep_1".into(),
        url: "https://example.test/hook".into(),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        event_types: vec!["user.*".into(), "invoice.paid".into()],
        rate_limit: Some(RateLimit {
            per_second: 5,
            burst: 10,
        }),
        enabled: false,
        description: "billing".into(),
        updated_at_ms: 9,
        disabled_reason: "endpoint returned 410 Gone".into(),
        previous_secret: Some("whsec_AAAA".into()),
        previous_secret_expires_at_ms: 12,
        tenant_id: String::new(),
    };
    assert_eq!(
        decode::<Subscription>(&encode(&subscription).unwrap()).unwrap(),
        subscription
    );
    assert_encodes_like_values(&subscription);

    let delivery = sample_delivery();
    assert_eq!(
        decode::<Delivery>(&encode(&delivery).unwrap()).unwrap(),
        delivery
    );
    assert_encodes_like_values(&delivery);

    for outcome in [
        AttemptOutcome::Delivered,
        AttemptOutcome::RetryScheduled,
        AttemptOutcome::DeadLettered,
    ] {
        let attempt = Attempt {
            delivery_id: "dlv_1".into(),
            event_id: "evt_1".into(),
            event_type: "user.created".into(),
            endpoint_id: "ep_1".into(),
            url: "http://127.0.0.1:1/".into(),
            attempt: 2,
            started_at_ms: 1,
            duration_ms: 2,
            status: None,
            error: Some("connection refused".into()),
            response_excerpt: String::new(),
            outcome,
            next_attempt_at_ms: Some(3),
            tenant_id: "tn_1".into(),
        };
        assert_eq!(
            decode::<Attempt>(&encode(&attempt).unwrap()).unwrap(),
            attempt
        );
        assert_encodes_like_values(&attempt);
    }

    let quarantined = Quarantined {
        source_topic: "aurora.events".into(),
        partition: 3,
        offset: 42,
        key: None,
        headers: vec![Header {
            name: "ce_type".into(),
            value: Some(b"x".to_vec()),
        }],
        value: Some(vec![0xff, 0x00]),
        reason: "value is not valid JSON".into(),
        quarantined_at_ms: 7,
    };
    assert_eq!(
        decode::<Quarantined>(&encode(&quarantined).unwrap()).unwrap(),
        quarantined
    );
    assert_encodes_like_values(&quarantined);

    let operation = Operation {
        endpoint_id: "ep_1".into(),
        kind: OperationKind::Disabled,
        reason: "endpoint returned 410 Gone".into(),
        consecutive_failures: 1,
        at_ms: 11,
    };
    assert_eq!(
        decode::<Operation>(&encode(&operation).unwrap()).unwrap(),
        operation
    );
    assert_encodes_like_values(&operation);

    let tenant = Tenant {
        tenant_id: "tn_1".into(),
        name: "Acme".into(),
        api_keys: vec![ApiKey {
            key_id: "key_1".into(),
            sha256: "9f86d081884c7d65".into(),
            created_at_ms: 3,
        }],
        created_at_ms: 3,
        updated_at_ms: 4,
    };
    assert_eq!(decode::<Tenant>(&encode(&tenant).unwrap()).unwrap(), tenant);
    assert_encodes_like_values(&tenant);

    let response = IdempotentResponse {
        id: "2c26b46b68ffc68f".into(),
        tenant_id: "tn_1".into(),
        idempotency_key: "order-42".into(),
        fingerprint: "fcde2b2edba56bf4".into(),
        status: 201,
        body: r#"{"id":"evt_1","partition":0,"offset":7}"#.into(),
        created_at_ms: 5,
        expires_at_ms: 86_400_005,
    };
    assert_eq!(
        decode::<IdempotentResponse>(&encode(&response).unwrap()).unwrap(),
        response
    );
    assert_encodes_like_values(&response);
}

fn check<T: Contract>() -> Result<(), String> {
    T::schemas().check_backward_compatible()
}

#[test]
fn current_schemas_read_every_released_version() {
    for result in [
        check::<Event>(),
        check::<Subscription>(),
        check::<Delivery>(),
        check::<Attempt>(),
        check::<Quarantined>(),
        check::<Operation>(),
        check::<Tenant>(),
        check::<IdempotentResponse>(),
    ] {
        assert_eq!(result, Ok(()));
    }
}

#[test]
fn every_history_file_is_registered() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("avro/history");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    let registered = [
        Event::schemas().history().count(),
        Subscription::schemas().history().count(),
        Delivery::schemas().history().count(),
        Attempt::schemas().history().count(),
        Quarantined::schemas().history().count(),
        Operation::schemas().history().count(),
        Tenant::schemas().history().count(),
        IdempotentResponse::schemas().history().count(),
    ]
    .iter()
    .sum::<usize>();
    assert_eq!(
        on_disk.len(),
        registered,
        "files in {dir:?} ({on_disk:?}) must each be listed in the contract! lines of codec.rs"
    );
}

/// A field added without a default cannot fill in records written before it existed.
#[test]
fn field_without_default_breaks_compatibility() {
    let old =
        apache_avro::Schema::parse_str(include_str!("../avro/history/delivery.v1.avsc")).unwrap();
    let mut changed: serde_json::Value =
        serde_json::from_str(include_str!("../avro/delivery.avsc")).unwrap();
    changed["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "tenant_id", "type": "string"}));
    let changed = apache_avro::Schema::parse_str(&changed.to_string()).unwrap();
    assert!(
        apache_avro::schema_compatibility::SchemaCompatibility::can_read(&old, &changed).is_err()
    );

    let mut defaulted: serde_json::Value =
        serde_json::from_str(include_str!("../avro/delivery.avsc")).unwrap();
    defaulted["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "tenant_id", "type": "string", "default": ""}));
    let defaulted = apache_avro::Schema::parse_str(&defaulted.to_string()).unwrap();
    assert!(
        apache_avro::schema_compatibility::SchemaCompatibility::can_read(&old, &defaulted).is_ok()
    );
}

#[test]
fn decode_rejects_plain_json() {
    let error = decode::<Delivery>(br#"{"delivery_id":"x"}"#).unwrap_err();
    assert!(matches!(error, SchemaError::NotSingleObject));
}

#[test]
fn decode_rejects_unknown_fingerprint() {
    let mut bytes = encode(&sample_delivery()).unwrap();
    bytes[2] ^= 0xff;
    let error = decode::<Delivery>(&bytes).unwrap_err();
    assert!(matches!(error, SchemaError::UnknownSchema { .. }));
}

proptest! {
    #[test]
    fn delivery_round_trips_any_payload(
        payload in proptest::collection::vec(any::<u8>(), 0..512),
        event_id in "\\PC{1,40}",
        not_before_ms in any::<i64>(),
    ) {
        let mut delivery = sample_delivery();
        delivery.payload = payload;
        delivery.event_id = event_id;
        delivery.not_before_ms = not_before_ms;
        let decoded = decode::<Delivery>(&encode(&delivery).unwrap()).unwrap();
        prop_assert_eq!(decoded, delivery);
    }
}

/// A subscription written with version 1, before `disabled_reason` existed, reads with the
/// field's default.
#[test]
fn subscription_v1_record_reads_with_default() {
    use apache_avro::types::Value;
    let v1 = apache_avro::Schema::parse_str(include_str!("../avro/history/subscription.v1.avsc"))
        .unwrap();
    let record = Value::Record(vec![
        ("endpoint_id".into(), Value::String("ep_old".into())),
        ("url".into(), Value::String("https://example.test/".into())),
        ("secret".into(), Value::String("whsec_x".into())),
        (
            "event_types".into(),
            Value::Array(vec![Value::String("*".into())]),
        ),
        ("rate_limit".into(), Value::Union(0, Box::new(Value::Null))),
        ("enabled".into(), Value::Boolean(false)),
        ("description".into(), Value::String(String::new())),
        ("updated_at_ms".into(), Value::Long(3)),
    ]);
    let datum = apache_avro::to_avro_datum(&v1, record).unwrap();
    let fingerprint = v1.fingerprint::<apache_avro::rabin::Rabin>().bytes;
    let mut bytes = vec![0xC3, 0x01];
    bytes.extend_from_slice(&fingerprint[..8]);
    bytes.extend_from_slice(&datum);

    let decoded = decode::<Subscription>(&bytes).unwrap();
    assert_eq!(decoded.endpoint_id, "ep_old");
    assert!(!decoded.enabled);
    assert_eq!(decoded.disabled_reason, "");
    assert_eq!(decoded.previous_secret, None);
}
