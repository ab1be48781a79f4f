//! Tenant routes for events: sending one, with an optional Idempotency-Key, and listing its
//! delivery attempts.

use std::sync::Arc;

use aurora_common::produce::produce;
use aurora_common::time::now_ms;
use aurora_producer::NewEvent;
use aurora_schemas::IdempotentResponse;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use serde::Deserialize;

use crate::error::ApiError;
use crate::http::{
    check_json_content_type, json, json_bytes, parse_json, read_body, HttpResponse, Query,
};
use crate::idempotency::{self, Claim};
use crate::server::App;

const IDEMPOTENCY_KEY: &str = "idempotency-key";
const REPLAYED_HEADER: &str = "idempotent-replayed";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    id: Option<String>,
    #[serde(rename = "type")]
    event_type: String,
    key: Option<String>,
    payload: Box<serde_json::value::RawValue>,
}

/// `POST /v1/events`: produces an event to the tenant's endpoints.
pub async fn create(
    app: &App,
    tenant_id: &str,
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    let mut keys = request.headers().get_all(IDEMPOTENCY_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (None, _) => None,
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "invalid_idempotency_key",
                "send one Idempotency-Key header, not several",
            ))
        }
        (Some(value), None) => {
            let key = value.to_str().map_err(|_| {
                ApiError::invalid(
                    "invalid_idempotency_key",
                    "Idempotency-Key may contain only visible ASCII characters",
                )
            })?;
            idempotency::check_key(key)
                .map_err(|reason| ApiError::invalid("invalid_idempotency_key", reason))?;
            Some(key.to_string())
        }
    };
    check_json_content_type(&request)?;
    let body = read_body(request, app.config.max_body_bytes).await?;
    let Some(key) = key else {
        let (status, stored) = send(app, tenant_id, &body, None).await?;
        return Ok(json_bytes(status, stored));
    };

    let fingerprint = idempotency::fingerprint(&body);
    match app.idempotency.claim(tenant_id, &key, fingerprint) {
        Claim::New => {}
        Claim::Replay(status, stored) => return Ok(replayed(status, stored)),
        Claim::InFlight => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "request_in_progress",
                "a request with this Idempotency-Key is still being processed; retry shortly",
            ))
        }
        Claim::Mismatch => return Err(key_reused()),
    }
    let fingerprint_hex = hex::encode(fingerprint);
    // The key is new to this instance, but another instance, or this one before a restart,
    // may have stored a response to it. That response is not copied into this instance's
    // memory, so the expiry written with it stays the only one that applies.
    let stored = stored_response(app, tenant_id, &key).await;
    if !matches!(stored, Ok(None)) {
        app.idempotency.release(tenant_id, &key);
    }
    match stored? {
        None => {}
        Some(stored) if stored.fingerprint == fingerprint_hex => {
            let status = StatusCode::from_u16(stored.status as u16).unwrap_or(StatusCode::OK);
            return Ok(replayed(status, Bytes::from(stored.body.clone())));
        }
        Some(_) => return Err(key_reused()),
    }
    let result = send(app, tenant_id, &body, Some((&key, &fingerprint))).await;
    match result {
        Ok((status, stored)) => {
            store_response(app, tenant_id, &key, fingerprint_hex, status, &stored).await;
            app.idempotency
                .finish(tenant_id, &key, status, stored.clone());
            Ok(json_bytes(status, stored))
        }
        Err(error) => {
            app.idempotency.release(tenant_id, &key);
            Err(error)
        }
    }
}

fn replayed(status: StatusCode, stored: Bytes) -> HttpResponse {
    let mut response = json_bytes(status, stored);
    response
        .headers_mut()
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

fn key_reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key was used with a different body; use a new key",
    )
}

