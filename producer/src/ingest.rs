//! HTTP ingest API for services that do not speak Kafka: `POST /v1/events` responds with the
//! partition and offset once the broker has acknowledged the write.
//!
//! Request body: `{"type": "invoice.paid", "payload": {...}, "id": "optional", "key":
//! "optional"}`. Errors are JSON `{"code": ..., "message": ...}`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use aurora_common::metrics::RequestMetrics;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{Error, EventProducer, NewEvent};

/// Default largest request body accepted, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventRequest {
    id: Option<String>,
    #[serde(rename = "type")]
    event_type: String,
    key: Option<String>,
    payload: Box<serde_json::value::RawValue>,
}

struct Api {
    producer: EventProducer,
    max_body_bytes: usize,
    metrics: RequestMetrics,
}

/// Serves the ingest API on `listener` until `shutdown` is cancelled, counting responses
/// by status in `metrics`.
pub async fn serve(
    listener: TcpListener,
    producer: EventProducer,
    max_body_bytes: usize,
    metrics: RequestMetrics,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let api = Arc::new(Api {
        producer,
        max_body_bytes,
        metrics,
    });
    tracing::info!(address = %listener.local_addr()?, "Ingest API listening.");
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        let api = api.clone();
        tokio::spawn(serve_connection(stream, peer, api));
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, peer: SocketAddr, api: Arc<Api>) {
    let service = service_fn(move |request| {
        let api = api.clone();
        async move {
            let response = api.handle(request).await;
            api.metrics.request(response.status().as_u16());
            Ok::<_, Infallible>(response)
        }
    });
    if let Err(error) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(peer = %peer, error = %error, "Ingest connection closed with an error.");
    }
}

impl Api {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        match (request.method(), request.uri().path()) {
            (&Method::POST, "/v1/events") => self.post_event(request).await,
            (&Method::GET, "/healthz") => json(StatusCode::OK, serde_json::json!({"status": "ok"})),
            (_, "/v1/events") => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "use POST for /v1/events",
            ),
            (_, path) => error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no route for {path}; events go to POST /v1/events"),
            ),
        }
    }

    async fn post_event(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let too_large = || {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!(
                    "the request body exceeds {} bytes; send a smaller payload",
                    self.max_body_bytes
                ),
            )
        };
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_body_bytes as u64) {
            return too_large();
        }
        let body = match Limited::new(request.into_body(), self.max_body_bytes)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return too_large(),
        };
        let parsed: EventRequest = match serde_json::from_slice(&body) {
            Ok(parsed) => parsed,
            Err(reason) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    &format!("the body is not a valid event request: {reason}; expected {{\"type\": ..., \"payload\": ..., \"id\"?: ..., \"key\"?: ...}}"),
                )
            }
        };

        let event = NewEvent {
            id: parsed.id,
            event_type: parsed.event_type,
            key: parsed.key,
            content_type: "application/json".into(),
            payload: parsed.payload.get().as_bytes().to_vec(),
            tenant_id: None,
        };
        match self.producer.send(event).await {
            // Serialized from the struct, so the fields keep the order `aurora produce` prints.
            Ok(produced) => json_text(
                StatusCode::CREATED,
                serde_json::to_string(&produced).unwrap_or_default(),
            ),
            Err(Error::InvalidEvent(reason)) => {
                error(StatusCode::BAD_REQUEST, "invalid_event", &reason)
            }
            Err(failure) if failure.is_too_large() => error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the event is larger than the broker accepts (its message.max.bytes, 1,000,000 bytes by default); send a smaller payload",
            ),
            Err(failure) => {
                tracing::error!(error = %failure, "Producing an ingested event failed.");
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "broker_unavailable",
                    "the event was not stored because the broker did not acknowledge it; retry the request",
                )
            }
        }
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    json_text(status, body.to_string())
}

fn json_text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json(
        status,
        serde_json::json!({"code": code, "message": message}),
    )
}
