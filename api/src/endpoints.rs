//! Tenant routes for endpoints and their signing keys. Every change is a new version of the
//! endpoint on the compacted subscriptions topic; deleting writes a tombstone.

use std::net::IpAddr;
use std::sync::Arc;

use aurora_common::produce::produce;
use aurora_common::sealed;
use aurora_common::time::now_ms;
use aurora_deliverer::signature::{SECRET_KEY_PREFIX, SECRET_PREFIX};
use aurora_deliverer::SigningKey;
use aurora_schemas::{Operation, OperationKind, RateLimit, Subscription};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use rdkafka::producer::FutureRecord;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ApiError;
use crate::http::{json, json_body, no_content, page_by_key, timestamp, HttpResponse, Query};
use crate::server::{write_row, App};

/// Maximum length of an endpoint URL, in bytes.
const MAX_URL_BYTES: usize = 2048;
/// Maximum length of a description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Most event-type filters on one endpoint.
const MAX_FILTERS: usize = 64;
/// Highest rate limit and burst, in requests per second.
const MAX_RATE: i32 = 100_000;
/// Maximum rotation window a request may set, in seconds (30 days).
const MAX_ROTATION_WINDOW_SECS: u64 = 30 * 24 * 3600;
const TOMBSTONE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Signing scheme of an endpoint's deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signing {
    /// HMAC-SHA256 with a `whsec_` secret (`v1` signatures).
    Hmac,
    /// ed25519 with a `whsk_` secret key (`v1a` signatures).
    Ed25519,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitBody {
    per_second: i32,
    burst: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEndpoint {
    url: String,
    #[serde(default)]
    description: String,
    event_types: Option<Vec<String>>,
    rate_limit: Option<RateLimitBody>,
    enabled: Option<bool>,
    signing: Option<Signing>,
    secret: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateEndpoint {
    url: Option<String>,
    description: Option<String>,
    event_types: Option<Vec<String>>,
    /// Absent keeps the limit; null removes it.
    #[serde(default, deserialize_with = "present")]
    rate_limit: Option<Option<RateLimitBody>>,
    enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateSecret {
    secret: Option<String>,
    window_seconds: Option<u64>,
}

/// Deserializes a field that may be null into `Some(None)`, so absent and null differ.
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// An endpoint as the API shows it.
#[derive(Debug, Serialize)]
pub struct EndpointView {
    id: String,
    url: String,
    description: String,
    event_types: Vec<String>,
    rate_limit: Option<RateLimitView>,
    enabled: bool,
    disabled_reason: Option<String>,
    signing: Signing,
    public_key: Option<String>,
    updated_at: String,
}

#[derive(Debug, Serialize)]
struct RateLimitView {
    per_second: i32,
    burst: i32,
}

/// A new endpoint with its secret, shown here and at `GET .../secret`.
#[derive(Debug, Serialize)]
struct CreatedEndpoint {
    #[serde(flatten)]
    endpoint: EndpointView,
    secret: Option<String>,
}

/// The signing keys of an endpoint.
#[derive(Debug, Serialize)]
struct SecretView {
    signing: Signing,
    /// The HMAC secret; absent for ed25519, whose secret key is never shown after creation.
    secret: Option<String>,
    public_key: Option<String>,
    previous_public_key: Option<String>,
    previous_expires_at: Option<String>,
}

/// `POST /v1/endpoints`.
pub async fn create(
    app: &App,
    tenant_id: &str,
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    let body: CreateEndpoint = json_body(
        request,
        app.config.max_body_bytes,
        r#"{"url": "https://...", "event_types"?: [...], "description"?: ..., "rate_limit"?: {"per_second": n}, "signing"?: "hmac" | "ed25519"}"#,
    )
    .await?;
    let url = check_url(app, &body.url)?;
    check_description(&body.description)?;
    let event_types = body.event_types.unwrap_or_else(|| vec!["*".to_string()]);
    check_filters(&event_types)?;
    let rate_limit = body.rate_limit.map(check_rate_limit).transpose()?;
    let secret = match (body.signing, body.secret) {
        (signing, Some(secret)) => {
            check_secret(&secret, signing)?;
            secret
        }
        (Some(Signing::Ed25519), None) => aurora_deliverer::generate_key_pair(),
        (_, None) => aurora_deliverer::generate_secret(),
    };

    let endpoint_id = format!("ep_{}", uuid::Uuid::new_v4().simple());
    let enabled = body.enabled.unwrap_or(true);
    let subscription = Subscription {
        secret: app.seal_key.seal(&endpoint_id, &secret),
        endpoint_id,
        url,
        event_types,
        rate_limit,
        enabled,
        description: body.description,
        updated_at_ms: now_ms(),
        disabled_reason: if enabled {
            String::new()
        } else {
            "created disabled".into()
        },
        previous_secret: None,
        previous_secret_expires_at_ms: 0,
        tenant_id: tenant_id.to_string(),
    };
    write(app, &subscription).await?;
    tracing::info!(tenant_id, endpoint_id = %subscription.endpoint_id, "Endpoint created.");
    let endpoint = view(app, &subscription)?;
    let shown = (endpoint.signing == Signing::Hmac).then_some(secret);
    Ok(json(
        StatusCode::CREATED,
        &CreatedEndpoint {
            endpoint,
            secret: shown,
        },
    ))
}

/// `GET /v1/endpoints`: the tenant's endpoints by id.
pub async fn list(
    app: &App,
    tenant_id: &str,
    request: &Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    let (limit, iterator) = Query::of(request).page()?;
    app.subscriptions.catch_up().await?;
    let endpoints = app.subscriptions.endpoints();
    let own: Vec<&Arc<Subscription>> = endpoints
        .values()
        .filter(|endpoint| endpoint.tenant_id == tenant_id)
        .collect();
    let page = page_by_key(
        own,
        |endpoint| endpoint.endpoint_id.clone(),
        iterator,
        limit,
    );
    let data = page
        .data
        .iter()
        .map(|endpoint| view(app, endpoint))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json(
        StatusCode::OK,
        &crate::http::Page {
            data,
            iterator: page.iterator,
            done: page.done,
        },
    ))
}

/// `GET /v1/endpoints/{id}`.
pub async fn get(app: &App, tenant_id: &str, endpoint_id: &str) -> Result<HttpResponse, ApiError> {
    let endpoint = owned(app, tenant_id, endpoint_id).await?;
    Ok(json(StatusCode::OK, &view(app, &endpoint)?))
}

/// `PATCH /v1/endpoints/{id}`: changes the fields given.
pub async fn update(
    app: &App,
    tenant_id: &str,
    endpoint_id: &str,
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    let body: UpdateEndpoint = json_body(
        request,
        app.config.max_body_bytes,
        r#"any of {"url", "description", "event_types", "rate_limit", "enabled"}"#,
    )
    .await?;
    let _turn = app.locks.lock(endpoint_id).await;
    let mut endpoint = owned(app, tenant_id, endpoint_id).await?;
    if let Some(url) = body.url {
        endpoint.url = check_url(app, &url)?;
    }
    if let Some(description) = body.description {
        check_description(&description)?;
        endpoint.description = description;
    }
    if let Some(event_types) = body.event_types {
        check_filters(&event_types)?;
        endpoint.event_types = event_types;
    }
    if let Some(rate_limit) = body.rate_limit {
        endpoint.rate_limit = rate_limit.map(check_rate_limit).transpose()?;
    }
    if let Some(enabled) = body.enabled {
        set_enabled(&mut endpoint, enabled);
    }
    endpoint.updated_at_ms = now_ms();
    write(app, &endpoint).await?;
    if body.enabled.is_some() {
        record_operation(app, &endpoint).await?;
    }
    Ok(json(StatusCode::OK, &view(app, &endpoint)?))
}

/// `POST /v1/endpoints/{id}/enable` and `.../disable`.
pub async fn enable(
    app: &App,
    tenant_id: &str,
    endpoint_id: &str,
    enabled: bool,
) -> Result<HttpResponse, ApiError> {
    let _turn = app.locks.lock(endpoint_id).await;
    let mut endpoint = owned(app, tenant_id, endpoint_id).await?;
    set_enabled(&mut endpoint, enabled);
    endpoint.updated_at_ms = now_ms();
    write(app, &endpoint).await?;
    record_operation(app, &endpoint).await?;
    tracing::info!(tenant_id, endpoint_id, enabled, "Endpoint switched.");
    Ok(json(StatusCode::OK, &view(app, &endpoint)?))
}

/// `DELETE /v1/endpoints/{id}`: writes a tombstone; queued deliveries are dead-lettered.
pub async fn delete(
    app: &App,
    tenant_id: &str,
    endpoint_id: &str,
) -> Result<HttpResponse, ApiError> {
    let _turn = app.locks.lock(endpoint_id).await;
    owned(app, tenant_id, endpoint_id).await?;
    let tombstone: FutureRecord<'_, str, [u8]> =
        FutureRecord::to(&app.topics.subscriptions).key(endpoint_id);
    app.producer
        .send(tombstone, TOMBSTONE_TIMEOUT)
        .await
        .map_err(|(error, _)| ApiError::unavailable(&error))?;
    app.subscriptions.catch_up().await?;
    tracing::info!(tenant_id, endpoint_id, "Endpoint deleted.");
    Ok(no_content())
}

/// `GET /v1/endpoints/{id}/secret`.
pub async fn secret(
    app: &App,
    tenant_id: &str,
    endpoint_id: &str,
) -> Result<HttpResponse, ApiError> {
    let endpoint = owned(app, tenant_id, endpoint_id).await?;
    Ok(json(StatusCode::OK, &secret_view(app, &endpoint)?))
}

/// `POST /v1/endpoints/{id}/secret/rotate`: a new key of the same kind, unless the body
/// gives one; the previous key keeps signing for the window.
pub async fn rotate(
    app: &App,
    tenant_id: &str,
    endpoint_id: &str,
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    crate::http::check_json_content_type(&request)?;
    let body = crate::http::read_body(request, app.config.max_body_bytes).await?;
    let body: RotateSecret = if body.iter().all(u8::is_ascii_whitespace) {
        RotateSecret::default()
    } else {
        crate::http::parse_json(
            &body,
            r#"{"secret"?: "whsec_..." | "whsk_...", "window_seconds"?: n}"#,
        )?
    };
    let _turn = app.locks.lock(endpoint_id).await;
    let mut endpoint = owned(app, tenant_id, endpoint_id).await?;
    let current = signing_key(app, &endpoint)?;
    let secret = match body.secret {
        Some(secret) => {
            check_secret(&secret, None)?;
            secret
        }
        None if current.public_key().is_some() => aurora_deliverer::generate_key_pair(),
        None => aurora_deliverer::generate_secret(),
    };
    let window = match body.window_seconds {
        Some(seconds) if seconds <= MAX_ROTATION_WINDOW_SECS => {
            std::time::Duration::from_secs(seconds)
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_window",
                format!("window_seconds must be at most {MAX_ROTATION_WINDOW_SECS} (30 days)"),
            ))
        }
        None => app.config.rotation_window,
    };
    let now = now_ms();
    endpoint.previous_secret = Some(endpoint.secret.clone());
    endpoint.previous_secret_expires_at_ms = now.saturating_add(window.as_millis() as i64);
    endpoint.secret = app.seal_key.seal(endpoint_id, &secret);
    endpoint.updated_at_ms = now;
    write(app, &endpoint).await?;
    tracing::info!(
        tenant_id,
        endpoint_id,
        window_secs = window.as_secs(),
        "Endpoint secret rotated."
    );
    Ok(json(StatusCode::OK, &secret_view(app, &endpoint)?))
}

