//! End-to-end delivery through router and deliverer processes on a real broker, to real
//! receivers on 127.0.0.1.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aurora_producer::{Encoding, EventProducer, NewEvent};
use futures::future::join_all;
use support::{test_secret, verify_signature, wait_until, Env, Receiver};

const EVENT_TYPES: [&str; 3] = ["user.created", "user.deleted", "invoice.paid"];

async fn send_events(env: &Env, encoding: Encoding, events: &[(String, &str, String)]) {
    let producer = EventProducer::new(&env.kafka, "tests", encoding).unwrap();
    for chunk in events.chunks(200) {
        let sends = chunk.iter().map(|(id, event_type, payload)| {
            producer.send(NewEvent {
                id: Some(id.clone()),
                event_type: event_type.to_string(),
                key: None,
                content_type: "application/json".into(),
                payload: payload.clone().into_bytes(),
                tenant_id: None,
            })
        });
        for result in join_all(sends).await {
            result.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_delivers_every_matching_pair_signed() {
    let mut env = Env::new("fanout").await;
    let receiver = Receiver::start().await;
    let endpoints: [(&str, &[&str]); 3] = [
        ("users", &["user.*"]),
        ("invoices", &["invoice.paid"]),
        ("mixed", &["user.created", "invoice.*"]),
    ];
    let mut secrets = BTreeMap::new();
    for (id, filters) in endpoints {
        let secret = test_secret();
        env.add_endpoint(id, &receiver.url(&format!("/{id}")), filters, &secret)
            .await;
        secrets.insert(format!("/{id}"), secret);
    }
    env.spawn(&["router"]);
    env.spawn(&["deliverer"]);

    let events: Vec<(String, &str, String)> = (0..1000)
        .map(|n| {
            let event_type = EVENT_TYPES[n % 3];
            (
                format!("evt-{n}"),
                event_type,
                format!(r#"{{"n":{n},"type":"{event_type}"}}"#),
            )
        })
        .collect();
    send_events(&env, Encoding::Headers, &events).await;

    // Written out per type rather than derived from the filters, so the matcher is checked.
    let subscribers = |event_type: &str| -> &[&str] {
        match event_type {
            "user.created" => &["/users", "/mixed"],
            "user.deleted" => &["/users"],
            "invoice.paid" => &["/invoices", "/mixed"],
            _ => unreachable!(),
        }
    };
    let expected: BTreeSet<(String, String)> = events
        .iter()
        .flat_map(|(id, event_type, _)| {
            subscribers(event_type)
                .iter()
                .map(move |path| (path.to_string(), id.clone()))
        })
        .collect();
    let delivered = wait_until(Duration::from_secs(120), || {
        receiver.count() >= expected.len()
    })
    .await;
    assert!(
        delivered,
        "only {} of {} deliveries arrived",
        receiver.count(),
        expected.len()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    let received = receiver.received();
    let pairs: BTreeSet<(String, String)> = received
        .iter()
        .map(|request| {
            (
                request.path.clone(),
                request.webhook_id.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(pairs, expected);
    assert_eq!(
        received.len(),
        expected.len(),
        "duplicate deliveries arrived"
    );

    let payloads: BTreeMap<&str, &str> = events
        .iter()
        .map(|(id, _, payload)| (id.as_str(), payload.as_str()))
        .collect();
    for request in &received {
        assert!(
            verify_signature(&secrets[&request.path], request),
            "signature of {request:?} does not verify"
        );
        let id = request.webhook_id.as_deref().unwrap();
        assert_eq!(request.body, payloads[id].as_bytes());
        assert_eq!(request.content_type.as_deref(), Some("application/json"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_event_with_documented_headers_is_delivered() {
    let mut env = Env::new("kcat").await;
    let receiver = Receiver::start().await;
    let secret = test_secret();
    env.add_endpoint("kcat", &receiver.url("/kcat"), &["order.*"], &secret)
        .await;
    env.spawn(&["router"]);
    env.spawn(&["deliverer"]);

    // scripts/kcat runs Debian's kcat with the workspace's librdkafka, because the Debian
    // librdkafka (2.0.2) cannot parse tansu's ApiVersions response.
    let kcat_script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/kcat");
    let mut kcat = tokio::process::Command::new(kcat_script)
        .args(["-P", "-b", &support::bootstrap(), "-t"])
        .arg(format!("{}events", env.prefix))
        .args(["-k", "customer-42"])
        .args(["-H", "ce_id=order-1001", "-H", "ce_type=order.shipped"])
        .args(["-H", "content-type=application/json"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kcat is installed (scripts/test installs it)");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = kcat.stdin.take().unwrap();
        stdin
            .write_all(b"{\"order\":1001,\"via\":\"kcat\"}\n")
            .await
            .unwrap();
    }
    assert!(kcat.wait().await.unwrap().success(), "kcat failed");

    assert!(
        wait_until(Duration::from_secs(60), || receiver.count() >= 1).await,
        "kcat event not delivered"
    );
    let request = &receiver.received()[0];
    assert_eq!(request.webhook_id.as_deref(), Some("order-1001"));
    assert_eq!(&request.body[..], br#"{"order":1001,"via":"kcat"}"#);
    assert!(verify_signature(&secret, request));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_envelope_event_is_delivered() {
    let mut env = Env::new("avro").await;
    let receiver = Receiver::start().await;
    let secret = test_secret();
    env.add_endpoint("typed", &receiver.url("/typed"), &["*"], &secret)
        .await;
    env.spawn(&["router"]);
    env.spawn(&["deliverer"]);

    let events = vec![(
        "avro-1".to_string(),
        "invoice.paid",
        r#"{"total":12}"#.to_string(),
    )];
    send_events(&env, Encoding::Avro, &events).await;

    assert!(
        wait_until(Duration::from_secs(60), || receiver.count() >= 1).await,
        "Avro event not delivered"
    );
    let request = &receiver.received()[0];
    assert_eq!(request.webhook_id.as_deref(), Some("avro-1"));
    assert_eq!(&request.body[..], br#"{"total":12}"#);
    assert!(verify_signature(&secret, request));
}
