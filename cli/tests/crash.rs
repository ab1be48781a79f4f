//! Killing router and deliverer mid-stream and restarting them loses no (event, endpoint) pair.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use aurora_producer::{Encoding, EventProducer, NewEvent};
use futures::future::join_all;
use support::{test_secret, wait_until, Env, Receiver};

const EVENTS: usize = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_components_lose_nothing_after_restart() {
    let mut env = Env::new("crash").await;
    let receiver = Receiver::start().await;
    env.add_endpoint("first", &receiver.url("/first"), &["*"], &test_secret())
        .await;
    env.add_endpoint(
        "second",
        &receiver.url("/second"),
        &["job.*"],
        &test_secret(),
    )
    .await;
    let router = env.spawn(&["router"]);
    let deliverer = env.spawn(&["deliverer"]);

    // Events flow in batches while the components are killed.
    let producer = EventProducer::new(&env.kafka, "tests", Encoding::Headers).unwrap();
    let producing = tokio::spawn(async move {
        for batch in 0..EVENTS / 100 {
            let sends = (0..100).map(|n| {
                producer.send(NewEvent {
                    id: Some(format!("job-{}", batch * 100 + n)),
                    event_type: "job.done".into(),
                    key: None,
                    content_type: "application/json".into(),
                    payload: b"{}".to_vec(),
                    tenant_id: None,
                })
            });
            for result in join_all(sends).await {
                result.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    assert!(wait_until(Duration::from_secs(60), || receiver.count() >= 400).await);
    env.kill(router).await;
    env.kill(deliverer).await;
    let at_kill = receiver.count();
    assert!(
        at_kill < 2 * EVENTS,
        "the kill came after everything was delivered"
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    env.spawn(&["router"]);
    env.spawn(&["deliverer"]);
    producing.await.unwrap();

    let expected: BTreeSet<(String, String)> = (0..EVENTS)
        .flat_map(|n| ["/first", "/second"].map(|path| (path.to_string(), format!("job-{n}"))))
        .collect();
    let delivered = |receiver: &Receiver| -> BTreeSet<(String, String)> {
        receiver
            .received()
            .into_iter()
            .map(|request| (request.path, request.webhook_id.unwrap_or_default()))
            .collect()
    };
    let complete = wait_until(Duration::from_secs(180), || {
        delivered(&receiver).len() >= expected.len()
    })
    .await;
    let missing: Vec<_> = expected
        .difference(&delivered(&receiver))
        .take(10)
        .cloned()
        .collect();
    assert!(
        complete,
        "{} pairs missing after restart, for example {missing:?}",
        expected.len() - delivered(&receiver).len()
    );
    assert_eq!(delivered(&receiver), expected);
}
