//! The OpenAPI document exercised against a running tenant API by schemathesis: generated
//! requests on every operation, including stateful sequences that follow the document's
//! links, must get responses that match the document and are never server errors.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::{http_request, wait_for_port, Env, TEST_ADMIN_KEY};

/// Checks schemathesis applies to every response.
const CHECKS: &str =
    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

fn schemathesis() -> PathBuf {
    std::env::var_os("AURORA_SCHEMATHESIS")
        .map(PathBuf::from)
        .expect("AURORA_SCHEMATHESIS is not set; run the tests with scripts/test, which installs schemathesis")
}

async fn run_schemathesis(base: &str, key: &str, extra: &[&str]) {
    let document = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../api/openapi.yaml");
    let authorization = format!("Authorization: Bearer {key}");
    let scratch = std::env::temp_dir().join(format!("aurora-schemathesis-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let mut command = tokio::process::Command::new(schemathesis());
    command
        .arg("run")
        .arg(&document)
        .args([
            "--url",
            base,
            "--header",
            &authorization,
            "--checks",
            CHECKS,
        ])
        .args(["--max-examples", "25", "--no-color"])
        .args(extra)
        .current_dir(&scratch)
        .kill_on_drop(true);
    let output = tokio::time::timeout(RUN_TIMEOUT, command.output())
        .await
        .expect("schemathesis timed out")
        .expect("schemathesis starts");
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn openapi_document_matches_running_api() {
    let mut env = Env::new("openapi").await;
    let port = support::free_port();
    let listen = format!("127.0.0.1:{port}");
    env.spawn(&["api", "--listen", &listen]);
    assert!(wait_for_port(port).await, "the API did not start");
    let base = format!("http://{listen}");

    let authorization = format!("Bearer {TEST_ADMIN_KEY}");
    let (status, body) = http_request(
        "POST",
        &format!("{base}/v1/tenants"),
        &[
            ("authorization", &authorization),
            ("content-type", "application/json"),
        ],
        br#"{"name": "schemathesis"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 201);
    let created: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let tenant_key = created["api_key"]["key"].as_str().unwrap();

    run_schemathesis(&base, tenant_key, &["--exclude-path-regex", "^/v1/tenants"]).await;
    run_schemathesis(
        &base,
        TEST_ADMIN_KEY,
        &["--include-path-regex", "^/v1/tenants"],
    )
    .await;
}
