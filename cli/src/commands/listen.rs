//! `aurora listen`: a local webhook receiver that verifies each request's Standard Webhooks
//! signature and prints it.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aurora_deliverer::signature::{Verifier, WebhookHeaders};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// Largest request body the listener reads.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Address to listen on.
    #[arg(long, env = "AURORA_LISTEN_ADDRESS", default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Key the requests must be signed with: a whsec_<base64> secret, or the whpk_<base64>
    /// public key of an ed25519 endpoint; repeatable.
    #[arg(
        long = "secret",
        env = "AURORA_LISTEN_SECRET",
        value_delimiter = ',',
        required = true
    )]
    secrets: Vec<String>,
    /// Status returned for verified requests.
    #[arg(long, default_value_t = 204, value_parser = clap::value_parser!(u16).range(100..=599))]
    status: u16,
    /// How far webhook-timestamp may be from this machine's clock.
    #[arg(long, default_value = "5m", value_parser = aurora_common::config::parse_positive_duration)]
    tolerance: Duration,
}

struct Listener {
    secrets: Vec<Verifier>,
    status: StatusCode,
    tolerance_secs: i64,
}

pub async fn run(args: ListenArgs) -> anyhow::Result<()> {
    let secrets = args
        .secrets
        .iter()
        .map(|secret| Verifier::parse(secret))
        .collect::<Result<Vec<_>, _>>()
        .context("invalid --secret")?;
    let listener = Arc::new(Listener {
        secrets,
        status: StatusCode::from_u16(args.status).context("invalid --status")?,
        tolerance_secs: args.tolerance.as_secs() as i64,
    });
    let socket = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    println!(
        "Listening on http://{} and verifying signatures.",
        socket.local_addr()?
    );
    flush();
    loop {
        let (stream, _) = socket.accept().await.context("accepting a connection")?;
        let listener = listener.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let listener = listener.clone();
                async move { Ok::<_, Infallible>(listener.handle(request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Listener {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let WebhookHeaders {
            id,
            timestamp,
            signatures,
        } = WebhookHeaders::read(request.headers());
        let path = request.uri().path().to_string();
        let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
        };

        let now_secs = aurora_common::time::now_ms() / 1000;
        let mut last_error = None;
        for secret in &self.secrets {
            match secret.verify(
                id.as_deref(),
                timestamp.as_deref(),
                signatures.as_deref(),
                &body,
                now_secs,
                self.tolerance_secs,
            ) {
                Ok(()) => {
                    println!(
                        "verified webhook-id={} path={} body={}",
                        id.as_deref().unwrap_or(""),
                        path,
                        String::from_utf8_lossy(&body)
                    );
                    flush();
                    return reply(self.status, "");
                }
                Err(error) => last_error = Some(error),
            }
        }
        let reason = last_error
            .map(|error| error.to_string())
            .unwrap_or_default();
        println!(
            "rejected webhook-id={} path={} reason={reason}",
            id.as_deref().unwrap_or(""),
            path
        );
        flush();
        reply(
            StatusCode::UNAUTHORIZED,
            &format!("signature verification failed: {reason}"),
        )
    }
}

fn reply(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_string())));
    *response.status_mut() = status;
    response
}

fn flush() {
    let _ = std::io::stdout().flush();
}
