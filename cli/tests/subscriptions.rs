//! Subscription changes take effect while the pipeline runs.

mod support;

use std::time::Duration;

use aurora_producer::{Encoding, EventProducer, NewEvent};
use support::{test_secret, wait_until, Env, Receiver};

async fn send(producer: &EventProducer, id: &str) {
    producer
        .send(NewEvent {
            id: Some(id.into()),
            event_type: "user.created".into(),
            key: None,
            content_type: "application/json".into(),
            payload: b"{}".to_vec(),
            tenant_id: None,
        })
        .await
        .unwrap();
}

fn ids(receiver: &Receiver) -> Vec<String> {
    receiver
        .received()
        .into_iter()
        .filter_map(|request| request.webhook_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updated_url_and_tombstone_take_effect() {
    let mut env = Env::new("subs").await;
    let first = Receiver::start().await;
    let second = Receiver::start().await;
    let witness = Receiver::start().await;
    let secret = test_secret();
    env.add_endpoint("moving", &first.url("/"), &["user.*"], &secret)
        .await;
    env.add_endpoint("witness", &witness.url("/"), &["*"], &test_secret())
        .await;
    env.spawn(&["router"]);
    env.spawn(&["deliverer"]);
    let producer = EventProducer::new(&env.kafka, "tests", Encoding::Headers).unwrap();

    send(&producer, "before-update").await;
    assert!(wait_until(Duration::from_secs(60), || first.count() == 1).await);

    // Same id, new URL: replaces the subscription.
    env.replace_endpoint("moving", &second.url("/"), &["user.*"], &secret)
        .await;
    send(&producer, "after-update").await;
    assert!(wait_until(Duration::from_secs(60), || second.count() == 1).await);
    assert_eq!(ids(&second), vec!["after-update"]);

    let output = env.aurora(&["endpoint", "remove", "--id", "moving"]).await;
    assert!(
        output.status.success(),
        "endpoint remove failed: {output:?}"
    );
    send(&producer, "after-delete").await;
    // The witness subscribes to everything, so once it has the event the router is past it.
    assert!(wait_until(Duration::from_secs(60), || witness.count() == 3).await);
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(ids(&first), vec!["before-update"]);
    assert_eq!(ids(&second), vec!["after-update"]);

    let listed = env.aurora(&["endpoint", "list"]).await;
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("witness"), "{listed}");
    assert!(!listed.contains("moving"), "{listed}");
}

/// Rotates the secret of endpoint `rotating` through the command line.
async fn rotate_secret(env: &Env, secret: &str, window: &str) {
    let args = [
        "endpoint",
        "rotate-secret",
        "--id",
        "rotating",
        "--window",
        window,
        "--secret",
        secret,
    ];
    let output = env.aurora(&args).await;
    assert!(output.status.success(), "{output:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_secret_signs_with_both_during_window() {
    let mut env = Env::new("rotate").await;
    let receiver = Receiver::start().await;
    let old_secret = test_secret();
    env.add_endpoint("rotating", &receiver.url("/"), &["*"], &old_secret)
        .await;
    env.spawn(&["router"]);
    env.spawn(&["deliverer"]);
    let producer = EventProducer::new(&env.kafka, "tests", Encoding::Headers).unwrap();

    let new_secret = test_secret();
    rotate_secret(&env, &new_secret, "1h").await;
    send(&producer, "during-window").await;
    assert!(wait_until(Duration::from_secs(60), || receiver.count() == 1).await);
    let during = &receiver.received()[0];
    assert!(
        support::verify_signature(&old_secret, during),
        "a receiver with the old secret rejects it"
    );
    assert!(
        support::verify_signature(&new_secret, during),
        "a receiver with the new secret rejects it"
    );

    // A zero window ends the old secret at once.
    let newest_secret = test_secret();
    rotate_secret(&env, &newest_secret, "0s").await;
    send(&producer, "after-window").await;
    assert!(wait_until(Duration::from_secs(60), || receiver.count() == 2).await);
    let after = &receiver.received()[1];
    assert!(support::verify_signature(&newest_secret, after));
    assert!(
        !support::verify_signature(&new_secret, after),
        "the expired secret still signs"
    );
}
