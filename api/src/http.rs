//! Request and response plumbing: bounded JSON bodies, query strings, pages and timestamps.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ApiError;

pub type HttpResponse = Response<Full<Bytes>>;

/// Largest page size a list request may ask for.
pub const MAX_PAGE_LIMIT: usize = 250;
/// Page size when a list request does not give one.
pub const DEFAULT_PAGE_LIMIT: usize = 50;

/// One page of a list, newest or lowest id first; `iterator` continues after the last item.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub iterator: Option<String>,
    pub done: bool,
}

/// Reads a body of at most `max_bytes`; refuses larger ones with 413.
pub async fn read_body(request: Request<Incoming>, max_bytes: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body exceeds {max_bytes} bytes; send a smaller body"),
        )
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_bytes as u64) {
        return Err(too_large());
    }
    match Limited::new(request.into_body(), max_bytes).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(too_large()),
    }
}

/// Checks that a request with a body declares JSON, when it declares a type at all.
pub fn check_json_content_type(request: &Request<Incoming>) -> Result<(), ApiError> {
    let Some(value) = request.headers().get(CONTENT_TYPE) else {
        return Ok(());
    };
    let media_type = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media_type == "application/json" {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("the body must be application/json, not {media_type:?}"),
        ))
    }
}

/// Parses a JSON body into `T`; `shape` describes the expected body in the error message.
pub fn parse_json<T: DeserializeOwned>(body: &[u8], shape: &str) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "invalid_json",
            format!("the request body is empty; send {shape}"),
        ));
    }
    serde_json::from_slice(body).map_err(|error| {
        ApiError::invalid(
            "invalid_json",
            format!("the body is not valid: {error}; send {shape}"),
        )
    })
}

/// Reads and parses a JSON request body.
pub async fn json_body<T: DeserializeOwned>(
    request: Request<Incoming>,
    max_bytes: usize,
    shape: &str,
) -> Result<T, ApiError> {
    check_json_content_type(&request)?;
    let body = read_body(request, max_bytes).await?;
    parse_json(&body, shape)
}

/// Serializes `value` as a JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> HttpResponse {
    let body = serde_json::to_vec(value).unwrap_or_else(|error| {
        tracing::error!(error = %error, "Serializing a response failed.");
        b"{}".to_vec()
    });
    json_bytes(status, Bytes::from(body))
}

/// Builds a response whose body is already JSON.
pub fn json_bytes(status: StatusCode, body: Bytes) -> HttpResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Builds a 204 response.
pub fn no_content() -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// Builds the JSON error response `{"code": ..., "message": ...}`.
pub fn error_response(error: &ApiError) -> HttpResponse {
    json(
        error.status,
        &serde_json::json!({"code": error.code, "message": error.message}),
    )
}

/// The decoded query string of a request.
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn of<B>(request: &Request<B>) -> Query {
        let pairs = request
            .uri()
            .query()
            .map(|query| {
                form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Query(pairs)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Reads `limit` (1 to [`MAX_PAGE_LIMIT`]) and `iterator`.
    pub fn page(&self) -> Result<(usize, Option<String>), ApiError> {
        let limit = match self.get("limit") {
            None => DEFAULT_PAGE_LIMIT,
            Some(text) => match text.parse::<usize>() {
                Ok(limit) if (1..=MAX_PAGE_LIMIT).contains(&limit) => limit,
                _ => {
                    return Err(ApiError::invalid(
                        "invalid_query",
                        format!("limit must be a number from 1 to {MAX_PAGE_LIMIT}, not {text:?}"),
                    ))
                }
            },
        };
        Ok((limit, self.get("iterator").map(str::to_string)))
    }
}

/// Formats epoch milliseconds as an RFC 3339 UTC timestamp.
pub fn timestamp(epoch_ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(epoch_ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

/// Takes up to `limit` items after the iterator from items sorted by `key`, ascending.
pub fn page_by_key<T, K: Ord + ToString>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> K,
    after: Option<K>,
    limit: usize,
) -> Page<T> {
    items.sort_by_key(&key);
    let mut data: Vec<T> = items
        .into_iter()
        .filter(|item| after.as_ref().is_none_or(|after| key(item) > *after))
        .take(limit + 1)
        .collect();
    let done = data.len() <= limit;
    data.truncate(limit);
    let iterator = if done {
        None
    } else {
        data.last().map(|last| key(last).to_string())
    };
    Page {
        data,
        iterator,
        done,
    }
}
