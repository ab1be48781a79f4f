//! Retries that hold up: Retry-After, rate limits that isolate endpoints, 410 Gone with
//! re-enable and redrive, replay, a restarted retry stage, and graceful shutdown.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use aurora_schemas::{Delivery, Operation, OperationKind};
use support::{ids_at, send_events, test_secret, wait_until, Env, Receiver};

fn ids(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|n| format!("{prefix}-{n}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_delays_next_attempt() {
    let mut env = Env::new("retry-after").await;
    let receiver = Receiver::start().await;
    receiver.respond_with_retry_after(429, "3");
    env.add_endpoint("busy", &receiver.url("/"), &["*"], &test_secret())
        .await;
    env.spawn(&["router"]);
    env.spawn(&["deliverer"]);
    env.spawn(&["retry"]);
    send_events(&env, "report.ready", &ids("busy", 1)).await;

    assert!(wait_until(Duration::from_secs(60), || receiver.count() >= 2).await);
    let received = receiver.received();
    let waited = received[1].at - received[0].at;
    assert!(
        waited >= Duration::from_secs(3),
        "second attempt came after {waited:?}, before Retry-After: 3"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_endpoint_does_not_slow_others() {
    // One deliveries partition, so both endpoints share it.
    let mut env = Env::with_layout(
        "rate",
        support::TEST_RETRY_TIERS,
        &["--deliveries-partitions", "1"],
    )
    .await;
    let receiver = Receiver::start().await;
    let limited = receiver.url("/limited");
    let output = env
        .aurora(&[
            "endpoint",
            "add",
            "--id",
            "limited",
            "--url",
            &limited,
            "--rate-limit",
            "5",
            "--burst",
            "1",
            "--secret",
            &test_secret(),
        ])
        .await;
    assert!(output.status.success(), "{output:?}");
    env.add_endpoint("fast", &receiver.url("/fast"), &["*"], &test_secret())
        .await;
    env.spawn(&["router"]);
    env.spawn(&["deliverer"]);
    send_events(&env, "tick", &ids("tick", 50)).await;

    let done = wait_until(Duration::from_secs(60), || {
        ids_at(&receiver, "/limited").len() >= 50
    })
    .await;
    assert!(
        done,
        "limited endpoint got {} of 50",
        ids_at(&receiver, "/limited").len()
    );
    let received = receiver.received();
    let limited_times: Vec<_> = received
        .iter()
        .filter(|request| request.path == "/limited")
        .map(|request| request.at)
        .collect();
    let fast_times: Vec<_> = received
        .iter()
        .filter(|request| request.path == "/fast")
        .map(|request| request.at)
        .collect();
    assert_eq!(fast_times.len(), 50);

    // 5 per second with a burst of 1: 49 intervals of 200 ms at least, less timer slack.
    let span = *limited_times.last().unwrap() - limited_times[0];
    assert!(
        span >= Duration::from_millis(9_000),
        "50 requests in {span:?} exceed 5 per second"
    );
    // Had the limited endpoint held the partition, the unlimited one would finish with it,
    // near its 50th request. It finishes while the limited one is not past its 30th (6 s in),
    // which leaves room for the seconds the 50 events take to produce.
    assert!(
        fast_times.last().unwrap() < &limited_times[30],
        "the fast endpoint was held back by the limited one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_then_redrive_delivers_kept() {
    let mut env = Env::new("gone").await;
    let receiver = Receiver::start().await;
    receiver.respond_with(&[410]);
    let secret = test_secret();
    env.add_endpoint("leaving", &receiver.url("/"), &["*"], &secret)
        .await;
    env.spawn(&["router"]);
    env.spawn(&["deliverer"]);
    env.spawn(&["retry"]);

    send_events(&env, "order.placed", &ids("first", 1)).await;
    let dead_letter = format!("{}dead-letter", env.prefix);
    let mut dead: Vec<Delivery> = Vec::new();
    assert!(
        wait_until(Duration::from_secs(60), || {
            dead = env.read_topic(&dead_letter);
            !dead.is_empty()
        })
        .await
    );
    assert_eq!(
        dead[0].dead_letter_reason.as_deref(),
        Some("endpoint returned 410 Gone")
    );

    // Events for the disabled endpoint are kept in the dead-letter topic, not sent.
    send_events(&env, "order.placed", &ids("later", 2)).await;
    assert!(
        wait_until(Duration::from_secs(60), || {
            dead = env.read_topic(&dead_letter);
            dead.len() >= 3
        })
        .await
    );
    let later: Vec<&Delivery> = dead
        .iter()
        .filter(|delivery| delivery.event_id.starts_with("later"))
        .collect();
    assert_eq!(later.len(), 2, "{dead:?}");
    let kept_reason = Some("endpoint disabled: endpoint returned 410 Gone");
    assert!(
        later
            .iter()
            .all(|delivery| delivery.dead_letter_reason.as_deref() == kept_reason),
        "{dead:?}"
    );
    assert_eq!(receiver.count(), 1);
    let operations: Vec<Operation> = env.read_topic(&format!("{}operations", env.prefix));
    assert!(
        operations
            .iter()
            .any(|operation| operation.kind == OperationKind::Disabled),
        "{operations:?}"
    );

    // While the endpoint is disabled, a dry run lists the deliveries and warns that the real
    // run would refuse.
    let preview = env
        .aurora(&["dlq", "redrive", "--endpoint", "leaving", "--dry-run"])
        .await;
    assert!(preview.status.success(), "{preview:?}");
    assert!(
        String::from_utf8_lossy(&preview.stderr).contains("is disabled"),
        "{preview:?}"
    );
    let rejected = env
        .aurora(&["dlq", "redrive", "--endpoint", "leaving"])
        .await;
    assert!(!rejected.status.success(), "{rejected:?}");

    let output = env.aurora(&["endpoint", "enable", "--id", "leaving"]).await;
    assert!(output.status.success(), "{output:?}");
    let output = env
        .aurora(&["dlq", "redrive", "--endpoint", "leaving"])
        .await;
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("Sent 3 deliveries"),
        "{output:?}"
    );

    assert!(wait_until(Duration::from_secs(60), || receiver.count() >= 4).await);
    let redelivered: BTreeSet<String> = ids_at(&receiver, "/").into_iter().skip(1).collect();
    let expected: BTreeSet<String> = ["first-0", "later-0", "later-1"].map(String::from).into();
    assert_eq!(redelivered, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_by_offset_redelivers_exact_range() {
    let mut env = Env::with_layout(
        "replay",
        support::TEST_RETRY_TIERS,
        &["--events-partitions", "1"],
    )
    .await;
    let receiver = Receiver::start().await;
    env.add_endpoint("archive", &receiver.url("/"), &["*"], &test_secret())
        .await;
    let router = env.spawn(&["router"]);
    env.spawn(&["deliverer"]);
    send_events(&env, "doc.saved", &ids("doc", 10)).await;
    assert!(wait_until(Duration::from_secs(60), || receiver.count() >= 10).await);

    // Kafka accepts the reset only while the group has no members.
    assert!(env.terminate(router).await.success());
    let dry = env
        .aurora(&[
            "replay",
            "--group",
            "router",
            "--topic",
            "events",
            "--to-offset",
            "6",
            "--dry-run",
        ])
        .await;
    assert!(dry.status.success(), "{dry:?}");
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("4 records will be processed again"),
        "{dry:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.count(), 10, "a dry run changed something");

    // A topic the group does not consume is rejected, and a dry run warns about a group
    // whose consumers still run.
    let wrong_topic = env
        .aurora(&[
            "replay",
            "--group",
            "router",
            "--topic",
            "deliveries",
            "--to-earliest",
        ])
        .await;
    assert!(!wrong_topic.status.success(), "{wrong_topic:?}");
    assert!(
        String::from_utf8_lossy(&wrong_topic.stderr).contains("consumes"),
        "{wrong_topic:?}"
    );
    let running = env
        .aurora(&[
            "replay",
            "--group",
            "deliverer",
            "--topic",
            "deliveries",
            "--to-earliest",
            "--dry-run",
        ])
        .await;
    assert!(running.status.success(), "{running:?}");
    assert!(
        String::from_utf8_lossy(&running.stderr).contains("active member"),
        "{running:?}"
    );

    let output = env
        .aurora(&[
            "replay",
            "--group",
            "router",
            "--topic",
            "events",
            "--to-offset",
            "6",
        ])
        .await;
    assert!(output.status.success(), "{output:?}");
    env.spawn(&["router"]);
    assert!(wait_until(Duration::from_secs(60), || receiver.count() >= 14).await);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Deliveries run concurrently, so the replayed ones may arrive in any order.
    let mut replayed: Vec<String> = ids_at(&receiver, "/").into_iter().skip(10).collect();
    replayed.sort();
    assert_eq!(replayed, ids("doc", 10)[6..].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_retry_stage_loses_no_held_records() {
    let mut env = Env::with_layout("retry-restart", "4s,8s", &[]).await;
    let receiver = Receiver::start().await;
    receiver.respond_with(&[500; 20]);
    env.add_endpoint("flaky", &receiver.url("/"), &["*"], &test_secret())
        .await;
    env.spawn(&["router"]);
    env.spawn(&["deliverer"]);
    let retry = env.spawn(&["retry"]);
    send_events(&env, "sync.run", &ids("sync", 20)).await;

    // All 20 first attempts failed; their retries are held for about 4 s.
    assert!(wait_until(Duration::from_secs(60), || receiver.count() >= 20).await);
    env.kill(retry).await;
    env.spawn(&["retry"]);

    assert!(
        wait_until(Duration::from_secs(90), || receiver.count() >= 40).await,
        "only {} of 40 requests",
        receiver.count()
    );
    let delivered: BTreeSet<String> = ids_at(&receiver, "/").into_iter().skip(20).collect();
    assert_eq!(delivered, ids("sync", 20).into_iter().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_accounts_for_every_pair() {
    let mut env = Env::new("sigterm").await;
    let receiver = Receiver::start().await;
    env.add_endpoint("steady", &receiver.url("/"), &["*"], &test_secret())
        .await;
    let router = env.spawn(&["router"]);
    let deliverer = env.spawn(&["deliverer"]);
    let events = ids("term", 1000);
    let producer_env_kafka = env.kafka.clone();
    let to_send = events.clone();
    let producing = tokio::spawn(async move {
        let producer = aurora_producer::EventProducer::new(
            &producer_env_kafka,
            "tests",
            aurora_producer::Encoding::Headers,
        )
        .unwrap();
        for id in to_send {
            producer
                .send(aurora_producer::NewEvent {
                    id: Some(id),
                    event_type: "term.tick".into(),
                    key: None,
                    content_type: "application/json".into(),
                    payload: b"{}".to_vec(),
                    tenant_id: None,
                })
                .await
                .unwrap();
        }
    });

    assert!(wait_until(Duration::from_secs(60), || receiver.count() >= 100).await);
    assert!(
        env.terminate(router).await.success(),
        "router exited with an error"
    );
    assert!(
        env.terminate(deliverer).await.success(),
        "deliverer exited with an error"
    );
    env.spawn(&["router"]);
    env.spawn(&["deliverer"]);
    producing.await.unwrap();

    let all: BTreeSet<String> = events.into_iter().collect();
    let complete = wait_until(Duration::from_secs(120), || {
        ids_at(&receiver, "/").into_iter().collect::<BTreeSet<_>>() == all
    })
    .await;
    let dead: Vec<Delivery> = env.read_topic(&format!("{}dead-letter", env.prefix));
    assert!(dead.is_empty(), "{} dead letters", dead.len());
    assert!(
        complete,
        "{} of {} events delivered",
        ids_at(&receiver, "/")
            .into_iter()
            .collect::<BTreeSet<_>>()
            .len(),
        all.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_endpoint_is_disabled_automatically() {
    let mut env = Env::new("health").await;
    let receiver = Receiver::start().await;
    receiver.respond_with(&[500; 10]);
    env.add_endpoint("down", &receiver.url("/"), &["*"], &test_secret())
        .await;
    env.spawn(&["router"]);
    let health = [
        "--health-failing-after",
        "2",
        "--health-disable-after",
        "3",
        "--health-disable-span",
        "0s",
    ];
    let mut deliverer = vec!["deliverer"];
    deliverer.extend_from_slice(&health);
    env.spawn(&deliverer);
    env.spawn(&["retry"]);
    send_events(&env, "job.failed", &ids("down", 3)).await;

    let operations_topic = format!("{}operations", env.prefix);
    let mut operations: Vec<Operation> = Vec::new();
    assert!(
        wait_until(Duration::from_secs(60), || {
            operations = env.read_topic(&operations_topic);
            operations
                .iter()
                .any(|operation| operation.kind == OperationKind::Disabled)
        })
        .await,
        "no disabled event: {operations:?}"
    );
    // Concurrent deliveries may write the two events in either order; the counts tell them apart.
    let mut events: Vec<(OperationKind, i32)> = operations
        .iter()
        .map(|operation| (operation.kind, operation.consecutive_failures))
        .collect();
    events.sort_by_key(|(_, failures)| *failures);
    assert_eq!(
        events,
        vec![(OperationKind::Failing, 2), (OperationKind::Disabled, 3)]
    );

    let listed = env.aurora(&["endpoint", "list"]).await;
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    let row = listed
        .lines()
        .find(|line| line.starts_with("down"))
        .unwrap_or_default();
    assert!(row.contains("false"), "endpoint still enabled: {listed}");

    let dead_letter = format!("{}dead-letter", env.prefix);
    let mut dead: Vec<Delivery> = Vec::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            dead = env.read_topic(&dead_letter);
            !dead.is_empty()
        })
        .await
    );
    assert!(
        dead.iter()
            .any(|delivery| delivery.dead_letter_reason.as_deref()
                == Some("endpoint disabled after 3 consecutive failures")),
        "{dead:?}"
    );
}
