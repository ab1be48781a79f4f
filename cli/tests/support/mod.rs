//! Test harness: a unique topic prefix per test on the broker at AURORA_TEST_BOOTSTRAP,
//! `aurora` processes, real HTTP receivers on 127.0.0.1 and a signature verifier written
//! from the Standard Webhooks specification.
#![allow(dead_code)]

pub mod aws;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aurora_common::KafkaArgs;
use aurora_schemas::Contract;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rdkafka::Message;
use sha2::Sha256;
use tokio::process::{Child, Command};

pub const AURORA: &str = env!("CARGO_BIN_EXE_aurora");
/// Retry tiers short enough for tests.
pub const TEST_RETRY_TIERS: &str = "1s,2s";
/// Every producer writes one record per batch. tansu 0.6.0 responds to a fetch from an offset
/// inside a multi-record batch with the batches after it, which skips records. With one
/// record per batch every offset starts a batch. Apache Kafka needs no such setting.
pub const TANSU_PRODUCER_PROPERTIES: &str = "batch.num.messages=1";
/// Consumer group timeouts short enough that a killed member is noticed quickly, and a short
/// fetch wait, because tansu 0.6.0 keeps every fetch open for the full fetch.wait.max.ms even when
/// records arrive (about 1 s per hop with the default 500 ms).
pub const TEST_CONSUMER_PROPERTIES: &str =
    "session.timeout.ms=6000,heartbeat.interval.ms=500,fetch.wait.max.ms=20";

/// Key that seals endpoint secrets in every test: base64 of 32 fixed bytes.
pub const TEST_SECRET_KEY: &str = "dGVzdC1zZWFsaW5nLWtleS0zMi1ieXRlcy1sb25nISE=";
/// Admin key of the tenant API in tests.
pub const TEST_ADMIN_KEY: &str = "test-admin-key-0123456789";

static NEXT_PREFIX: AtomicU32 = AtomicU32::new(0);

/// Returns the bootstrap address of the broker the tests run against.
pub fn bootstrap() -> String {
    std::env::var("AURORA_TEST_BOOTSTRAP").expect(
        "AURORA_TEST_BOOTSTRAP is not set; run the tests with scripts/test, which starts a broker",
    )
}

/// One test's isolated slice of the broker: its own topic prefix and consumer groups.
pub struct Env {
    pub prefix: String,
    pub kafka: KafkaArgs,
    retry_tiers: String,
    children: Vec<Child>,
}

impl Env {
    /// Creates a fresh prefix with every topic.
    pub async fn new(name: &str) -> Env {
        Env::with_layout(name, TEST_RETRY_TIERS, &[]).await
    }

    /// Creates a fresh prefix with these retry tiers and `aurora topics create` options.
    pub async fn with_layout(name: &str, retry_tiers: &str, topic_options: &[&str]) -> Env {
        let prefix = format!(
            "t{}-{}-{}-{}.",
            std::process::id(),
            NEXT_PREFIX.fetch_add(1, Ordering::SeqCst),
            name,
            rand::random::<u32>()
        );
        let mut kafka = KafkaArgs::new(bootstrap(), prefix.clone());
        kafka.producer_properties = vec![("batch.num.messages".into(), "1".into())];
        kafka.retry_tiers = retry_tiers
            .split(',')
            .map(|text| aurora_common::config::parse_duration(text).unwrap())
            .collect();
        let env = Env {
            prefix,
            kafka,
            retry_tiers: retry_tiers.to_string(),
            children: Vec::new(),
        };
        let mut args = vec!["topics", "create"];
        args.extend_from_slice(topic_options);
        let output = env.aurora(&args).await;
        assert!(output.status.success(), "topics create failed: {output:?}");
        env
    }

    /// Returns a command for the `aurora` binary configured for this test's topics.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(AURORA);
        command
            .args(args)
            .env("AURORA_BOOTSTRAP_SERVERS", bootstrap())
            .env("AURORA_TOPIC_PREFIX", &self.prefix)
            .env("AURORA_RETRY_TIERS", &self.retry_tiers)
            .env("AURORA_PRODUCER_PROPERTIES", TANSU_PRODUCER_PROPERTIES)
            .env("AURORA_ALLOW_SUBNETS", "127.0.0.0/8")
            .env("AURORA_SECRET_KEY", TEST_SECRET_KEY)
            .env("AURORA_ADMIN_KEY", TEST_ADMIN_KEY)
            .env("AURORA_CONSUMER_PROPERTIES", TEST_CONSUMER_PROPERTIES)
            .env(
                "RUST_LOG",
                std::env::var("AURORA_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            // Dummy AWS credentials and region for the emulator; EC2 metadata and the user's
            // AWS files are never read.
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", aws::REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT_URL")
            .kill_on_drop(true);
        command
    }