/// Returns the endpoint if it exists and belongs to the tenant, and 404 otherwise, so that
/// other tenants' endpoint ids are not revealed.
pub async fn owned(
    app: &App,
    tenant_id: &str,
    endpoint_id: &str,
) -> Result<Subscription, ApiError> {
    app.subscriptions.catch_up().await?;
    match app.subscriptions.get(endpoint_id) {
        Some(endpoint) if endpoint.tenant_id == tenant_id => Ok((*endpoint).clone()),
        _ => Err(ApiError::not_found("endpoint", endpoint_id)),
    }
}

fn set_enabled(endpoint: &mut Subscription, enabled: bool) {
    endpoint.enabled = enabled;
    endpoint.disabled_reason = if enabled {
        String::new()
    } else {
        "disabled through the API".into()
    };
}

/// Writes an endpoint version and waits until this instance has read it back.
async fn write(app: &App, endpoint: &Subscription) -> Result<(), ApiError> {
    write_row(app, &app.topics.subscriptions, &app.subscriptions, endpoint).await
}

/// Records an enable or disable on the operations topic, as `aurora endpoint` does.
async fn record_operation(app: &App, endpoint: &Subscription) -> Result<(), ApiError> {
    let operation = Operation {
        endpoint_id: endpoint.endpoint_id.clone(),
        kind: if endpoint.enabled {
            OperationKind::Enabled
        } else {
            OperationKind::Disabled
        },
        reason: if endpoint.enabled {
            "enabled through the API".into()
        } else {
            "disabled through the API".into()
        },
        consecutive_failures: 0,
        at_ms: endpoint.updated_at_ms,
    };
    let value = aurora_schemas::encode(&operation).map_err(|error| ApiError::internal(&error))?;
    produce(
        &app.producer,
        &app.topics.operations,
        endpoint.endpoint_id.as_bytes(),
        &value,
        None,
    )
    .await?;
    Ok(())
}

