//! The pooled HTTP(S) client that POSTs deliveries: no redirects followed, bounded time,
//! response bodies read up to a cap.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::ssrf::{Guard, GuardedConnector};

/// Maximum time to wait for a TCP connection to an endpoint.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of a response body kept in the attempt record.
pub const RESPONSE_EXCERPT_BYTES: usize = 1024;
/// Bytes of a response body read at most; the rest is discarded with the connection.
pub const RESPONSE_READ_LIMIT_BYTES: usize = 64 * 1024;

/// A response, as much of it as attempts record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The `Retry-After` header, when present and readable as text.
    pub retry_after: Option<String>,
    pub excerpt: String,
}

/// Failure to get a response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    #[error("invalid endpoint URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("request timed out after {0:?}")]
    TimedOut(Duration),
    #[error("request failed: {0}")]
    Request(#[source] hyper_util::client::legacy::Error),
}

/// A request to send: URL, signed headers and body.
pub struct Outgoing<'a> {
    pub url: &'a str,
    pub content_type: &'a str,
    pub headers: [(&'static str, String); 3],
    pub body: Bytes,
}

/// Pooled client shared by every delivery of a deliverer.
#[derive(Clone)]
pub struct WebhookClient {
    client: Client<HttpsConnector<GuardedConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl WebhookClient {
    /// Creates a client whose requests, body included, take at most `timeout`, and whose
    /// connections pass `guard`.
    pub fn new(timeout: Duration, guard: Guard) -> Self {
        let connector = GuardedConnector::new(guard, timeout.min(MAX_CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .build(https);
        WebhookClient { client, timeout }
    }

    /// POSTs a request and reads the response, within the timeout.
    pub async fn send(&self, outgoing: Outgoing<'_>) -> Result<Response, SendError> {
        let request = build_request(&outgoing)?;
        match tokio::time::timeout(self.timeout, self.exchange(request)).await {
            Ok(result) => result,
            Err(_) => Err(SendError::TimedOut(self.timeout)),
        }
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<Response, SendError> {
        let response = self
            .client
            .request(request)
            .await
            .map_err(SendError::Request)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        // A body that fails or runs past the limit still leaves the status, which decides
        // the outcome; the excerpt is informational.
        let body = Limited::new(response.into_body(), RESPONSE_READ_LIMIT_BYTES)
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        let end = body.len().min(RESPONSE_EXCERPT_BYTES);
        Ok(Response {
            status,
            retry_after,
            excerpt: String::from_utf8_lossy(&body[..end]).into_owned(),
        })
    }
}

fn build_request(outgoing: &Outgoing<'_>) -> Result<Request<Full<Bytes>>, SendError> {
    let invalid = |reason: String| SendError::InvalidUrl {
        url: outgoing.url.to_string(),
        reason,
    };
    let uri: Uri = outgoing
        .url
        .parse()
        .map_err(|error: hyper::http::uri::InvalidUri| invalid(error.to_string()))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(invalid("the scheme must be http or https".into())),
    }
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(
            USER_AGENT,
            concat!("AuroraPress/", env!("CARGO_PKG_VERSION")),
        )
        .header(
            CONTENT_TYPE,
            HeaderValue::from_str(outgoing.content_type)
                .unwrap_or(HeaderValue::from_static("application/json")),
        );
    for (name, value) in &outgoing.headers {
        let value = HeaderValue::from_str(value)
            .map_err(|_| invalid(format!("header {name} has a value HTTP cannot carry")))?;
        builder = builder.header(HeaderName::from_static(name), value);
    }
    builder
        .body(Full::new(outgoing.body.clone()))
        .map_err(|error| invalid(error.to_string()))
}
