//! The HTTP server: connections, authentication and the route table.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aurora_common::kafka::Producer;
use aurora_common::produce::produce;
use aurora_common::sealed::SealKey;
use aurora_common::table::TableRecord;
use aurora_common::{IdempotencyTable, SubscriptionTable, Table, TenantTable, Topics};
use aurora_producer::{Encoding, EventProducer};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::attempts::{self, AttemptStore};
use crate::auth::{Authenticator, Caller};
use crate::config::ApiConfig;
use crate::error::{ApiError, Error};
use crate::http::{error_response, json, HttpResponse};
use crate::idempotency::IdempotencyCache;
use crate::locks::KeyedLocks;
use crate::{endpoints, events, tenants};

/// Time a client has to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a request handler needs.
pub struct App {
    pub config: ApiConfig,
    pub topics: Topics,
    pub producer: Producer,
    pub events: EventProducer,
    pub subscriptions: SubscriptionTable,
    pub tenants: TenantTable,
    pub auth: Authenticator,
    pub idempotency: IdempotencyCache,
    /// Responses to Idempotency-Keys stored by every instance.
    pub stored_responses: IdempotencyTable,
    pub attempts: Arc<AttemptStore>,
    pub seal_key: SealKey,
    /// Serializes changes to one endpoint or tenant through this instance.
    pub locks: KeyedLocks,
}

/// Writes a row of a compacted topic and waits until this instance's table has read it back,
/// so the next request finds it.
pub async fn write_row<T: TableRecord>(
    app: &App,
    topic: &str,
    table: &Table<T>,
    row: &T,
) -> Result<(), ApiError> {
    let value = aurora_schemas::encode(row).map_err(|error| ApiError::internal(&error))?;
    produce(&app.producer, topic, row.key().as_bytes(), &value, None).await?;
    table.catch_up().await?;
    Ok(())
}

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn serve(
    config: ApiConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let app = Arc::new(start(config, &shutdown).await?);
    tracing::info!(address = %listener.local_addr()?, admin = app.auth.has_admin(), "Tenant API listening.");
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        tokio::spawn(serve_connection(stream, peer, app.clone()));
    }
}

async fn start(config: ApiConfig, shutdown: &CancellationToken) -> Result<App, Error> {
    let kafka = &config.kafka;
    let topics = kafka.topics();
    let subscriptions =
        SubscriptionTable::start(kafka, &topics.subscriptions, shutdown.child_token()).await?;
    let tenants = TenantTable::start(kafka, &topics.tenants, shutdown.child_token()).await?;
    let stored_responses =
        IdempotencyTable::start(kafka, &topics.idempotency, shutdown.child_token()).await?;
    let store = Arc::new(AttemptStore::new(
        config.attempts_retention,
        config.attempts_max,
    ));
    attempts::start_reader(kafka, store.clone(), shutdown.child_token()).await?;
    Ok(App {
        producer: aurora_common::kafka::producer(kafka)?,
        events: EventProducer::new(kafka, "aurora-api", Encoding::Headers)?,
        auth: Authenticator::new(config.admin_key_sha256.clone(), tenants.clone()),
        idempotency: IdempotencyCache::new(config.idempotency_window, config.idempotency_max_keys),
        stored_responses,
        seal_key: config.seal_key.clone(),
        locks: KeyedLocks::default(),
        attempts: store,
        topics,
        subscriptions,
        tenants,
        config,
    })
}

async fn serve_connection(stream: tokio::net::TcpStream, peer: SocketAddr, app: Arc<App>) {
    let service = service_fn(move |request| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(handle(&app, request).await) }
    });
    if let Err(error) = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(peer = %peer, error = %error, "API connection closed with an error.");
    }
}

async fn handle(app: &App, request: Request<Incoming>) -> HttpResponse {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = match route(app, request).await {
        Ok(response) => response,
        Err(error) => error_response(&error),
    };
    app.config.metrics.request(response.status().as_u16());
    tracing::debug!(method = %method, path = %path, status = response.status().as_u16(), "API request handled.");
    response
}

/// Caller a route is for.
enum Audience {
    Public,
    Admin,
    Tenant,
}