fn signing_key(app: &App, endpoint: &Subscription) -> Result<SigningKey, ApiError> {
    open_key(app, endpoint, &endpoint.secret)
}

fn open_key(app: &App, endpoint: &Subscription, stored: &str) -> Result<SigningKey, ApiError> {
    let plain = sealed::open(Some(&app.seal_key), &endpoint.endpoint_id, stored)
        .map_err(|error| ApiError::internal(&error))?;
    SigningKey::parse(&plain).map_err(|error| ApiError::internal(&error))
}

fn view(app: &App, endpoint: &Subscription) -> Result<EndpointView, ApiError> {
    let public_key = signing_key(app, endpoint)?.public_key();
    Ok(EndpointView {
        id: endpoint.endpoint_id.clone(),
        url: endpoint.url.clone(),
        description: endpoint.description.clone(),
        event_types: endpoint.event_types.clone(),
        rate_limit: endpoint.rate_limit.map(|limit| RateLimitView {
            per_second: limit.per_second,
            burst: limit.burst,
        }),
        enabled: endpoint.enabled,
        disabled_reason: (!endpoint.disabled_reason.is_empty())
            .then(|| endpoint.disabled_reason.clone()),
        signing: if public_key.is_some() {
            Signing::Ed25519
        } else {
            Signing::Hmac
        },
        public_key,
        updated_at: timestamp(endpoint.updated_at_ms),
    })
}

