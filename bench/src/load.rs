//! The load: benchmark endpoints written to the subscriptions topic, and events produced to a
//! topic as fast as the producer takes them or at a fixed rate.

use std::time::{Duration, Instant};

use anyhow::Context;
use aurora_common::kafka::Producer;
use aurora_common::produce::{enqueue, Pending};
use aurora_common::time::now_ms;
use aurora_schemas::Subscription;
use rdkafka::message::{Header, OwnedHeaders};
use tokio::sync::mpsc;

use crate::clock::now_us;

/// Type of every benchmark event.
pub const EVENT_TYPE: &str = "bench.order.created";
/// Filter of every benchmark endpoint.
const ENDPOINT_FILTER: &str = "bench.*";
/// Type of the warm-up event, which only the warm-up endpoint subscribes to.
pub const WARMUP_TYPE: &str = "warmup.ping";
const WARMUP_FILTER: &str = "warmup.*";
/// Id of the warm-up endpoint.
const WARMUP_ENDPOINT: &str = "bench-warmup";

/// Records enqueued whose acknowledgement is awaited at once, at most.
const ACK_WINDOW: usize = 50_000;

/// Secrets of the registered endpoints.
pub struct Endpoints {
    /// Secret of benchmark endpoint `index`, which receives at `/e/{index}`.
    pub secrets: Vec<String>,
    pub warmup_secret: String,
}

impl Endpoints {
    /// Generates secrets for `count` benchmark endpoints and the warm-up endpoint.
    pub fn generate(count: usize) -> Endpoints {
        Endpoints {
            secrets: (0..count)
                .map(|_| aurora_deliverer::generate_secret())
                .collect(),
            warmup_secret: aurora_deliverer::generate_secret(),
        }
    }

    /// Writes every endpoint to the subscriptions topic and waits for the acknowledgements.
    pub async fn register(
        &self,
        producer: &Producer,
        topic: &str,
        base_url: &str,
    ) -> anyhow::Result<()> {
        let mut pending = Vec::with_capacity(self.secrets.len() + 1);
        let warmup = subscription(
            WARMUP_ENDPOINT,
            format!("{base_url}/warmup"),
            &self.warmup_secret,
            WARMUP_FILTER,
        );
        pending.push(write(producer, topic, &warmup).await?);
        for (index, secret) in self.secrets.iter().enumerate() {
            let endpoint = subscription(
                &format!("bench-{index}"),
                format!("{base_url}/e/{index}"),
                secret,
                ENDPOINT_FILTER,
            );
            pending.push(write(producer, topic, &endpoint).await?);
        }
        for record in pending {
            record.acked().await?;
        }
        Ok(())
    }
}

fn subscription(id: &str, url: String, secret: &str, filter: &str) -> Subscription {
    Subscription {
        endpoint_id: id.to_string(),
        url,
        secret: secret.to_string(),
        event_types: vec![filter.to_string()],
        rate_limit: None,
        enabled: true,
        description: "aurora-bench endpoint".into(),
        updated_at_ms: now_ms(),
        disabled_reason: String::new(),
        previous_secret: None,
        previous_secret_expires_at_ms: 0,
        tenant_id: String::new(),
    }
}

async fn write(
    producer: &Producer,
    topic: &str,
    subscription: &Subscription,
) -> anyhow::Result<Pending> {
    let value = aurora_schemas::encode(subscription)?;
    Ok(enqueue(
        producer,
        topic,
        subscription.endpoint_id.as_bytes(),
        &value,
        None,
    )
    .await?)
}

/// Returns a JSON payload of about `size` bytes carrying its sequence number and send time:
/// `{"seq":7,"sent_at_us":1700000000000000,"pad":"xx…"}`.
pub fn payload(seq: u64, sent_at_us: u64, size: usize) -> Vec<u8> {
    let mut text = format!(r#"{{"seq":{seq},"sent_at_us":{sent_at_us},"pad":""#);
    let closing = "\"}";
    let fill = size.saturating_sub(text.len() + closing.len());
    text.extend(std::iter::repeat_n('x', fill));
    text.push_str(closing);
    text.into_bytes()
}

/// Outcome of a produce run.
#[derive(Debug, Clone, Copy)]
pub struct Produced {
    pub records: u64,
    /// From the first send to the last acknowledgement.
    pub elapsed: Duration,
}

impl Produced {
    pub fn per_second(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Shape of the events a run produces.
#[derive(Debug, Clone)]
pub struct EventSpec {
    pub topic: String,
    pub event_type: &'static str,
    /// First sequence number; events are numbered from here.
    pub first_seq: u64,
    pub count: u64,
    pub payload_bytes: usize,
    /// Events per second; `None` produces as fast as the producer takes them.
    pub rate: Option<f64>,
}

/// Produces the events of `spec` in CloudEvents binary mode and waits for every
/// acknowledgement. Each payload carries its send time, from which the receiver computes the
/// produce-to-receive latency.
pub async fn produce_events(producer: &Producer, spec: &EventSpec) -> anyhow::Result<Produced> {
    let (acks, mut awaited) = mpsc::channel::<Pending>(ACK_WINDOW);
    let acker = tokio::spawn(async move {
        while let Some(pending) = awaited.recv().await {
            pending.acked().await?;
        }
        Ok::<_, aurora_common::produce::ProduceError>(())
    });

    let started = Instant::now();
    for index in 0..spec.count {
        if let Some(rate) = spec.rate {
            let due = started + Duration::from_secs_f64(index as f64 / rate);
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let seq = spec.first_seq + index;
        let id = format!("ev-{seq}");
        let key = format!("key-{}", seq % 1024);
        let value = payload(seq, now_us(), spec.payload_bytes);
        let headers = OwnedHeaders::new_with_capacity(3)
            .insert(Header {
                key: "ce_id",
                value: Some(&id),
            })
            .insert(Header {
                key: "ce_type",
                value: Some(spec.event_type),
            })
            .insert(Header {
                key: "content-type",
                value: Some("application/json"),
            });
        let pending = enqueue(producer, &spec.topic, key.as_bytes(), &value, Some(headers)).await?;
        acks.send(pending)
            .await
            .context("the acknowledgement task stopped")?;
    }
    drop(acks);
    acker.await.context("the acknowledgement task panicked")??;
    Ok(Produced {
        records: spec.count,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_has_requested_size_and_parses() {
        let bytes = payload(42, 1_700_000_000_000_000, 256);
        assert_eq!(bytes.len(), 256);
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["seq"], 42);
        assert_eq!(value["sent_at_us"], 1_700_000_000_000_000u64);
    }

    #[test]
    fn payload_grows_past_small_sizes() {
        let bytes = payload(7, 1, 10);
        assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_ok());
    }
}
