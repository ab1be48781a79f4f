//! The `--metrics-addr` option of long-running commands: serves the process's Prometheus
//! metrics at `GET /metrics` with hyper.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context;
use aurora_common::metrics::CONTENT_TYPE;
use aurora_common::Metrics;
use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Address of the Prometheus metrics endpoint.
#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Address to serve Prometheus metrics on at /metrics, such as 127.0.0.1:9464; no metrics endpoint when absent.
    #[arg(long, env = "AURORA_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

impl MetricsArgs {
    /// Binds the metrics address, when one is given, and serves the returned registry there
    /// until the process exits. Without an address the registry is recorded in but not served.
    pub async fn start(&self) -> anyhow::Result<Metrics> {
        let Some(address) = self.metrics_addr else {
            return Ok(Metrics::default());
        };
        let listener = TcpListener::bind(address).await.with_context(|| {
            format!(
                "binding the metrics endpoint to {address} (AURORA_METRICS_ADDR, --metrics-addr)"
            )
        })?;
        let metrics = Metrics::new();
        tracing::info!(address = %listener.local_addr()?, "Serving Prometheus metrics at /metrics.");
        tokio::spawn(accept(listener, metrics.clone()));
        Ok(metrics)
    }
}

async fn accept(listener: TcpListener, metrics: Metrics) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Such as too many open files; the next accept may succeed.
                tracing::warn!(error = %error, "Accepting a metrics connection failed.");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = respond(&metrics, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(peer = %peer, error = %error, "Metrics connection closed with an error.");
            }
        });
    }
}

fn respond(metrics: &Metrics, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return text(
            StatusCode::NOT_FOUND,
            "not found; metrics are at /metrics\n",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET for /metrics\n");
    }
    match metrics.encode() {
        Ok(body) => {
            let mut response = text(StatusCode::OK, "");
            *response.body_mut() = Full::new(Bytes::from(body));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(CONTENT_TYPE),
            );
            response
        }
        Err(error) => {
            tracing::error!(error = %error, "Encoding the metrics failed.");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding the metrics failed\n",
            )
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