fn secret_view(app: &App, endpoint: &Subscription) -> Result<SecretView, ApiError> {
    let plain = sealed::open(Some(&app.seal_key), &endpoint.endpoint_id, &endpoint.secret)
        .map_err(|error| ApiError::internal(&error))?;
    let key = SigningKey::parse(&plain).map_err(|error| ApiError::internal(&error))?;
    let in_window =
        endpoint.previous_secret.is_some() && now_ms() < endpoint.previous_secret_expires_at_ms;
    let previous = match (&endpoint.previous_secret, in_window) {
        (Some(previous), true) => Some(open_key(app, endpoint, previous)?),
        _ => None,
    };
    Ok(SecretView {
        signing: if key.public_key().is_some() {
            Signing::Ed25519
        } else {
            Signing::Hmac
        },
        secret: key.public_key().is_none().then_some(plain),
        public_key: key.public_key(),
        previous_public_key: previous.as_ref().and_then(SigningKey::public_key),
        previous_expires_at: in_window.then(|| timestamp(endpoint.previous_secret_expires_at_ms)),
    })
}

/// Checks a URL and returns it normalized: absolute http or https, a host, a port from 1 to
/// 65535, no credentials, and no literal address the SSRF guard refuses. The WHATWG parser
/// reads every form of a literal address (`127.1`, `0x7f000001`, `[::ffff:7f00:1]`), so the
/// check gets the address a connection would use. Hostnames are resolved and checked on every
/// delivery instead, because what they resolve to can change.
fn check_url(app: &App, url: &str) -> Result<String, ApiError> {
    let invalid =
        |why: &str| ApiError::invalid("invalid_url", format!("url {url:?} is not usable: {why}"));
    if url.len() > MAX_URL_BYTES {
        return Err(invalid(&format!("it is longer than {MAX_URL_BYTES} bytes")));
    }
    let parsed = aurora_deliverer::ssrf::parse_endpoint_url(url).map_err(|why| invalid(&why))?;
    if app.config.guard.require_https && parsed.scheme() != "https" {
        return Err(invalid("this server delivers only to https:// URLs"));
    }
    let address = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(domain)) if !domain.is_empty() => None,
        _ => return Err(invalid("the URL has no host")),
    };
    if let Some(ip) = address {
        app.config.guard.check(ip).map_err(|reason| {
            ApiError::invalid(
                "url_forbidden",
                format!("url {url:?} is refused: {reason}; deliveries to this range are blocked unless the operator allows the subnet"),
            )
        })?;
    }
    Ok(parsed.into())
}