    /// Runs `aurora` to completion.
    pub async fn aurora(&self, args: &[&str]) -> std::process::Output {
        tokio::time::timeout(Duration::from_secs(60), self.command(args).output())
            .await
            .expect("aurora command timed out")
            .expect("aurora command starts")
    }

    /// Starts a long-running `aurora` component; it is killed when the test ends.
    pub fn spawn(&mut self, args: &[&str]) -> usize {
        self.spawn_with_env(args, &[])
    }

    /// Starts a long-running `aurora` component with extra environment variables.
    pub fn spawn_with_env(&mut self, args: &[&str], vars: &[(&str, &str)]) -> usize {
        let mut command = self.command(args);
        command.envs(vars.iter().copied());
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("aurora component starts");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Sends SIGTERM to a component and waits for it to exit; returns its exit status.
    pub async fn terminate(&mut self, index: usize) -> std::process::ExitStatus {
        let child = &mut self.children[index];
        let pid = child.id().expect("component is running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {pid} failed");
        tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("component exits within 30 s of SIGTERM")
            .expect("component exit status")
    }

    /// Kills a component started with [`Env::spawn`] at once (SIGKILL).
    pub async fn kill(&mut self, index: usize) {
        let child = &mut self.children[index];
        child.kill().await.expect("component is killed");
    }

    /// Registers an endpoint through the command line.
    pub async fn add_endpoint(&self, id: &str, url: &str, filters: &[&str], secret: &str) {
        self.endpoint_add(&["--id", id, "--url", url, "--secret", secret], filters)
            .await;
    }

    /// Replaces an endpoint through the command line.
    pub async fn replace_endpoint(&self, id: &str, url: &str, filters: &[&str], secret: &str) {
        let options = ["--replace", "--id", id, "--url", url, "--secret", secret];
        self.endpoint_add(&options, filters).await;
    }

    async fn endpoint_add(&self, options: &[&str], filters: &[&str]) {
        let mut args = vec!["endpoint", "add"];
        args.extend_from_slice(options);
        for filter in filters {
            args.push("--filter");
            args.push(filter);
        }
        let output = self.aurora(&args).await;
        assert!(output.status.success(), "endpoint add failed: {output:?}");
    }

    /// Reads every record of `topic` written so far.
    pub fn read_topic<T: Contract>(&self, topic: &str) -> Vec<T> {
        read_raw(&self.kafka, topic)
            .into_iter()
            .filter_map(|(_, value)| value)
            .map(|value| aurora_schemas::decode::<T>(&value).expect("record decodes"))
            .collect()
    }
}

/// Key and value of a record; either may be absent.
pub type RawRecord = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Reads every (key, value) of a topic, from the beginning to the end of every partition.
pub fn read_raw(kafka: &KafkaArgs, topic: &str) -> Vec<RawRecord> {
    let mut records = Vec::new();
    aurora_common::read::read_to_end(
        kafka,
        topic,
        "test-reader",
        Duration::from_secs(30),
        |message| {
            records.push((
                message.key().map(<[u8]>::to_vec),
                message.payload().map(<[u8]>::to_vec),
            ));
        },
    )
    .unwrap_or_else(|error| panic!("could not read all of {topic}: {error}"));
    records
}

/// Polls `condition` every 100 ms until it is true or `timeout` passes; returns whether it held.
pub async fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub webhook_id: Option<String>,
    pub webhook_timestamp: Option<String>,
    pub webhook_signature: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
    pub at: Instant,
}

/// An HTTP receiver on 127.0.0.1 that records every request and responds with the queued
/// statuses, then with 204.
#[derive(Clone)]
pub struct Receiver {
    pub address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    statuses: Arc<Mutex<VecDeque<QueuedResponse>>>,
}

