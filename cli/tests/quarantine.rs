//! Events that break the contract land in quarantine with a reason; the pipeline goes on.

mod support;

use std::time::Duration;

use aurora_schemas::Quarantined;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use support::{test_secret, wait_until, Env, Receiver};

async fn produce_raw(
    producer: &FutureProducer,
    topic: &str,
    headers: &[(&str, &str)],
    value: &[u8],
) {
    let mut owned = OwnedHeaders::new();
    for (key, value) in headers {
        owned = owned.insert(Header {
            key,
            value: Some(*value),
        });
    }
    // One partition key for all, so the records are routed in this order.
    let record = FutureRecord::to(topic)
        .key("same-key")
        .payload(value)
        .headers(owned);
    producer
        .send(record, Duration::from_secs(10))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_are_quarantined_and_later_ones_delivered() {
    let mut env = Env::new("quarantine").await;
    let receiver = Receiver::start().await;
    env.add_endpoint("all", &receiver.url("/"), &["*"], &test_secret())
        .await;
    env.spawn(&["router"]);
    env.spawn(&["deliverer"]);

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", support::bootstrap())
        .create()
        .unwrap();
    let topic = format!("{}events", env.prefix);
    produce_raw(&producer, &topic, &[("ce_id", "no-type")], b"{}").await;
    produce_raw(
        &producer,
        &topic,
        &[("ce_id", "bad-json"), ("ce_type", "a.b")],
        b"{oops",
    )
    .await;
    produce_raw(
        &producer,
        &topic,
        &[("ce_id", "good"), ("ce_type", "a.b")],
        b"{\"ok\":true}",
    )
    .await;

    assert!(
        wait_until(Duration::from_secs(60), || receiver.count() >= 1).await,
        "the valid event after the bad ones was not delivered"
    );
    assert_eq!(receiver.received()[0].webhook_id.as_deref(), Some("good"));

    let quarantine = format!("{}quarantine", env.prefix);
    let mut records: Vec<Quarantined> = Vec::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            records = env.read_topic(&quarantine);
            records.len() >= 2
        })
        .await
    );
    assert_eq!(records.len(), 2, "{records:?}");
    records.sort_by_key(|record| record.offset);
    assert!(
        records[0].reason.contains("ce_type is missing"),
        "{}",
        records[0].reason
    );
    assert!(
        records[1].reason.contains("not valid JSON"),
        "{}",
        records[1].reason
    );
    assert_eq!(records[1].value.as_deref(), Some(&b"{oops"[..]));
    assert_eq!(records[0].source_topic, topic);
    assert!(records[1]
        .headers
        .iter()
        .any(|header| header.name == "ce_id" && header.value.as_deref() == Some(&b"bad-json"[..])));
}