async fn route(app: &App, request: Request<Incoming>) -> Result<HttpResponse, ApiError> {
    let segments: Vec<String> = request
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(decode_segment)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = request.method().clone();
    let (audience, allowed): (Audience, &[Method]) = match segments.as_slice() {
        ["healthz"] | ["v1", "openapi.yaml"] => (Audience::Public, &[Method::GET]),
        ["v1", "tenants"] => (Audience::Admin, &[Method::GET, Method::POST]),
        ["v1", "tenants", _] => (Audience::Admin, &[Method::GET]),
        ["v1", "tenants", _, "api-keys"] => (Audience::Admin, &[Method::POST]),
        ["v1", "tenants", _, "api-keys", _] => (Audience::Admin, &[Method::DELETE]),
        ["v1", "endpoints"] => (Audience::Tenant, &[Method::GET, Method::POST]),
        ["v1", "endpoints", _] => (
            Audience::Tenant,
            &[Method::GET, Method::PATCH, Method::DELETE],
        ),
        ["v1", "endpoints", _, "enable" | "disable"] => (Audience::Tenant, &[Method::POST]),
        ["v1", "endpoints", _, "secret", "rotate"] => (Audience::Tenant, &[Method::POST]),
        ["v1", "endpoints", _, "secret" | "attempts"] => (Audience::Tenant, &[Method::GET]),
        ["v1", "events"] => (Audience::Tenant, &[Method::POST]),
        ["v1", "events", _, "attempts"] => (Audience::Tenant, &[Method::GET]),
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "no route for {}; see GET /v1/openapi.yaml for the routes",
                    request.uri().path()
                ),
            ))
        }
    };
    if !allowed.contains(&method) {
        let mut response = error_response(&ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed here"),
        ));
        let allow = allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(value) = HeaderValue::from_str(&allow) {
            response.headers_mut().insert(ALLOW, value);
        }
        return Ok(response);
    }

    match audience {
        Audience::Public => Ok(public(&segments)),
        Audience::Admin => {
            if !app.auth.has_admin() {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "admin_disabled",
                    "admin routes are off because no admin key is configured; set AURORA_ADMIN_KEY",
                ));
            }
            match app.auth.authenticate(request.headers()).await? {
                Caller::Admin => admin(app, &segments, request).await,
                Caller::Tenant(_) => Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "this route needs the admin key, not a tenant API key",
                )),
            }
        }
        Audience::Tenant => match app.auth.authenticate(request.headers()).await? {
            Caller::Tenant(tenant_id) => tenant(app, &tenant_id, &segments, request).await,
            Caller::Admin => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this route needs a tenant API key; the admin key manages tenants only",
            )),
        },
    }
}

fn public(segments: &[&str]) -> HttpResponse {
    if segments == ["healthz"] {
        return json(StatusCode::OK, &serde_json::json!({"status": "ok"}));
    }
    let mut response = Response::new(Full::new(Bytes::from_static(
        crate::OPENAPI_YAML.as_bytes(),
    )));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/yaml"));
    response
}

async fn admin(
    app: &App,
    segments: &[&str],
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    let method = request.method().clone();
    match (method, segments) {
        (Method::POST, ["v1", "tenants"]) => tenants::create(app, request).await,
        (Method::GET, ["v1", "tenants"]) => tenants::list(app, &request).await,
        (Method::GET, ["v1", "tenants", id]) => tenants::get(app, id).await,
        (Method::POST, ["v1", "tenants", id, "api-keys"]) => tenants::create_key(app, id).await,
        (Method::DELETE, ["v1", "tenants", id, "api-keys", key_id]) => {
            tenants::revoke_key(app, id, key_id).await
        }
        _ => Err(unrouted()),
    }
}

async fn tenant(
    app: &App,
    tenant_id: &str,
    segments: &[&str],
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    let method = request.method().clone();
    match (method, segments) {
        (Method::POST, ["v1", "endpoints"]) => endpoints::create(app, tenant_id, request).await,
        (Method::GET, ["v1", "endpoints"]) => endpoints::list(app, tenant_id, &request).await,
        (Method::GET, ["v1", "endpoints", id]) => endpoints::get(app, tenant_id, id).await,
        (Method::PATCH, ["v1", "endpoints", id]) => {
            endpoints::update(app, tenant_id, id, request).await
        }
        (Method::DELETE, ["v1", "endpoints", id]) => endpoints::delete(app, tenant_id, id).await,
        (Method::POST, ["v1", "endpoints", id, "enable"]) => {
            endpoints::enable(app, tenant_id, id, true).await
        }
        (Method::POST, ["v1", "endpoints", id, "disable"]) => {
            endpoints::enable(app, tenant_id, id, false).await
        }
        (Method::GET, ["v1", "endpoints", id, "secret"]) => {
            endpoints::secret(app, tenant_id, id).await
        }
        (Method::POST, ["v1", "endpoints", id, "secret", "rotate"]) => {
            endpoints::rotate(app, tenant_id, id, request).await
        }
        (Method::GET, ["v1", "endpoints", id, "attempts"]) => {
            endpoints::owned(app, tenant_id, id).await?;
            let (limit, before) = events::attempt_page(&request)?;
            let page = app.attempts.by_endpoint(id, before, limit);
            Ok(json(StatusCode::OK, &page))
        }
        (Method::POST, ["v1", "events"]) => events::create(app, tenant_id, request).await,
        (Method::GET, ["v1", "events", id, "attempts"]) => {
            events::attempts(app, tenant_id, id, &request)
        }
        _ => Err(unrouted()),
    }
}

fn unrouted() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no route for this request; see GET /v1/openapi.yaml for the routes",
    )
}

fn decode_segment(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}
