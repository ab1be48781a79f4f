//! The tenant API against a real broker: tenant isolation on every route, idempotency keys,
//! secret rotation, ed25519 signing, sealed secrets, secrets kept out of logs and attempts,
//! with deliveries to real receivers on 127.0.0.1.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use support::{
    http_request, wait_for_port, wait_until, Env, Receiver, TEST_ADMIN_KEY, TEST_SECRET_KEY,
};

const DEADLINE: Duration = Duration::from_secs(60);

/// A running `aurora api` and the keys to call it.
struct Api {
    base: String,
}

impl Api {
    async fn start(env: &mut Env) -> Api {
        let port = support::free_port();
        let listen = format!("127.0.0.1:{port}");
        env.spawn(&["api", "--listen", &listen]);
        assert!(wait_for_port(port).await, "the API did not start");
        Api {
            base: format!("http://{listen}"),
        }
    }

    async fn call(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
        let authorization = format!("Bearer {key}");
        let mut headers = vec![("authorization", authorization.as_str())];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let body = body
            .map(|body| body.to_string().into_bytes())
            .unwrap_or_default();
        let (status, bytes) =
            http_request(method, &format!("{}{path}", self.base), &headers, body).await;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("{method} {path} returned non-JSON: {bytes:?}"))
        };
        (status, value)
    }

    /// Creates a tenant; returns its id and API key.
    async fn tenant(&self, name: &str) -> (String, String) {
        let (status, body) = self
            .call(
                "POST",
                "/v1/tenants",
                TEST_ADMIN_KEY,
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["id"].as_str().unwrap().to_string(),
            body["api_key"]["key"].as_str().unwrap().to_string(),
        )
    }

    /// Creates an endpoint; returns the response body.
    async fn endpoint(&self, key: &str, request: Value) -> Value {
        let (status, body) = self.call("POST", "/v1/endpoints", key, Some(request)).await;
        assert_eq!(status, 201, "{body}");
        body
    }

    async fn event(&self, key: &str, event_type: &str) -> String {
        let request = json!({"type": event_type, "payload": {"n": 1}});
        let (status, body) = self.call("POST", "/v1/events", key, Some(request)).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }
}

