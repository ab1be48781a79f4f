//! Failed attempts go through the retry tiers; every attempt is recorded; what exhausts the
//! tiers lands in the dead-letter topic with its history.

mod support;

use std::time::Duration;

use aurora_producer::{Encoding, EventProducer, NewEvent};
use aurora_schemas::{Attempt, AttemptOutcome, Delivery};
use support::{test_secret, wait_until, Env, Receiver};

async fn send(env: &Env, id: &str) {
    EventProducer::new(&env.kafka, "tests", Encoding::Headers)
        .unwrap()
        .send(NewEvent {
            id: Some(id.into()),
            event_type: "payment.failed".into(),
            key: None,
            content_type: "application/json".into(),
            payload: b"{}".to_vec(),
            tenant_id: None,
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_on_third_attempt_after_two_failures() {
    let mut env = Env::new("retry").await;
    let receiver = Receiver::start().await;
    receiver.respond_with(&[500, 503]);
    env.add_endpoint("flaky", &receiver.url("/"), &["*"], &test_secret())
        .await;
    env.spawn(&["router"]);
    env.spawn(&["deliverer"]);
    env.spawn(&["retry"]);
    send(&env, "pay-1").await;

    assert!(
        wait_until(Duration::from_secs(60), || receiver.count() >= 3).await,
        "got {} requests",
        receiver.count()
    );
    let received = receiver.received();
    // Tiers are 1 s and 2 s with ±20 % jitter.
    assert!(received[1].at - received[0].at >= Duration::from_millis(800));
    assert!(received[2].at - received[1].at >= Duration::from_millis(1600));

    let topic = format!("{}attempts", env.prefix);
    let mut attempts: Vec<Attempt> = Vec::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            attempts = env.read_topic(&topic);
            attempts.len() >= 3
        })
        .await
    );
    attempts.sort_by_key(|attempt| attempt.attempt);
    let outcomes: Vec<_> = attempts
        .iter()
        .map(|attempt| (attempt.attempt, attempt.status, attempt.outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (1, Some(500), AttemptOutcome::RetryScheduled),
            (2, Some(503), AttemptOutcome::RetryScheduled),
            (3, Some(204), AttemptOutcome::Delivered),
        ]
    );
    assert!(attempts.iter().all(|attempt| attempt.event_id == "pay-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_delivery_is_dead_lettered_with_history() {
    let mut env = Env::new("dead").await;
    let receiver = Receiver::start().await;
    receiver.respond_with(&[500, 502, 404]);
    env.add_endpoint("broken", &receiver.url("/"), &["*"], &test_secret())
        .await;
    env.spawn(&["router"]);
    env.spawn(&["deliverer"]);
    env.spawn(&["retry"]);
    send(&env, "pay-2").await;

    let topic = format!("{}dead-letter", env.prefix);
    let mut dead: Vec<Delivery> = Vec::new();
    assert!(
        wait_until(Duration::from_secs(60), || {
            dead = env.read_topic(&topic);
            !dead.is_empty()
        })
        .await,
        "nothing was dead-lettered; receiver got {} requests",
        receiver.count()
    );
    assert_eq!(dead.len(), 1);
    let history: Vec<_> = dead[0]
        .attempts
        .iter()
        .map(|attempt| (attempt.attempt, attempt.status))
        .collect();
    assert_eq!(
        history,
        vec![(1, Some(500)), (2, Some(502)), (3, Some(404))]
    );
    assert_eq!(
        dead[0].dead_letter_reason.as_deref(),
        Some("attempts exhausted")
    );
    assert_eq!(dead[0].event_id, "pay-2");
    assert_eq!(receiver.count(), 3);
}