/// A status to respond with, and an optional Retry-After header.
type QueuedResponse = (u16, Option<String>);

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            address: listener.local_addr().unwrap(),
            received: Arc::default(),
            statuses: Arc::default(),
        };
        let state = receiver.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(state.handle(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        receiver
    }

    /// URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Responds to the next requests with these statuses.
    pub fn respond_with(&self, statuses: &[u16]) {
        let queued = statuses.iter().map(|status| (*status, None));
        self.statuses.lock().unwrap().extend(queued);
    }

    /// Responds to the next request with this status and Retry-After header.
    pub fn respond_with_retry_after(&self, status: u16, retry_after: &str) {
        let queued = (status, Some(retry_after.to_string()));
        self.statuses.lock().unwrap().push_back(queued);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    async fn handle(&self, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        };
        let mut received = Received {
            path: request.uri().path().to_string(),
            webhook_id: header("webhook-id"),
            webhook_timestamp: header("webhook-timestamp"),
            webhook_signature: header("webhook-signature"),
            content_type: header("content-type"),
            body: Bytes::new(),
            at: Instant::now(),
        };
        received.body = request.into_body().collect().await.unwrap().to_bytes();
        self.received.lock().unwrap().push(received);
        let (status, retry_after) = self
            .statuses
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or((204, None));
        let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        if let Some(retry_after) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", retry_after.parse().unwrap());
        }
        response
    }
}

/// Verifies a request per the Standard Webhooks specification, independently of the signer:
/// the key is the base64-decoded part of the secret after `whsec_`, the signed content is
/// `{webhook-id}.{webhook-timestamp}.{body}`, and the header contains space-separated
/// `v1,<base64 HMAC-SHA256>` entries, any of which may match.
pub fn verify_signature(secret: &str, request: &Received) -> bool {
    let key = STANDARD
        .decode(
            secret
                .strip_prefix("whsec_")
                .expect("secret starts with whsec_"),
        )
        .expect("secret is base64");
    let (Some(id), Some(timestamp), Some(header)) = (
        &request.webhook_id,
        &request.webhook_timestamp,
        &request.webhook_signature,
    ) else {
        return false;
    };
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(&request.body);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(&content);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    header.split(' ').any(|candidate| candidate == expected)
}

/// Verifies a request's `v1a` signatures with a `whpk_` public key, independently of the
/// signer: ed25519 over `{webhook-id}.{webhook-timestamp}.{body}`.
pub fn verify_ed25519(public_key: &str, request: &Received) -> bool {
    use ed25519_dalek::Verifier;
    let bytes: [u8; 32] = STANDARD
        .decode(
            public_key
                .strip_prefix("whpk_")
                .expect("key starts with whpk_"),
        )
        .expect("public key is base64")
        .try_into()
        .expect("public key has 32 bytes");
    let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).expect("valid public key");
    let (Some(id), Some(timestamp), Some(header)) = (
        &request.webhook_id,
        &request.webhook_timestamp,
        &request.webhook_signature,
    ) else {
        return false;
    };
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(&request.body);
    header.split(' ').any(|candidate| {
        let Some(encoded) = candidate.strip_prefix("v1a,") else {
            return false;
        };
        let Some(signature) = STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| ed25519_dalek::Signature::from_slice(&bytes).ok())
        else {
            return false;
        };
        key.verify(&content, &signature).is_ok()
    })
}

/// Generates a random secret in whsec_ form here rather than with the product.
pub fn test_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends one HTTP request to 127.0.0.1 and returns the status and body.
pub async fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Bytes) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .expect("request reaches the server");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

/// Waits until something accepts connections on a loopback port.
pub async fn wait_for_port(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Sends events of one type with these ids through the producer library.
pub async fn send_events(env: &Env, event_type: &str, ids: &[String]) {
    let producer = aurora_producer::EventProducer::new(
        &env.kafka,
        "tests",
        aurora_producer::Encoding::Headers,
    )
    .unwrap();
    for id in ids {
        producer
            .send(aurora_producer::NewEvent {
                id: Some(id.clone()),
                event_type: event_type.to_string(),
                key: None,
                content_type: "application/json".into(),
                payload: format!(r#"{{"id":"{id}"}}"#).into_bytes(),
                tenant_id: None,
            })
            .await
            .unwrap();
    }
}

/// Returns the webhook-ids a receiver got whose path is `path`, in arrival order.
pub fn ids_at(receiver: &Receiver, path: &str) -> Vec<String> {
    receiver
        .received()
        .into_iter()
        .filter(|request| request.path == path)
        .filter_map(|request| request.webhook_id)
        .collect()
}
