//! The webhook receiver: a hyper HTTP/1 server on 127.0.0.1 that verifies every signature,
//! responds as the scenario requires, and records when each delivery arrived.
//!
//! Paths: `/e/{index}` for benchmark endpoint `index`, `/warmup` for the warm-up endpoint and
//! `/ceiling` for the bare HTTP client's requests. A failing endpoint responds 500 to the first
//! attempt of every event with an even sequence number, so half of its deliveries succeed on
//! their first attempt and the other half after one retry.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use aurora_deliverer::signature::WebhookHeaders;
use aurora_deliverer::{Secret, SignatureError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::clock::now_us;

/// How far a webhook-timestamp may be from this machine's clock, in seconds.
const TIMESTAMP_TOLERANCE_SECS: i64 = 300;

/// Pause after a failed accept before accepting again.
const ACCEPT_ERROR_BACKOFF: std::time::Duration = std::time::Duration::from_millis(10);

/// One bit per event.
struct Bits(Vec<AtomicU64>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits((0..len.div_ceil(64)).map(|_| AtomicU64::new(0)).collect())
    }

    /// Sets bit `index`; returns whether it was already set.
    fn set(&self, index: usize) -> bool {
        let mask = 1u64 << (index % 64);
        self.0[index / 64].fetch_or(mask, Ordering::Relaxed) & mask != 0
    }
}

/// State of one benchmark endpoint in the receiver.
struct EndpointState {
    secret: Secret,
    failing: bool,
    /// Events delivered with a 2xx response.
    delivered: Bits,
    /// Events whose first attempt got a failure response (failing endpoints only).
    failed_once: Bits,
}

/// Counters of everything received.
#[derive(Default)]
pub struct Counters {
    /// First successful delivery of an (endpoint, event) pair.
    pub delivered: AtomicU64,
    /// Successful deliveries of a pair that was already delivered (at-least-once duplicates).
    pub duplicates: AtomicU64,
    /// Requests that got a 500 response on purpose.
    pub failed_on_purpose: AtomicU64,
    /// Requests whose signature did not verify, or whose body or path was not understood.
    pub rejected: AtomicU64,
    /// Requests of the bare HTTP client.
    pub ceiling: AtomicU64,
    /// Requests to the warm-up endpoint that got a 2xx response.
    pub warmup: AtomicU64,
    /// TCP connections accepted, to check that clients reuse them.
    pub connections: AtomicU64,
    /// Receive time of the latest first delivery, in microseconds since the Unix epoch.
    pub last_delivered_us: AtomicU64,
}

/// The receiver's state, shared by every connection.
pub struct Receiver {
    endpoints: Vec<EndpointState>,
    warmup_secret: Secret,
    warmup_failed: AtomicBool,
    events: usize,
    pub counters: Counters,
    /// Produce-to-receive latencies of first deliveries.
    latencies: Mutex<Vec<Sample>>,
}

/// Latency of one first delivery.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Send time of the event, in microseconds since the Unix epoch.
    pub sent_at_us: u64,
    pub latency_us: u32,
}

/// The part of a benchmark payload the receiver reads.
#[derive(Deserialize)]
struct Payload {
    seq: u64,
    sent_at_us: u64,
}

impl Receiver {
    /// Creates the state for `secrets.len()` endpoints, the first `failing` of which fail.
    pub fn new(
        secrets: &[String],
        failing: usize,
        warmup_secret: &str,
        events: usize,
    ) -> Result<Self, SignatureError> {
        let endpoints = secrets
            .iter()
            .enumerate()
            .map(|(index, secret)| {
                Ok(EndpointState {
                    secret: Secret::parse(secret)?,
                    failing: index < failing,
                    delivered: Bits::new(events),
                    failed_once: Bits::new(if index < failing { events } else { 0 }),
                })
            })
            .collect::<Result<_, SignatureError>>()?;
        Ok(Receiver {
            endpoints,
            warmup_secret: Secret::parse(warmup_secret)?,
            warmup_failed: AtomicBool::new(false),
            events,
            counters: Counters::default(),
            latencies: Mutex::new(Vec::with_capacity(events * secrets.len())),
        })
    }

