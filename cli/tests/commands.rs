//! The command line as a user meets it: `aurora listen`, the ingest API and configuration
//! errors.

mod support;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use support::{free_port, http_request, test_secret, wait_for_port, wait_until, Env, Receiver};
use tokio::io::{AsyncBufReadExt, BufReader};

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Signs per the specification, written here independently of the product's signer.
fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_accepts_valid_and_rejects_bad_signatures() {
    let secret = test_secret();
    let port = free_port();
    let mut listener = tokio::process::Command::new(support::AURORA)
        .args([
            "listen",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--secret",
            &secret,
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert!(wait_for_port(port).await);
    let url = format!("http://127.0.0.1:{port}/hook");
    let body = br#"{"hello":"world"}"#;
    let timestamp = now_secs();
    let valid = sign(&secret, "msg_1", timestamp, body);
    let timestamp_text = timestamp.to_string();

    let post = |signature: String, timestamp: String| {
        let url = url.clone();
        async move {
            http_request(
                "POST",
                &url,
                &[
                    ("webhook-id", "msg_1"),
                    ("webhook-timestamp", &timestamp),
                    ("webhook-signature", &signature),
                ],
                body.to_vec(),
            )
            .await
            .0
        }
    };
    assert_eq!(post(valid.clone(), timestamp_text.clone()).await, 204);
    assert_eq!(
        post("v1,".into(), timestamp_text.clone()).await,
        401,
        "empty signature"
    );
    assert_eq!(
        post(valid[..valid.len() - 8].to_string(), timestamp_text.clone()).await,
        401,
        "truncated signature"
    );
    assert_eq!(
        post(format!("v1,{}", &valid[3..20]), timestamp_text.clone()).await,
        401,
        "short signature"
    );
    assert_eq!(
        post(String::new(), timestamp_text.clone()).await,
        401,
        "empty header"
    );
    let stale = timestamp - 3600;
    assert_eq!(
        post(sign(&secret, "msg_1", stale, body), stale.to_string()).await,
        401,
        "stale timestamp"
    );
    assert_eq!(
        post(
            sign(&test_secret(), "msg_1", timestamp, body),
            timestamp_text
        )
        .await,
        401,
        "other secret"
    );

    let mut lines = BufReader::new(listener.stdout.take().unwrap()).lines();
    let mut verified = 0;
    let mut rejected = 0;
    while verified + rejected < 7 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if line.starts_with("verified") {
            verified += 1;
            assert!(line.contains(r#"body={"hello":"world"}"#), "{line}");
        } else if line.starts_with("rejected") {
            rejected += 1;
        }
    }
    assert_eq!((verified, rejected), (1, 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_api_acknowledges_and_delivers() {
    let mut env = Env::new("ingest").await;
    let receiver = Receiver::start().await;
    env.add_endpoint("api", &receiver.url("/"), &["signup.*"], &test_secret())
        .await;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    env.spawn(&["ingest", "--listen", &listen, "--max-body-bytes", "2048"]);
    env.spawn(&["router"]);
    env.spawn(&["deliverer"]);
    assert!(wait_for_port(port).await);
    let url = format!("http://{listen}/v1/events");

    let (status, body) = http_request(
        "POST",
        &url,
        &[("content-type", "application/json")],
        br#"{"id":"ing-1","type":"signup.completed","payload":{"plan":"pro"}}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 201, "{body:?}");
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["id"], "ing-1");
    assert!(answer["partition"].as_i64().unwrap() >= 0);
    assert!(answer["offset"].as_i64().unwrap() >= 0);

    assert!(wait_until(Duration::from_secs(60), || receiver.count() >= 1).await);
    assert_eq!(&receiver.received()[0].body[..], br#"{"plan":"pro"}"#);

    let oversized = format!(
        r#"{{"type":"signup.completed","payload":"{}"}}"#,
        "x".repeat(4096)
    );
    let cases: [(Vec<u8>, u16, &str); 5] = [
        (oversized.into_bytes(), 413, "payload_too_large"),
        (b"{not json".to_vec(), 400, "invalid_json"),
        (
            br#"{"type":"a.b","payload":{},"extra":1}"#.to_vec(),
            400,
            "invalid_json",
        ),
        (
            br#"{"type":"has space","payload":{}}"#.to_vec(),
            400,
            "invalid_event",
        ),
        (br#"{"payload":{}}"#.to_vec(), 400, "invalid_json"),
    ];
    for (request, expected_status, expected_code) in cases {
        let (status, body) = http_request("POST", &url, &[], request).await;
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, expected_status, "{error}");
        assert_eq!(error["code"], expected_code, "{error}");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    let (status, _) = http_request("GET", &url, &[], Vec::new()).await;
    assert_eq!(status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_stops_startup_naming_the_setting() {
    let cases: [(&str, &str, &str); 3] = [
        ("AURORA_RETRY_TIERS", "soon", "--retry-tiers"),
        ("AURORA_TOPIC_PREFIX", "bad prefix!", "AURORA_TOPIC_PREFIX"),
        ("AURORA_REQUEST_TIMEOUT", "-3", "--request-timeout"),
    ];
    for (variable, value, named) in cases {
        let output = tokio::process::Command::new(support::AURORA)
            .arg("deliverer")
            .env("AURORA_BOOTSTRAP_SERVERS", support::bootstrap())
            .env(variable, value)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{variable}={value} was accepted");
        assert!(stderr.contains(named), "{variable}={value}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_to_missing_topic_names_fix() {
    let output = tokio::process::Command::new(support::AURORA)
        .args([
            "produce",
            "--type",
            "a.b",
            "--data",
            "{}",
            "--timeout",
            "20s",
        ])
        .env("AURORA_BOOTSTRAP_SERVERS", support::bootstrap())
        .env(
            "AURORA_TOPIC_PREFIX",
            format!("missing{}.", rand::random::<u32>()),
        )
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("was not found"), "{stderr}");
    assert!(stderr.contains("aurora topics create"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_reports_invalid_event_as_such() {
    let env = Env::new("produce-invalid").await;
    let output = env
        .aurora(&[
            "produce",
            "--type",
            "invoice.paid",
            "--data",
            r#"{"invoice": 42"#,
        ])
        .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("not valid JSON"), "{stderr}");
    assert!(!stderr.contains("not acknowledged"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_add_rejects_unusable_urls() {
    let env = Env::new("endpoint-urls").await;
    for (url, reason) in [
        ("http://127.0.0.1:88888/hook", "invalid port"),
        ("http://user:secret@127.0.0.1:9000/hook", "credentials"),
        ("ftp://127.0.0.1/hook", "http://"),
    ] {
        let output = env
            .aurora(&[
                "endpoint", "add", "--id", "bad", "--url", url, "--filter", "*",
            ])
            .await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{url} was accepted");
        assert!(stderr.contains(reason), "{url}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_verifies_ed25519_with_public_key() {
    use ed25519_dalek::Signer;
    let key = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let other = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let public_key = format!("whpk_{}", STANDARD.encode(key.verifying_key().to_bytes()));
    let port = free_port();
    let _listener = tokio::process::Command::new(support::AURORA)
        .args([
            "listen",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--secret",
            &public_key,
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert!(wait_for_port(port).await);
    let body = br#"{"hello":"world"}"#;
    let timestamp = now_secs().to_string();
    let post = |signer: &ed25519_dalek::SigningKey| {
        let mut content = format!("msg_1.{timestamp}.").into_bytes();
        content.extend_from_slice(body);
        let signature = format!("v1a,{}", STANDARD.encode(signer.sign(&content).to_bytes()));
        let url = format!("http://127.0.0.1:{port}/hook");
        let timestamp = timestamp.clone();
        async move {
            let headers = [
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", timestamp.as_str()),
                ("webhook-signature", signature.as_str()),
            ];
            http_request("POST", &url, &headers, body.to_vec()).await.0
        }
    };
    assert_eq!(post(&key).await, 204);
    assert_eq!(post(&other).await, 401, "a signature by another key passed");
}
