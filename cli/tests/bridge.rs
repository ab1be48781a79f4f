//! The SNS/SQS bridge against a real SNS and SQS API (moto on 127.0.0.1) and a real broker.
//! The tests cover SNS → SQS → events → signed webhook and events → SNS → SQS, redelivery
//! after a kill, and quarantine or redrive of messages that cannot be mapped.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use aurora_producer::{Encoding, EventProducer, NewEvent};
use aurora_router::IncomingEvent;
use aurora_schemas::Quarantined;
use aws_sdk_sqs::types::QueueAttributeName;
use rdkafka::Message;
use support::aws::{string_attributes, Aws};
use support::{
    free_port, http_request, send_events, test_secret, verify_signature, wait_for_port, wait_until,
    Env, Receiver,
};

/// Long-poll wait of the bridges in tests, short so that a stopped bridge stops quickly.
const WAIT_TIME: &str = "1s";

/// An event read back from the events topic, with its record key.
struct Stored {
    key: Option<String>,
    event: IncomingEvent,
}

/// Reads every event of the test's events topic.
fn read_events(env: &Env) -> Vec<Stored> {
    let topic = format!("{}events", env.prefix);
    let mut events = Vec::new();
    aurora_common::read::read_to_end(
        &env.kafka,
        &topic,
        "bridge-test-reader",
        Duration::from_secs(30),
        |message| {
            let owned = message.detach();
            events.push(Stored {
                key: owned
                    .key()
                    .map(|key| String::from_utf8_lossy(key).into_owned()),
                event: aurora_router::parse_event(&owned).expect("bridged event is valid"),
            });
        },
    )
    .expect("events topic is readable");
    events
}

/// Waits until the events topic contains at least `count` events with this id.
async fn wait_for_event(env: &Env, id: &str, count: usize, timeout: Duration) -> Vec<Stored> {
    let mut found = Vec::new();
    let arrived = wait_until(timeout, || {
        found = read_events(env)
            .into_iter()
            .filter(|stored| stored.event.id == id)
            .collect();
        found.len() >= count
    })
    .await;
    assert!(
        arrived,
        "{} event(s) with id {id} in the events topic after {timeout:?}, expected {count}",
        found.len()
    );
    found
}