/// Reads the idempotency topic to its end, then looks up the tenant's key there.
async fn stored_response(
    app: &App,
    tenant_id: &str,
    key: &str,
) -> Result<Option<Arc<IdempotentResponse>>, ApiError> {
    app.stored_responses.ensure_fresh(now_ms()).await?;
    Ok(app
        .stored_responses
        .get(&idempotency::record_id(tenant_id, key))
        .filter(|stored| stored.tenant_id == tenant_id && stored.idempotency_key == key))
}

/// Writes the response to the idempotency topic. The event is already produced, so a failure
/// is logged, not returned, because this instance still remembers the key.
async fn store_response(
    app: &App,
    tenant_id: &str,
    key: &str,
    fingerprint: String,
    status: StatusCode,
    body: &Bytes,
) {
    let created_at_ms = now_ms();
    let window_ms = i64::try_from(app.config.idempotency_window.as_millis()).unwrap_or(i64::MAX);
    let record = IdempotentResponse {
        id: idempotency::record_id(tenant_id, key),
        tenant_id: tenant_id.to_string(),
        idempotency_key: key.to_string(),
        fingerprint,
        status: i32::from(status.as_u16()),
        body: String::from_utf8_lossy(body).into_owned(),
        created_at_ms,
        expires_at_ms: created_at_ms.saturating_add(window_ms),
    };
    let topic = &app.topics.idempotency;
    let result = match aurora_schemas::encode(&record) {
        Ok(value) => produce(&app.producer, topic, record.id.as_bytes(), &value, None)
            .await
            .map_err(|error| error.to_string()),
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = result {
        tracing::warn!(tenant_id, topic = %topic, error = %error, "Storing an Idempotency-Key response failed; a repeat through another instance or after a restart will produce the event again, with the same id.");
    }
}

async fn send(
    app: &App,
    tenant_id: &str,
    body: &[u8],
    idempotency: Option<(&str, &[u8; 32])>,
) -> Result<(StatusCode, Bytes), ApiError> {
    let parsed: EventBody = parse_json(
        body,
        r#"{"type": "invoice.paid", "payload": {...}, "id"?: "...", "key"?: "..."}"#,
    )?;
    let id = parsed.id.or_else(|| {
        idempotency.map(|(key, fingerprint)| idempotency::event_id(tenant_id, key, fingerprint))
    });
    let event = NewEvent {
        id,
        event_type: parsed.event_type,
        key: parsed.key,
        content_type: "application/json".into(),
        payload: parsed.payload.get().as_bytes().to_vec(),
        tenant_id: Some(tenant_id.to_string()),
    };
    match app.events.send(event).await {
        Ok(produced) => {
            let body = serde_json::to_vec(&produced).map_err(|error| ApiError::internal(&error))?;
            Ok((StatusCode::CREATED, Bytes::from(body)))
        }
        Err(aurora_producer::Error::InvalidEvent(reason)) => {
            Err(ApiError::invalid("invalid_event", reason))
        }
        Err(error) if error.is_too_large() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the event is larger than the broker accepts (its message.max.bytes, 1,000,000 bytes by default); send a smaller payload",
        )),
        Err(error) => Err(ApiError::unavailable(&error)),
    }
}

/// `GET /v1/events/{id}/attempts`: the tenant's attempts of an event, newest first.
pub fn attempts(
    app: &App,
    tenant_id: &str,
    event_id: &str,
    request: &Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    let (limit, before) = attempt_page(request)?;
    let page = app.attempts.by_event(tenant_id, event_id, before, limit);
    Ok(json(StatusCode::OK, &page))
}

/// Reads `limit` and an attempts iterator, which is a sequence number.
pub fn attempt_page(request: &Request<Incoming>) -> Result<(usize, Option<u64>), ApiError> {
    let (limit, iterator) = Query::of(request).page()?;
    let before = iterator
        .map(|text| {
            text.parse::<u64>().map_err(|_| {
                ApiError::invalid(
                    "invalid_query",
                    format!("iterator {text:?} is not one this API returned"),
                )
            })
        })
        .transpose()?;
    Ok((limit, before))
}