#[tokio::test]
async fn tenants_see_only_their_own_resources() {
    let mut env = Env::new("api-isolation").await;
    let api = Api::start(&mut env).await;
    let receiver = Receiver::start().await;
    let (_, key_a) = api.tenant("a").await;
    let (_, key_b) = api.tenant("b").await;
    let created = api
        .endpoint(
            &key_a,
            json!({"url": receiver.url("/a"), "description": "mine"}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let event_id = api.event(&key_a, "invoice.paid").await;

    let routes = [
        ("GET", format!("/v1/endpoints/{id}"), None),
        (
            "PATCH",
            format!("/v1/endpoints/{id}"),
            Some(json!({"description": "theirs"})),
        ),
        ("POST", format!("/v1/endpoints/{id}/disable"), None),
        ("POST", format!("/v1/endpoints/{id}/enable"), None),
        ("GET", format!("/v1/endpoints/{id}/secret"), None),
        ("POST", format!("/v1/endpoints/{id}/secret/rotate"), None),
        ("GET", format!("/v1/endpoints/{id}/attempts"), None),
        ("DELETE", format!("/v1/endpoints/{id}"), None),
    ];
    for (method, path, body) in routes {
        let (status, response) = api.call(method, &path, &key_b, body).await;
        assert_eq!(status, 404, "{method} {path} by another tenant: {response}");
        assert_eq!(response["code"], "not_found");
    }
    let (status, listed) = api.call("GET", "/v1/endpoints", &key_b, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        listed["data"],
        json!([]),
        "another tenant lists the endpoint"
    );
    let (status, attempts) = api
        .call(
            "GET",
            &format!("/v1/events/{event_id}/attempts"),
            &key_b,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(attempts["data"], json!([]));

    // Nothing another tenant tried changed the endpoint.
    let (status, endpoint) = api
        .call("GET", &format!("/v1/endpoints/{id}"), &key_a, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(endpoint["description"], "mine");
    assert_eq!(endpoint["enabled"], true);
    let (_, secret) = api
        .call("GET", &format!("/v1/endpoints/{id}/secret"), &key_a, None)
        .await;
    assert_eq!(
        secret["secret"], created["secret"],
        "another tenant rotated the secret"
    );
    let (_, listed) = api.call("GET", "/v1/endpoints", &key_a, None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn keys_are_checked_on_every_route() {
    let mut env = Env::new("api-keys").await;
    let api = Api::start(&mut env).await;
    let (tenant_id, key) = api.tenant("a").await;

    let (status, body) = api.call("GET", "/v1/endpoints", "ak_wrong", None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "unauthorized");
    let (status, _) = http_request("GET", &format!("{}/v1/endpoints", api.base), &[], vec![]).await;
    assert_eq!(status, 401);
    let (status, body) = api.call("GET", "/v1/tenants", &key, None).await;
    assert_eq!(status, 403, "a tenant key reaches an admin route: {body}");
    let (status, _) = api.call("GET", "/v1/endpoints", TEST_ADMIN_KEY, None).await;
    assert_eq!(status, 403, "the admin key reaches a tenant route");

    // A second key works; revoking the first stops it at once.
    let (status, second) = api
        .call(
            "POST",
            &format!("/v1/tenants/{tenant_id}/api-keys"),
            TEST_ADMIN_KEY,
            None,
        )
        .await;
    assert_eq!(status, 201);
    let second_key = second["key"].as_str().unwrap();
    let (_, tenant) = api
        .call(
            "GET",
            &format!("/v1/tenants/{tenant_id}"),
            TEST_ADMIN_KEY,
            None,
        )
        .await;
    let first_id = tenant["api_keys"][0]["id"].as_str().unwrap().to_string();
    assert!(
        !tenant.to_string().contains(&key),
        "the key itself is listed"
    );
    let (status, _) = api
        .call(
            "DELETE",
            &format!("/v1/tenants/{tenant_id}/api-keys/{first_id}"),
            TEST_ADMIN_KEY,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = api.call("GET", "/v1/endpoints", &key, None).await;
    assert_eq!(status, 401, "a revoked key still works");
    let (status, _) = api.call("GET", "/v1/endpoints", second_key, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn invalid_requests_get_json_errors() {
    let mut env = Env::new("api-errors").await;
    let api = Api::start(&mut env).await;
    let (_, key) = api.tenant("a").await;
    let cases = [
        (json!({"url": "ftp://127.0.0.1/x"}), "invalid_url"),
        (json!({"url": "not a url"}), "invalid_url"),
        (json!({"url": "http://user:pw@127.0.0.1/x"}), "invalid_url"),
        (json!({"url": "http://10.0.0.1/x"}), "url_forbidden"),
        (
            json!({"url": "http://[::ffff:169.254.169.254]/x"}),
            "url_forbidden",
        ),
        (json!({"url": "http://0xa000001/x"}), "url_forbidden"),
        (json!({"url": "http://0/x"}), "url_forbidden"),
        (json!({"url": "http://127.0.0.1:0/x"}), "invalid_url"),
        (json!({"url": "http://127.0.0.1:65536/x"}), "invalid_url"),
        (json!({"url": "http://[::ffff:a.b]/x"}), "invalid_url"),
        (
            json!({"url": "http://127.0.0.1/x", "event_types": ["a".repeat(300)]}),
            "invalid_event_types",
        ),
        (
            json!({"url": "http://127.0.0.1/x", "event_types": ["a.*.b"]}),
            "invalid_event_types",
        ),
        (
            json!({"url": "http://127.0.0.1/x", "event_types": []}),
            "invalid_event_types",
        ),
        (
            json!({"url": "http://127.0.0.1/x", "rate_limit": {"per_second": 0}}),
            "invalid_rate_limit",
        ),
        (
            json!({"url": "http://127.0.0.1/x", "secret": "whsec_short"}),
            "invalid_secret",
        ),
        (
            json!({"url": "http://127.0.0.1/x", "colour": "red"}),
            "invalid_json",
        ),
        (json!([1, 2]), "invalid_json"),
    ];
    for (request, code) in cases {
        let (status, body) = api
            .call("POST", "/v1/endpoints", &key, Some(request.clone()))
            .await;
        assert_eq!(status, 400, "{request} → {body}");
        assert_eq!(body["code"], code, "{request} → {body}");
        assert!(body["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()));
    }

    let huge = json!({"type": "a", "payload": {"blob": "x".repeat(2 * 1024 * 1024)}});
    let (status, body) = api.call("POST", "/v1/events", &key, Some(huge)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    // Under the body limit but over the broker's record size limit.
    let near_limit = json!({"type": "a", "payload": {"blob": "x".repeat(1_020_000)}});
    let (status, body) = api.call("POST", "/v1/events", &key, Some(near_limit)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    let (status, body) = api.call("GET", "/v1/endpoints?limit=0", &key, None).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = api.call("PUT", "/v1/endpoints", &key, None).await;
    assert_eq!(status, 405, "{body}");
    let (status, body) = api.call("GET", "/v1/nothing", &key, None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "not_found");
}

#[tokio::test]
async fn idempotency_key_produces_one_event() {
    let mut env = Env::new("api-idempotency").await;
    let api = Api::start(&mut env).await;
    let (_, key) = api.tenant("a").await;
    let send = |body: Value, idempotency_key: &'static str| {
        let url = format!("{}/v1/events", api.base);
        let authorization = format!("Bearer {key}");
        async move {
            let headers = [
                ("authorization", authorization.as_str()),
                ("content-type", "application/json"),
                ("idempotency-key", idempotency_key),
            ];
            http_request("POST", &url, &headers, body.to_string().into_bytes()).await
        }
    };
    let request = json!({"type": "order.created", "payload": {"order": 42}});

    let (first_status, first) = send(request.clone(), "order-42").await;
    let (second_status, second) = send(request.clone(), "order-42").await;
    assert_eq!(first_status, 201);
    assert_eq!(second_status, 201);
    assert_eq!(first, second, "the repeated request got another response");
    let (status, _) = send(json!({"type": "order.created", "payload": {}}), "order-42").await;
    assert_eq!(status, 422, "a reused key with another body was accepted");
    let (status, _) = send(request.clone(), "order-43").await;
    assert_eq!(status, 201);
    let authorization = format!("Bearer {key}");
    let headers = [
        ("authorization", authorization.as_str()),
        ("content-type", "application/json"),
        ("idempotency-key", "order-44"),
        ("idempotency-key", "order-45"),
    ];
    let url = format!("{}/v1/events", api.base);
    let (status, body) = http_request("POST", &url, &headers, request.to_string().into()).await;
    assert_eq!(
        status, 400,
        "two Idempotency-Key headers were accepted: {body:?}"
    );

    // A second instance has never seen the key, so it reads the response from the idempotency topic.
    let other = Api::start(&mut env).await;
    let send_other = |body: Value| {
        let url = format!("{}/v1/events", other.base);
        let authorization = format!("Bearer {key}");
        async move {
            let headers = [
                ("authorization", authorization.as_str()),
                ("content-type", "application/json"),
                ("idempotency-key", "order-42"),
            ];
            http_request("POST", &url, &headers, body.to_string().into_bytes()).await
        }
    };
    let (status, replayed) = send_other(request).await;
    assert_eq!(status, 201);
    assert_eq!(replayed, first, "another instance produced the event again");
    let (status, _) = send_other(json!({"type": "order.created", "payload": {}})).await;
    assert_eq!(
        status, 422,
        "another instance accepted a reused key with another body"
    );

    let events = support::read_raw(&env.kafka, &env.kafka.topics().events);
    assert_eq!(events.len(), 2, "expected one event per key: {events:?}");
}

#[tokio::test]
async fn idempotency_key_expires_after_window() {
    let mut env = Env::new("api-idempotency-window").await;
    let mut instances = Vec::new();
    for _ in 0..2 {
        let port = support::free_port();
        let listen = format!("127.0.0.1:{port}");
        env.spawn(&["api", "--listen", &listen, "--idempotency-window", "3s"]);
        assert!(wait_for_port(port).await, "the API did not start");
        instances.push(Api {
            base: format!("http://{listen}"),
        });
    }
    let (first_api, second_api) = (&instances[0], &instances[1]);
    let (_, key) = first_api.tenant("a").await;
    let send = |api: &Api, body: &Value| {
        let url = format!("{}/v1/events", api.base);
        let authorization = format!("Bearer {key}");
        let body = body.to_string().into_bytes();
        async move {
            let headers = [
                ("authorization", authorization.as_str()),
                ("content-type", "application/json"),
                ("idempotency-key", "order-42"),
            ];
            let (status, bytes) = http_request("POST", &url, &headers, body).await;
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };
    let order = json!({"type": "order.created", "payload": {"order": 42}});
    let changed = json!({"type": "order.created", "payload": {"order": 43}});

    let (status, first) = send(first_api, &order).await;
    assert_eq!(status, 201, "{first}");
    // The second instance learns of the key halfway through the window.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, replayed) = send(second_api, &order).await;
    assert_eq!(status, 201, "{replayed}");
    assert_eq!(replayed, first, "the second instance did not replay");

    // Once the window of the first response has passed, the second instance produces again,
    // and the first instance then finds that new response on the topic.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (status, again) = send(second_api, &order).await;
    assert_eq!(status, 201, "{again}");
    assert_ne!(
        again["offset"], first["offset"],
        "the key outlived its window"
    );
    assert_eq!(
        again["id"], first["id"],
        "the same body got another event id"
    );
    let (status, body) = send(first_api, &changed).await;
    assert_eq!(
        status, 422,
        "the first instance missed the new response: {body}"
    );

    // After the next window, another body gets another event id.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (status, other) = send(first_api, &changed).await;
    assert_eq!(status, 201, "{other}");
    assert_ne!(other["id"], first["id"], "another body reused the event id");

    let events = support::read_raw(&env.kafka, &env.kafka.topics().events);
    assert_eq!(events.len(), 3, "expected one event per window: {events:?}");
}

#[tokio::test]
async fn tenant_events_reach_only_tenant_endpoints() {
    let mut env = Env::new("api-delivery").await;
    let api = Api::start(&mut env).await;
    env.spawn(&["router"]);
    env.spawn(&["deliverer"]);
    let receiver_a = Receiver::start().await;
    let receiver_b = Receiver::start().await;
    let (_, key_a) = api.tenant("a").await;
    let (_, key_b) = api.tenant("b").await;
    let endpoint_a = api
        .endpoint(
            &key_a,
            json!({"url": receiver_a.url("/a"), "event_types": ["invoice.*"]}),
        )
        .await;
    let endpoint_b = api
        .endpoint(&key_b, json!({"url": receiver_b.url("/b")}))
        .await;

    let event_id = api.event(&key_a, "invoice.paid").await;
    assert!(wait_until(DEADLINE, || receiver_a.count() == 1).await);
    let delivered = &receiver_a.received()[0];
    assert_eq!(delivered.webhook_id.as_deref(), Some(event_id.as_str()));
    assert!(support::verify_signature(
        endpoint_a["secret"].as_str().unwrap(),
        delivered
    ));

    // Tenant B's own event shows that B's pipeline works, so A's event was not held back.
    api.event(&key_b, "invoice.paid").await;
    assert!(wait_until(DEADLINE, || receiver_b.count() == 1).await);
    assert!(support::verify_signature(
        endpoint_b["secret"].as_str().unwrap(),
        &receiver_b.received()[0]
    ));
    assert_eq!(receiver_a.count(), 1, "tenant A received tenant B's event");

    let id_a = endpoint_a["id"].as_str().unwrap();
    let path = format!("/v1/endpoints/{id_a}/attempts");
    let mut attempts = Value::Null;
    for _ in 0..100 {
        attempts = api.call("GET", &path, &key_a, None).await.1;
        if attempts["data"]
            .as_array()
            .is_some_and(|data| !data.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let attempt = &attempts["data"][0];
    assert_eq!(attempt["event_id"], event_id.as_str(), "{attempts}");
    assert_eq!(attempt["status"], 204);
    assert_eq!(attempt["outcome"], "delivered");
    assert!(attempt["started_at"].as_str().is_some());
    let (_, by_event) = api
        .call(
            "GET",
            &format!("/v1/events/{event_id}/attempts"),
            &key_a,
            None,
        )
        .await;
    assert_eq!(by_event["data"].as_array().unwrap().len(), 1, "{by_event}");
}

#[tokio::test]
async fn rotation_signs_for_old_and_new_receivers() {
    let mut env = Env::new("api-rotation").await;
    let api = Api::start(&mut env).await;
    env.spawn(&["router"]);
    env.spawn(&["deliverer"]);
    let receiver = Receiver::start().await;
    let (_, key) = api.tenant("a").await;
    let hmac = api
        .endpoint(&key, json!({"url": receiver.url("/hmac")}))
        .await;
    let ed25519 = api
        .endpoint(
            &key,
            json!({"url": receiver.url("/ed25519"), "signing": "ed25519"}),
        )
        .await;
    assert_eq!(ed25519["signing"], "ed25519");
    assert!(
        ed25519["secret"].is_null(),
        "the ed25519 secret key was returned"
    );
    let old_secret = hmac["secret"].as_str().unwrap().to_string();
    let old_public = ed25519["public_key"].as_str().unwrap().to_string();

    let rotate = |id: &str| format!("/v1/endpoints/{id}/secret/rotate");
    let (status, rotated) = api
        .call("POST", &rotate(hmac["id"].as_str().unwrap()), &key, None)
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, old_secret);
    let (_, rotated) = api
        .call("POST", &rotate(ed25519["id"].as_str().unwrap()), &key, None)
        .await;
    let new_public = rotated["public_key"].as_str().unwrap().to_string();
    assert_ne!(new_public, old_public);
    assert_eq!(rotated["previous_public_key"], old_public.as_str());

    api.event(&key, "user.created").await;
    assert!(wait_until(DEADLINE, || receiver.count() == 2).await);
    let received = receiver.received();
    let at = |path: &str| {
        received
            .iter()
            .find(|request| request.path == path)
            .unwrap()
    };
    assert!(
        support::verify_signature(&old_secret, at("/hmac")),
        "old secret rejects it"
    );
    assert!(
        support::verify_signature(&new_secret, at("/hmac")),
        "new secret rejects it"
    );
    assert!(
        support::verify_ed25519(&old_public, at("/ed25519")),
        "old public key rejects it"
    );
    assert!(
        support::verify_ed25519(&new_public, at("/ed25519")),
        "new public key rejects it"
    );
}

#[tokio::test]
async fn secrets_are_sealed_on_the_topic() {
    let mut env = Env::new("api-sealed").await;
    let api = Api::start(&mut env).await;
    let (_, key) = api.tenant("a").await;
    let created = api
        .endpoint(&key, json!({"url": "http://127.0.0.1:9/x"}))
        .await;
    let secret = created["secret"].as_str().unwrap();
    let encoded = secret.strip_prefix("whsec_").unwrap();

    let records: Vec<aurora_schemas::Subscription> =
        env.read_topic(&env.kafka.topics().subscriptions);
    assert_eq!(records.len(), 1);
    assert!(
        records[0].secret.starts_with("sealed:v1:"),
        "{}",
        records[0].secret
    );
    for record in support::read_raw(&env.kafka, &env.kafka.topics().subscriptions) {
        let bytes = record.1.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(encoded),
            "the secret is readable on the topic"
        );
    }
}

#[tokio::test]
async fn urls_are_stored_normalized() {
    let mut env = Env::new("api-urls").await;
    let api = Api::start(&mut env).await;
    let (_, key) = api.tenant("a").await;
    let created = api
        .endpoint(&key, json!({"url": "HTTP://127.1:8099/hook?x=1"}))
        .await;
    assert_eq!(created["url"], "http://127.0.0.1:8099/hook?x=1");
}

#[tokio::test]
async fn concurrent_changes_to_one_endpoint_all_apply() {
    let mut env = Env::new("api-concurrent").await;
    let api = Api::start(&mut env).await;
    let (_, key) = api.tenant("a").await;
    for round in 0..4 {
        let created = api
            .endpoint(&key, json!({"url": "http://127.0.0.1:9/x"}))
            .await;
        let id = created["id"].as_str().unwrap();
        let path = format!("/v1/endpoints/{id}");
        let description = format!("round {round}");
        let disable_path = format!("{path}/disable");
        let disable = api.call("POST", &disable_path, &key, None);
        let update = api.call(
            "PATCH",
            &path,
            &key,
            Some(json!({"description": description})),
        );
        let ((disabled, _), (updated, _)) = tokio::join!(disable, update);
        assert_eq!((disabled, updated), (200, 200));

        let (_, endpoint) = api.call("GET", &path, &key, None).await;
        assert_eq!(
            endpoint["enabled"], false,
            "round {round}: the disable was lost"
        );
        assert_eq!(
            endpoint["description"],
            description.as_str(),
            "round {round}: the update was lost"
        );
    }
}

#[tokio::test]
async fn secrets_stay_out_of_debug_logs() {
    let env = Env::new("api-secret-logs").await;
    let logs = std::env::temp_dir().join(format!("{}logs", env.prefix));
    std::fs::create_dir_all(&logs).unwrap();
    let port = support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut children = Vec::new();
    for (name, args) in [
        ("api", vec!["api", "--listen", listen.as_str()]),
        ("router", vec!["router"]),
        ("deliverer", vec!["deliverer"]),
        ("retry", vec!["retry"]),
    ] {
        let file = std::fs::File::create(logs.join(name)).unwrap();
        let child = env
            .command(&args)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("aurora component starts");
        children.push(child);
    }
    assert!(wait_for_port(port).await, "the API did not start");
    let api = Api {
        base: format!("http://{listen}"),
    };

    // A rotation, a failed attempt and its retry pass the secrets through every component.
    let receiver = Receiver::start().await;
    receiver.respond_with(&[500]);
    let (_, key) = api.tenant("a").await;
    let endpoint = api
        .endpoint(&key, json!({"url": receiver.url("/hooks")}))
        .await;
    let old_secret = endpoint["secret"].as_str().unwrap().to_string();
    let rotate = format!(
        "/v1/endpoints/{}/secret/rotate",
        endpoint["id"].as_str().unwrap()
    );
    let (status, rotated) = api.call("POST", &rotate, &key, None).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    api.event(&key, "user.created").await;
    assert!(
        wait_until(DEADLINE, || receiver.count() == 2).await,
        "the failed delivery was not retried"
    );
    for child in &mut children {
        child.kill().await.expect("component stops");
    }

    let mut combined = String::new();
    for name in ["api", "router", "deliverer", "retry"] {
        combined.push_str(&std::fs::read_to_string(logs.join(name)).unwrap());
    }
    std::fs::remove_dir_all(&logs).unwrap();
    assert!(
        combined.contains("Attempt failed"),
        "the failed attempt was not logged"
    );
    for (what, secret) in [
        ("old endpoint secret", old_secret.as_str()),
        ("new endpoint secret", new_secret.as_str()),
        ("tenant API key", key.as_str()),
        ("admin key", TEST_ADMIN_KEY),
        ("sealing key", TEST_SECRET_KEY),
    ] {
        let bare = secret.trim_start_matches("whsec_");
        assert!(!combined.contains(bare), "the {what} appears in the logs");
    }
}