fn check_description(description: &str) -> Result<(), ApiError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::invalid(
            "invalid_description",
            format!("description must be at most {MAX_DESCRIPTION_CHARS} characters long"),
        ));
    }
    Ok(())
}

fn check_filters(event_types: &[String]) -> Result<(), ApiError> {
    if event_types.is_empty() || event_types.len() > MAX_FILTERS {
        return Err(ApiError::invalid(
            "invalid_event_types",
            format!("event_types must list 1 to {MAX_FILTERS} filters; use [\"*\"] for every type"),
        ));
    }
    for filter in event_types {
        aurora_router::validate_filter(filter)
            .map_err(|reason| ApiError::invalid("invalid_event_types", reason))?;
    }
    Ok(())
}

fn check_rate_limit(body: RateLimitBody) -> Result<RateLimit, ApiError> {
    let burst = body.burst.unwrap_or(body.per_second);
    let valid = 1..=MAX_RATE;
    if !valid.contains(&body.per_second) || !valid.contains(&burst) {
        return Err(ApiError::invalid(
            "invalid_rate_limit",
            format!("rate_limit.per_second and rate_limit.burst must be from 1 to {MAX_RATE}"),
        ));
    }
    Ok(RateLimit {
        per_second: body.per_second,
        burst,
    })
}

/// Checks a supplied secret: `whsec_` or `whsk_`, matching `signing` when given.
fn check_secret(secret: &str, signing: Option<Signing>) -> Result<(), ApiError> {
    let key = SigningKey::parse(secret).map_err(|error| {
        ApiError::invalid(
            "invalid_secret",
            format!("secret is not usable: {error}; give {SECRET_PREFIX}<base64> or {SECRET_KEY_PREFIX}<base64>, or leave it out to have one generated"),
        )
    })?;
    let kind = if key.public_key().is_some() {
        Signing::Ed25519
    } else {
        Signing::Hmac
    };
    if signing.is_some_and(|signing| signing != kind) {
        return Err(ApiError::invalid(
            "invalid_secret",
            "secret does not match signing: hmac takes whsec_ secrets, ed25519 takes whsk_ keys",
        ));
    }
    Ok(())
}
