//! The SSRF guard in the pipeline: a refused delivery is recorded as an attempt with the
//! reason, and the endpoint never receives a connection.

mod support;

use std::time::Duration;

use aurora_schemas::{Attempt, AttemptOutcome};
use support::{send_events, test_secret, wait_until, Env, Receiver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_delivery_is_recorded_with_reason() {
    let mut env = Env::new("guard").await;
    let receiver = Receiver::start().await;
    // 127.0.0.2 is loopback too, but only 127.0.0.1 is allowlisted for this deliverer.
    let refused_url = format!("http://127.0.0.2:{}/hook", receiver.address.port());
    env.add_endpoint("internal", &refused_url, &["*"], &test_secret())
        .await;
    env.add_endpoint("public", &receiver.url("/ok"), &["*"], &test_secret())
        .await;
    env.spawn(&["router"]);
    env.spawn(&["deliverer", "--allow-subnet", "127.0.0.1/32"]);
    send_events(&env, "probe.sent", &["probe-1".to_string()]).await;

    let topic = format!("{}attempts", env.prefix);
    let mut attempts: Vec<Attempt> = Vec::new();
    assert!(
        wait_until(Duration::from_secs(60), || {
            attempts = env.read_topic(&topic);
            attempts
                .iter()
                .any(|attempt| attempt.endpoint_id == "internal")
        })
        .await
    );
    let refused = attempts
        .iter()
        .find(|attempt| attempt.endpoint_id == "internal")
        .unwrap();
    let reason = refused.error.as_deref().unwrap_or_default();
    assert!(reason.contains("refused by the SSRF guard"), "{reason}");
    assert!(
        reason.contains("127.0.0.2 is in 127.0.0.0/8 (loopback)"),
        "{reason}"
    );
    assert_eq!(refused.status, None);
    assert_eq!(refused.outcome, AttemptOutcome::RetryScheduled);

    assert!(wait_until(Duration::from_secs(30), || receiver.count() >= 1).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let paths: Vec<String> = receiver
        .received()
        .into_iter()
        .map(|request| request.path)
        .collect();
    assert_eq!(paths, vec!["/ok"], "the refused endpoint was reached");
}