fn sqs_in_args<'a>(aws: &'a Aws, queue_url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "bridge",
        "sqs-in",
        "--queue-url",
        queue_url,
        "--endpoint-url",
        &aws.endpoint,
        "--wait-time",
        WAIT_TIME,
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_notification_becomes_signed_webhook() {
    let mut env = Env::new("bridge-e2e").await;
    let aws = Aws::connect().await;
    let receiver = Receiver::start().await;
    let secret = test_secret();
    env.add_endpoint("orders", &receiver.url("/orders"), &["order.*"], &secret)
        .await;
    env.spawn(&["router"]);
    env.spawn(&["deliverer"]);

    let topic_arn = aws.create_topic("orders").await;
    let queue = aws.create_queue("orders-in", &[]).await;
    aws.subscribe(&topic_arn, &queue, false).await;
    // The endpoint comes from AWS_ENDPOINT_URL here, through the standard AWS configuration.
    env.spawn_with_env(
        &[
            "bridge",
            "sqs-in",
            "--queue-url",
            &queue.url,
            "--envelope",
            "sns",
            "--wait-time",
            WAIT_TIME,
        ],
        &[("AWS_ENDPOINT_URL", &aws.endpoint)],
    );

    let payload = r#"{"order":42,"total":"19.90"}"#;
    let message_id = aws
        .publish(&topic_arn, payload, &[("event_type", "order.created")])
        .await;

    assert!(
        wait_until(Duration::from_secs(60), || receiver.count() >= 1).await,
        "no webhook arrived for the SNS message"
    );
    let request = &receiver.received()[0];
    assert_eq!(request.path, "/orders");
    assert_eq!(request.webhook_id.as_deref(), Some(message_id.as_str()));
    assert_eq!(&request.body[..], payload.as_bytes());
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    assert!(
        verify_signature(&secret, request),
        "signature does not verify"
    );
    assert!(
        aws.wait_until_empty(&queue.url, Duration::from_secs(30))
            .await,
        "the message was not deleted from the queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_delivery_maps_message_attributes() {
    let mut env = Env::new("bridge-raw").await;
    let aws = Aws::connect().await;
    let topic_arn = aws.create_topic("invoices").await;
    let queue = aws.create_queue("invoices-raw", &[]).await;
    aws.subscribe(&topic_arn, &queue, true).await;
    env.spawn(&sqs_in_args(
        &aws,
        &queue.url,
        &["--tenant-id", "tn_billing"],
    ));

    let attributes = [
        ("ce_type", "invoice.paid"),
        ("event_id", "inv-7"),
        ("partition_key", "customer-1"),
    ];
    aws.publish(&topic_arn, r#"{"invoice":7}"#, &attributes)
        .await;

    let stored = wait_for_event(&env, "inv-7", 1, Duration::from_secs(30)).await;
    assert_eq!(stored[0].event.event_type, "invoice.paid");
    assert_eq!(stored[0].event.payload, br#"{"invoice":7}"#);
    assert_eq!(stored[0].key.as_deref(), Some("customer-1"));
    assert_eq!(stored[0].event.tenant_id, "tn_billing");
    assert!(
        aws.wait_until_empty(&queue.url, Duration::from_secs(30))
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_publishes_only_selected_types() {
    let mut env = Env::new("bridge-out").await;
    let aws = Aws::connect().await;
    let topic_arn = aws.create_topic("events-out").await;
    let queue = aws.create_queue("events-out", &[]).await;
    aws.subscribe(&topic_arn, &queue, true).await;
    let metrics_port = free_port();
    let metrics_address = format!("127.0.0.1:{metrics_port}");
    let sns_out = [
        "bridge",
        "sns-out",
        "--topic-arn",
        &topic_arn,
        "--event-types",
        "order.*,user.deleted",
        "--endpoint-url",
        &aws.endpoint,
    ];
    let mut with_metrics = sns_out.to_vec();
    with_metrics.extend(["--metrics-addr", metrics_address.as_str()]);
    let first = env.spawn(&with_metrics);
    assert!(wait_for_port(metrics_port).await, "no metrics endpoint");

    send_events(&env, "user.created", &["u-1".into()]).await;
    send_events(&env, "order.created", &["o-1".into(), "o-2".into()]).await;
    send_events(&env, "order", &["o-3".into()]).await;
    send_events(&env, "user.deleted", &["u-2".into()]).await;
    // Another tenant's event of a selected type stays with that tenant.
    let producer = EventProducer::new(&env.kafka, "tests", Encoding::Headers).unwrap();
    let other_tenant = NewEvent {
        id: Some("o-tenant".into()),
        event_type: "order.created".into(),
        key: None,
        content_type: "application/json".into(),
        payload: b"{}".to_vec(),
        tenant_id: Some("tn_other".into()),
    };
    producer.send(other_tenant).await.unwrap();
    // SNS takes at most 256 KiB, so this selected event is quarantined instead.
    let oversized = NewEvent {
        id: Some("o-big".into()),
        event_type: "order.created".into(),
        key: None,
        content_type: "application/json".into(),
        payload: format!(r#"{{"pad":"{}"}}"#, "x".repeat(270_000)).into_bytes(),
        tenant_id: None,
    };
    producer.send(oversized).await.unwrap();

    let mut published = aws
        .drain(&queue.url, Duration::from_secs(5), Duration::from_secs(60))
        .await;
    let ids: BTreeSet<String> = published
        .iter()
        .map(|message| string_attributes(message)["event_id"].clone())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from(["o-1".into(), "o-2".into(), "u-2".into()])
    );
    for message in &published {
        let attributes = string_attributes(message);
        let id = &attributes["event_id"];
        assert_eq!(message.body(), Some(format!(r#"{{"id":"{id}"}}"#).as_str()));
        let expected_type = if id.starts_with('o') {
            "order.created"
        } else {
            "user.deleted"
        };
        assert_eq!(attributes["event_type"], expected_type);
        assert_eq!(attributes["content_type"], "application/json");
    }
    let url = format!("http://{metrics_address}/metrics");
    let expected = [
        "aurora_bridge_sns_published_total 3",
        "aurora_quarantined_total{component=\"bridge-sns-out\"} 1",
    ];
    let mut scraped = String::new();
    for _ in 0..50 {
        let (_, body) = http_request("GET", &url, &[], Vec::new()).await;
        scraped = String::from_utf8_lossy(&body).into_owned();
        if expected
            .iter()
            .all(|line| scraped.lines().any(|found| found == *line))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for line in expected {
        assert!(
            scraped.lines().any(|found| found == line),
            "no {line:?} in {scraped}"
        );
    }

    // Offsets were committed: a new instance publishes only what came after.
    let status = env.terminate(first).await;
    assert!(status.success(), "sns-out exited with {status}");
    env.spawn(&sns_out);
    send_events(&env, "order.shipped", &["o-4".into()]).await;
    published = aws
        .drain(&queue.url, Duration::from_secs(5), Duration::from_secs(60))
        .await;
    let ids: Vec<String> = published
        .iter()
        .map(|message| string_attributes(message)["event_id"].clone())
        .collect();
    assert_eq!(ids, ["o-4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_bridge_redelivers_unacknowledged_message() {
    let mut env = Env::new("bridge-kill").await;
    let aws = Aws::connect().await;
    let queue = aws.create_queue("kill", &[]).await;
    // Deletes wait 60 s for a batch, so the kill comes after the produce and before the
    // delete. The 10 s visibility timeout keeps the first bridge from receiving it twice.
    let slow_deletes = sqs_in_args(
        &aws,
        &queue.url,
        &["--visibility-timeout", "10s", "--delete-interval", "60s"],
    );
    let bridge = env.spawn(&slow_deletes);

    let message_id = aws
        .send(&queue.url, r#"{"n":1}"#, &[("event_type", "job.done")])
        .await;
    wait_for_event(&env, &message_id, 1, Duration::from_secs(30)).await;
    env.kill(bridge).await;
    let copies = read_events(&env)
        .iter()
        .filter(|stored| stored.event.id == message_id)
        .count();
    assert_eq!(
        copies, 1,
        "the first bridge produced the message {copies} times"
    );
    assert_eq!(
        aws.queue_depth(&queue.url).await,
        1,
        "the message left the queue although its delete was still waiting"
    );

    // After the visibility timeout the restarted bridge receives it again.
    env.spawn(&sqs_in_args(&aws, &queue.url, &[]));
    let stored = wait_for_event(&env, &message_id, 2, Duration::from_secs(60)).await;
    assert!(stored
        .iter()
        .all(|found| found.event.event_type == "job.done" && found.event.payload == br#"{"n":1}"#));
    assert!(
        aws.wait_until_empty(&queue.url, Duration::from_secs(30))
            .await,
        "the redelivered message was not deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmappable_messages_are_quarantined_and_deleted() {
    let mut env = Env::new("bridge-quarantine").await;
    let aws = Aws::connect().await;
    let queue = aws.create_queue("unmappable", &[]).await;
    let metrics_port = free_port();
    let metrics_address = format!("127.0.0.1:{metrics_port}");
    let metrics_option = ["--metrics-addr", metrics_address.as_str()];
    env.spawn(&sqs_in_args(&aws, &queue.url, &metrics_option));
    assert!(wait_for_port(metrics_port).await, "no metrics endpoint");

    let not_json = aws
        .send(&queue.url, "not json", &[("event_type", "a.b")])
        .await;
    let no_type = aws.send(&queue.url, "{}", &[("colour", "blue")]).await;
    let good = aws.send(&queue.url, "{}", &[("event_type", "a.b")]).await;

    wait_for_event(&env, &good, 1, Duration::from_secs(30)).await;
    // SQS delivers at least once, and moto can hand one message to both pollers. So a
    // message may be quarantined twice, and the test checks that each is quarantined.
    let quarantine = format!("{}quarantine", env.prefix);
    let mut records: Vec<Quarantined> = Vec::new();
    let keys = |records: &[Quarantined]| -> BTreeSet<Vec<u8>> {
        records
            .iter()
            .filter_map(|record| record.key.clone())
            .collect()
    };
    let arrived = wait_until(Duration::from_secs(30), || {
        records = env.read_topic(&quarantine);
        keys(&records).len() >= 2
    })
    .await;
    assert!(
        arrived,
        "quarantine has {} records, expected 2",
        records.len()
    );
    let expected_keys =
        BTreeSet::from([not_json.clone().into_bytes(), no_type.clone().into_bytes()]);
    assert_eq!(keys(&records), expected_keys, "{records:?}");

    let by_id = |id: &str| {
        records
            .iter()
            .find(|record| record.key.as_deref() == Some(id.as_bytes()))
            .unwrap_or_else(|| panic!("no quarantine record keyed {id}: {records:?}"))
    };
    let record = by_id(&not_json);
    assert!(
        record.reason.contains("not valid JSON"),
        "{}",
        record.reason
    );
    assert_eq!(record.value.as_deref(), Some(&b"not json"[..]));
    assert_eq!(record.source_topic, queue.url);
    let record = by_id(&no_type);
    assert!(record.reason.contains("no event type"), "{}", record.reason);
    assert!(record
        .headers
        .iter()
        .any(|header| header.name == "colour" && header.value.as_deref() == Some(&b"blue"[..])));
    assert!(
        aws.wait_until_empty(&queue.url, Duration::from_secs(30))
            .await,
        "quarantined messages were not deleted"
    );

    let url = format!("http://{metrics_address}/metrics");
    let (status, body) = http_request("GET", &url, &[], Vec::new()).await;
    assert_eq!(status, 200);
    let scraped = String::from_utf8_lossy(&body);
    let lines: Vec<&str> = scraped.lines().collect();
    assert!(
        lines.contains(&"aurora_bridge_sqs_events_total 1"),
        "{scraped}"
    );
    let records: Vec<Quarantined> = env.read_topic(&quarantine);
    let counted = format!(
        "aurora_quarantined_total{{component=\"bridge-sqs-in\"}} {}",
        records.len()
    );
    assert!(
        lines.contains(&counted.as_str()),
        "no {counted:?} in {scraped}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmappable_messages_can_be_left_for_redrive() {
    let mut env = Env::new("bridge-redrive").await;
    let aws = Aws::connect().await;
    let dead_letters = aws.create_queue("redrive-dlq", &[]).await;
    let policy = format!(
        r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":"2"}}"#,
        dead_letters.arn
    );
    let queue = aws
        .create_queue("redrive", &[(QueueAttributeName::RedrivePolicy, &policy)])
        .await;
    env.spawn(&sqs_in_args(
        &aws,
        &queue.url,
        &[
            "--on-unmappable",
            "leave",
            "--visibility-timeout",
            "1s",
            "--delete-interval",
            "200ms",
        ],
    ));

    let bad = aws
        .send(&queue.url, "not json", &[("event_type", "a.b")])
        .await;
    let moved = aws
        .drain(
            &dead_letters.url,
            Duration::from_secs(3),
            Duration::from_secs(60),
        )
        .await;
    let ids: Vec<&str> = moved
        .iter()
        .filter_map(|message| message.message_id())
        .collect();
    assert_eq!(ids, [bad.as_str()], "the dead-letter queue got {ids:?}");

    let quarantine = format!("{}quarantine", env.prefix);
    assert!(env.read_topic::<Quarantined>(&quarantine).is_empty());
    assert!(read_events(&env).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_bridges_share_a_queue() {
    let mut env = Env::new("bridge-shared").await;
    let aws = Aws::connect().await;
    let queue = aws.create_queue("shared", &[]).await;
    env.spawn(&sqs_in_args(&aws, &queue.url, &[]));
    env.spawn(&sqs_in_args(&aws, &queue.url, &[]));

    const MESSAGES: usize = 100;
    for n in 0..MESSAGES {
        let id = format!("m-{n}");
        aws.send(
            &queue.url,
            "{}",
            &[("event_type", "shared.message"), ("event_id", &id)],
        )
        .await;
    }

    let expected: BTreeSet<String> = (0..MESSAGES).map(|n| format!("m-{n}")).collect();
    let mut found = BTreeSet::new();
    let complete = wait_until(Duration::from_secs(60), || {
        found = read_events(&env)
            .into_iter()
            .map(|stored| stored.event.id)
            .collect();
        found.len() >= MESSAGES
    })
    .await;
    assert!(complete, "{} of {MESSAGES} messages arrived", found.len());
    assert_eq!(found, expected);
    assert!(
        aws.wait_until_empty(&queue.url, Duration::from_secs(30))
            .await
    );
}