    /// Takes the latencies recorded so far.
    pub fn take_latencies(&self) -> Vec<Sample> {
        let mut latencies = self
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *latencies)
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_string();
        let WebhookHeaders {
            id,
            timestamp,
            signatures,
        } = WebhookHeaders::read(request.headers());
        let Ok(body) = request
            .into_body()
            .collect()
            .await
            .map(|body| body.to_bytes())
        else {
            return self.reject();
        };
        let secret = match path.as_str() {
            "/warmup" => &self.warmup_secret,
            "/ceiling" => &self.endpoints[0].secret,
            other => match endpoint_index(other).and_then(|index| self.endpoints.get(index)) {
                Some(endpoint) => &endpoint.secret,
                None => return self.reject(),
            },
        };
        let now_secs = (now_us() / 1_000_000) as i64;
        let verified = secret.verify(
            id.as_deref(),
            timestamp.as_deref(),
            signatures.as_deref(),
            &body,
            now_secs,
            TIMESTAMP_TOLERANCE_SECS,
        );
        if verified.is_err() {
            return self.reject();
        }
        match path.as_str() {
            "/warmup" => self.warmup(),
            "/ceiling" => {
                self.counters.ceiling.fetch_add(1, Ordering::Relaxed);
                reply(StatusCode::NO_CONTENT)
            }
            other => match endpoint_index(other) {
                Some(index) => self.delivery(index, &body),
                None => self.reject(),
            },
        }
    }

    /// Fails the first warm-up request, so the warm-up passes through the retry stage too.
    fn warmup(&self) -> Response<Full<Bytes>> {
        if !self.warmup_failed.swap(true, Ordering::Relaxed) {
            return reply(StatusCode::INTERNAL_SERVER_ERROR);
        }
        self.counters.warmup.fetch_add(1, Ordering::Relaxed);
        reply(StatusCode::NO_CONTENT)
    }

    fn delivery(&self, index: usize, body: &[u8]) -> Response<Full<Bytes>> {
        let received_us = now_us();
        let Ok(payload) = serde_json::from_slice::<Payload>(body) else {
            return self.reject();
        };
        let seq = payload.seq as usize;
        if seq >= self.events {
            return self.reject();
        }
        let endpoint = &self.endpoints[index];
        if endpoint.failing && seq.is_multiple_of(2) && !endpoint.failed_once.set(seq) {
            self.counters
                .failed_on_purpose
                .fetch_add(1, Ordering::Relaxed);
            return reply(StatusCode::INTERNAL_SERVER_ERROR);
        }
        if endpoint.delivered.set(seq) {
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
        } else {
            let latency_us = received_us.saturating_sub(payload.sent_at_us);
            let sample = Sample {
                sent_at_us: payload.sent_at_us,
                latency_us: u32::try_from(latency_us).unwrap_or(u32::MAX),
            };
            self.latencies
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(sample);
            self.counters
                .last_delivered_us
                .fetch_max(received_us, Ordering::Relaxed);
            self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        }
        reply(StatusCode::NO_CONTENT)
    }

    fn reject(&self) -> Response<Full<Bytes>> {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        reply(StatusCode::BAD_REQUEST)
    }
}

fn endpoint_index(path: &str) -> Option<usize> {
    path.strip_prefix("/e/")?.parse().ok()
}

fn reply(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// Binds 127.0.0.1 on a free port and serves `receiver` until the runtime stops.
pub async fn serve(receiver: Arc<Receiver>) -> std::io::Result<SocketAddr> {
    let socket = TcpListener::bind(("127.0.0.1", 0)).await?;
    let address = socket.local_addr()?;
    tokio::spawn(async move {
        loop {
            let stream = match socket.accept().await {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors, for example: wait for connections to close.
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            };
            receiver
                .counters
                .connections
                .fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_nodelay(true);
            let receiver = receiver.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let receiver = receiver.clone();
                    async move { Ok::<_, Infallible>(receiver.handle(request).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_report_first_set() {
        let bits = Bits::new(130);
        assert!(!bits.set(129));
        assert!(bits.set(129));
        assert!(!bits.set(0));
    }

    #[test]
    fn endpoint_paths_parse() {
        assert_eq!(endpoint_index("/e/17"), Some(17));
        assert_eq!(endpoint_index("/e/x"), None);
        assert_eq!(endpoint_index("/ceiling"), None);
    }
}
