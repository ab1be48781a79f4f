//! Metrics, `aurora status` and progress output against a real pipeline: the counters scraped
//! from /metrics over 127.0.0.1 and the status table match the outcomes the receivers caused.

mod support;

use std::process::Stdio;
use std::time::Duration;

use aurora_schemas::{Delivery, Operation, OperationKind};
use support::{
    free_port, http_request, send_events, test_secret, wait_for_port, wait_until, Env, Receiver,
};

/// Returns the value of the sample `series` (name and labels as printed) in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

async fn scrape(port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let (status, body) = http_request("GET", &url, &[], Vec::new()).await;
    assert_eq!(status, 200, "scraping {url} failed");
    String::from_utf8(body.to_vec()).expect("metrics are UTF-8")
}

/// Scrapes until every series has its expected value, for up to 30 s; returns the last
/// scrape. Counters are updated after the broker acknowledges, a moment after the receiver
/// got the request.
async fn scrape_until(port: u16, expected: &[(&str, f64)]) -> String {
    let mut last = String::new();
    for _ in 0..300 {
        last = scrape(port).await;
        let matched = expected
            .iter()
            .all(|(series, value)| sample(&last, series) == Some(*value));
        if matched {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

async fn status_json(env: &Env) -> serde_json::Value {
    let output = env.aurora(&["status", "--json"]).await;
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("status --json prints JSON")
}

fn endpoint_status<'a>(status: &'a serde_json::Value, endpoint_id: &str) -> &'a serde_json::Value {
    status["endpoints"]
        .as_array()
        .expect("endpoints is a list")
        .iter()
        .find(|endpoint| endpoint["endpoint_id"] == endpoint_id)
        .unwrap_or_else(|| panic!("endpoint {endpoint_id} missing from {status:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_status_match_outcomes() {
    let mut env = Env::new("observe").await;
    let orders = Receiver::start().await;
    orders.respond_with(&[500]);
    let leaving = Receiver::start().await;
    leaving.respond_with(&[410]);
    env.add_endpoint("orders", &orders.url("/"), &["order.*"], &test_secret())
        .await;
    env.add_endpoint("leaving", &leaving.url("/"), &["user.*"], &test_secret())
        .await;
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    env.spawn(&["dev", "--no-broker", "--metrics-addr", &address]);
    assert!(
        wait_for_port(port).await,
        "no metrics endpoint on {address}"
    );

    let order_ids: Vec<String> = (0..5).map(|index| format!("order-{index}")).collect();
    send_events(&env, "order.placed", &order_ids).await;
    send_events(&env, "user.deleted", &["user-0".to_string()]).await;
    send_events(&env, "audit.logged", &["audit-0".to_string()]).await;
    // Five deliveries, one of them retried after a 500; one 410 that is dead-lettered.
    assert!(wait_until(Duration::from_secs(60), || orders.count() >= 6).await);
    assert!(wait_until(Duration::from_secs(60), || leaving.count() >= 1).await);

    let expected = [
        ("aurora_deliveries_total{outcome=\"delivered\"}", 5.0),
        ("aurora_deliveries_total{outcome=\"retry_scheduled\"}", 1.0),
        ("aurora_deliveries_total{outcome=\"dead_lettered\"}", 1.0),
        ("aurora_retries_scheduled_total{tier=\"1s\"}", 1.0),
        ("aurora_retries_scheduled_total{tier=\"2s\"}", 0.0),
        ("aurora_retries_released_total{tier=\"1s\"}", 1.0),
        ("aurora_dead_letters_total{reason=\"endpoint_gone\"}", 1.0),
        (
            "aurora_dead_letters_total{reason=\"attempts_exhausted\"}",
            0.0,
        ),
        ("aurora_attempt_duration_seconds_count", 7.0),
        ("aurora_events_routed_total", 7.0),
        ("aurora_events_unmatched_total", 1.0),
        ("aurora_deliveries_routed_total", 6.0),
        ("aurora_quarantined_total{component=\"router\"}", 0.0),
        (
            "aurora_endpoint_deliveries_in_flight{endpoint_id=\"orders\"}",
            0.0,
        ),
        (
            "aurora_endpoint_requests_in_flight{endpoint_id=\"orders\"}",
            0.0,
        ),
    ];
    let scraped = scrape_until(port, &expected).await;
    for (series, value) in expected {
        assert_eq!(
            sample(&scraped, series),
            Some(value),
            "{series} in\n{scraped}"
        );
    }

    // librdkafka reports statistics every 5 s; once the group has committed, lag is 0.
    let group = format!("{}deliverer", env.prefix);
    let lag_prefix = format!(
        "aurora_consumer_lag{{group=\"{group}\",topic=\"{}deliveries\"",
        env.prefix
    );
    let mut lag_lines = Vec::new();
    for _ in 0..200 {
        let scraped = scrape(port).await;
        lag_lines = scraped
            .lines()
            .filter(|line| line.starts_with(&lag_prefix))
            .map(str::to_string)
            .collect();
        if !lag_lines.is_empty() && lag_lines.iter().all(|line| line.ends_with(" 0")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!lag_lines.is_empty(), "no consumer lag for {group}");
    assert!(
        lag_lines.iter().all(|line| line.ends_with(" 0")),
        "{lag_lines:?}"
    );

    // The deliverer commits every 200 ms, so the backlog reaches 0 shortly after the last ack.
    let mut status = serde_json::Value::Null;
    for _ in 0..30 {
        status = status_json(&env).await;
        if endpoint_status(&status, "orders")["backlog"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let orders_status = endpoint_status(&status, "orders");
    assert_eq!(orders_status["state"], "enabled", "{status:#}");
    assert_eq!(orders_status["attempts"], 6, "{status:#}");
    assert_eq!(orders_status["delivered"], 5, "{status:#}");
    assert_eq!(orders_status["backlog"], 0, "{status:#}");
    assert_eq!(orders_status["dead_letters"], 0, "{status:#}");
    assert_eq!(orders_status["last_error"]["status"], 500, "{status:#}");
    let rate = orders_status["success_rate"].as_f64().unwrap();
    assert!((rate - 5.0 / 6.0).abs() < 1e-9, "{status:#}");
    let leaving_status = endpoint_status(&status, "leaving");
    assert_eq!(leaving_status["state"], "disabled", "{status:#}");
    assert_eq!(leaving_status["dead_letters"], 1, "{status:#}");
    assert_eq!(leaving_status["success_rate"], 0.0, "{status:#}");
    assert_eq!(leaving_status["last_error"]["status"], 410, "{status:#}");

    let table = env.aurora(&["status"]).await;
    assert!(table.status.success(), "{table:?}");
    let table = String::from_utf8_lossy(&table.stdout);
    let orders_row = table
        .lines()
        .find(|line| line.starts_with("orders "))
        .unwrap_or_else(|| panic!("no orders row in\n{table}"));
    let cells: Vec<&str> = orders_row.split_whitespace().collect();
    assert_eq!(
        &cells[..6],
        ["orders", "enabled", "6", "83.3%", "0", "0"],
        "{table}"
    );
    assert!(orders_row.contains("HTTP 500"), "{table}");
    let leaving_row = table
        .lines()
        .find(|line| line.starts_with("leaving "))
        .unwrap_or_else(|| panic!("no leaving row in\n{table}"));
    assert!(leaving_row.contains("410 Gone"), "{table}");

    // Redrive shows its progress on stderr; here stderr is a pipe, so plain lines.
    let enabled = env.aurora(&["endpoint", "enable", "--id", "leaving"]).await;
    assert!(enabled.status.success(), "{enabled:?}");
    let redrive = env
        .aurora(&["dlq", "redrive", "--endpoint", "leaving"])
        .await;
    assert!(redrive.status.success(), "{redrive:?}");
    let progress = String::from_utf8_lossy(&redrive.stderr);
    let read_line = format!("Reading {}dead-letter: 1 of 1 (100 %", env.prefix);
    assert!(progress.contains(&read_line), "{progress}");
    assert!(
        progress.contains("Sending back: 1 of 1 (100 %"),
        "{progress}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_backlog_without_deliverer() {
    let mut env = Env::new("backlog").await;
    let receiver = Receiver::start().await;
    env.add_endpoint("waiting", &receiver.url("/"), &["*"], &test_secret())
        .await;
    env.spawn(&["router"]);
    let ids: Vec<String> = (0..3).map(|index| format!("wait-{index}")).collect();
    send_events(&env, "report.ready", &ids).await;
    let deliveries = format!("{}deliveries", env.prefix);
    assert!(
        wait_until(Duration::from_secs(60), || {
            env.read_topic::<Delivery>(&deliveries).len() >= 3
        })
        .await
    );

    let status = status_json(&env).await;
    let waiting = endpoint_status(&status, "waiting");
    assert_eq!(waiting["pending"], 3, "{status:#}");
    assert_eq!(waiting["backlog"], 3, "{status:#}");
    assert_eq!(waiting["attempts"], 0, "{status:#}");
    assert!(waiting["success_rate"].is_null(), "{status:#}");
    let deliverer_group = format!("{}deliverer", env.prefix);
    let group = status["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|group| group["group"] == deliverer_group.as_str())
        .unwrap_or_else(|| panic!("no {deliverer_group} in {status:#}"));
    assert_eq!(group["backlog"], 3, "{status:#}");
    assert_eq!(receiver.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_metrics_count_responses() {
    let mut env = Env::new("ingest-metrics").await;
    let api_port = free_port();
    let metrics_port = free_port();
    let api = format!("127.0.0.1:{api_port}");
    let metrics = format!("127.0.0.1:{metrics_port}");
    env.spawn(&["ingest", "--listen", &api, "--metrics-addr", &metrics]);
    assert!(wait_for_port(api_port).await);
    assert!(wait_for_port(metrics_port).await);

    let url = format!("http://{api}/v1/events");
    let json = [("content-type", "application/json")];
    let body = br#"{"type": "invoice.paid", "payload": {"invoice": 1}}"#.to_vec();
    let (status, _) = http_request("POST", &url, &json, body).await;
    assert_eq!(status, 201);
    let (status, _) = http_request("POST", &url, &json, b"{not json".to_vec()).await;
    assert_eq!(status, 400);

    let scraped = scrape(metrics_port).await;
    let created = "aurora_ingest_requests_total{status=\"201\"}";
    assert_eq!(sample(&scraped, created), Some(1.0), "{scraped}");
    let rejected = "aurora_ingest_requests_total{status=\"400\"}";
    assert_eq!(sample(&scraped, rejected), Some(1.0), "{scraped}");
    let (status, _) =
        http_request("GET", &format!("http://{metrics}/other"), &[], Vec::new()).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_metrics_count_responses() {
    let mut env = Env::new("api-metrics").await;
    let api_port = free_port();
    let metrics_port = free_port();
    let api = format!("127.0.0.1:{api_port}");
    let metrics = format!("127.0.0.1:{metrics_port}");
    env.spawn(&["api", "--listen", &api, "--metrics-addr", &metrics]);
    assert!(wait_for_port(api_port).await);
    assert!(wait_for_port(metrics_port).await);

    let url = format!("http://{api}/v1/endpoints");
    let wrong_key = [("authorization", "Bearer not-a-key")];
    for _ in 0..2 {
        let (status, _) = http_request("GET", &url, &wrong_key, Vec::new()).await;
        assert_eq!(status, 401);
    }

    let scraped = scrape(metrics_port).await;
    let unauthorized = "aurora_api_requests_total{status=\"401\"}";
    assert_eq!(sample(&scraped, unauthorized), Some(2.0), "{scraped}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_follow_reports_progress() {
    let mut env = Env::with_layout(
        "follow",
        support::TEST_RETRY_TIERS,
        &["--events-partitions", "1"],
    )
    .await;
    let receiver = Receiver::start().await;
    env.add_endpoint("archive", &receiver.url("/"), &["*"], &test_secret())
        .await;
    let router = env.spawn(&["router"]);
    env.spawn(&["deliverer"]);
    let ids: Vec<String> = (0..6).map(|index| format!("doc-{index}")).collect();
    send_events(&env, "doc.saved", &ids).await;
    assert!(wait_until(Duration::from_secs(60), || receiver.count() >= 6).await);
    assert!(env.terminate(router).await.success());

    let follow = env
        .command(&[
            "replay",
            "--group",
            "router",
            "--topic",
            "events",
            "--to-offset",
            "2",
            "--follow",
            "--follow-timeout",
            "90s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("aurora replay starts");
    // The reset needs an empty group, so the router restarts once the offsets are reset.
    let reset = format!("{}events", env.prefix);
    let mut restarted = false;
    for _ in 0..300 {
        let committed = aurora_common::read::group_offsets(
            &env.kafka,
            &format!("{}router", env.prefix),
            &reset,
            Duration::from_secs(10),
        )
        .unwrap();
        if committed[0].committed == Some(2) {
            env.spawn(&["router"]);
            restarted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(restarted, "the replay did not reset the offsets");

    let output = tokio::time::timeout(Duration::from_secs(120), follow.wait_with_output())
        .await
        .expect("replay --follow ends")
        .expect("replay output");
    let progress = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{progress}");
    let done = format!(
        "Replaying {reset} in group {}router: 4 of 4 (100 %",
        env.prefix
    );
    assert!(progress.contains(&done), "{progress}");
    assert!(wait_until(Duration::from_secs(60), || receiver.count() >= 10).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_delivery_span() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let mut env = Env::new("json-logs").await;
    let receiver = Receiver::start().await;
    receiver.respond_with(&[500]);
    env.add_endpoint("traced", &receiver.url("/"), &["*"], &test_secret())
        .await;
    env.spawn(&["router"]);
    let mut deliverer = env
        .command(&["deliverer", "--log-format", "json"])
        // The span is at info level: a filter above info leaves log lines without it.
        .env("RUST_LOG", "info,rdkafka=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("deliverer starts");
    let stderr = deliverer.stderr.take().expect("stderr is piped");
    send_events(&env, "trace.me", &["traced-0".to_string()]).await;

    let mut lines = BufReader::new(stderr).lines();
    let failed = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(record) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if record["fields"]["message"] == "Attempt failed; retry scheduled." {
                return Some(record);
            }
        }
        None
    })
    .await
    .expect("the failed attempt is logged within 60 s")
    .expect("the deliverer logs the failed attempt");
    deliverer.kill().await.expect("deliverer stops");

    let span = &failed["span"];
    assert_eq!(span["name"], "delivery", "{failed}");
    assert_eq!(span["endpoint_id"], "traced", "{failed}");
    assert_eq!(
        span["topic"],
        format!("{}deliveries", env.prefix),
        "{failed}"
    );
    assert_eq!(span["attempt"], 1, "{failed}");
    assert!(span["partition"].is_i64(), "{failed}");
    assert_eq!(span["offset"], 0, "{failed}");
    assert_eq!(failed["level"], "WARN", "{failed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_failing_endpoints() {
    let env = Env::new("status-health").await;
    for id in ["shaky", "steady"] {
        env.add_endpoint(id, "http://127.0.0.1:9/", &["*"], &test_secret())
            .await;
    }
    // The deliverer reports health on the operations topic; these are the records it writes.
    let producer = aurora_common::kafka::producer(&env.kafka).unwrap();
    let operations = format!("{}operations", env.prefix);
    for (endpoint_id, kind) in [
        ("shaky", OperationKind::Failing),
        ("steady", OperationKind::Failing),
        ("steady", OperationKind::Recovered),
    ] {
        let operation = Operation {
            endpoint_id: endpoint_id.into(),
            kind,
            reason: "connection refused".into(),
            consecutive_failures: 5,
            at_ms: 1,
        };
        let value = aurora_schemas::encode(&operation).unwrap();
        aurora_common::produce::produce(
            &producer,
            &operations,
            endpoint_id.as_bytes(),
            &value,
            None,
        )
        .await
        .unwrap();
    }

    let status = status_json(&env).await;
    assert_eq!(
        endpoint_status(&status, "shaky")["state"],
        "failing",
        "{status:#}"
    );
    assert_eq!(
        endpoint_status(&status, "steady")["state"],
        "enabled",
        "{status:#}"
    );
}
