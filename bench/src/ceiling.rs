//! The two ceilings the pipeline runs under: the broker's bare produce-then-consume rate for
//! records like the pipeline's events, and a bare pooled hyper client POSTing to the same
//! receiver.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aurora_common::kafka::{consumer_config, QuietContext};
use aurora_common::KafkaArgs;
use aurora_deliverer::Secret;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::clock::now_us;
use crate::load::{produce_events, EventSpec, Produced};

/// Maximum time the consume half of the broker ceiling may wait for one record.
const POLL_TIMEOUT: Duration = Duration::from_secs(30);

/// The broker's bare rate: produce every record and wait for the acknowledgements, then
/// consume them all from the beginning.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerCeiling {
    pub records: u64,
    pub produce_seconds: f64,
    pub consume_seconds: f64,
    pub produce_per_second: f64,
    pub consume_per_second: f64,
    /// Records divided by the produce and consume time together.
    pub per_second: f64,
}

/// The bare HTTP rate: the same receiver, signed requests prepared once, no Kafka.
#[derive(Debug, Clone, Serialize)]
pub struct HttpCeiling {
    pub requests: u64,
    pub concurrency: usize,
    pub seconds: f64,
    pub failed: u64,
    pub per_second: f64,
}

/// Measures the broker ceiling on a fresh topic `topic` with `partitions` partitions, using
/// the producer and consumer settings the components use.
pub async fn broker(
    kafka: &KafkaArgs,
    topic: &str,
    partitions: i32,
    records: u64,
    payload_bytes: usize,
) -> anyhow::Result<BrokerCeiling> {
    let admin = aurora_common::kafka::admin(kafka)?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &options,
        )
        .await
        .context("creating the broker ceiling's topic")?;
    for result in results {
        if let Err((topic, code)) = result {
            bail!("creating topic {topic} failed: {code}");
        }
    }

    let producer = aurora_common::kafka::producer(kafka)?;
    let spec = EventSpec {
        topic: topic.to_string(),
        event_type: crate::load::EVENT_TYPE,
        first_seq: 0,
        count: records,
        payload_bytes,
        rate: None,
    };
    let produced: Produced = produce_events(&producer, &spec).await?;
    drop(producer);

    let kafka = kafka.clone();
    let topic = topic.to_string();
    let consumed =
        tokio::task::spawn_blocking(move || consume_all(&kafka, &topic, partitions, records))
            .await
            .context("the consume half of the broker ceiling panicked")??;

    let produce_seconds = produced.elapsed.as_secs_f64();
    let consume_seconds = consumed.as_secs_f64();
    Ok(BrokerCeiling {
        records,
        produce_seconds,
        consume_seconds,
        produce_per_second: produced.per_second(),
        consume_per_second: records as f64 / consume_seconds.max(f64::EPSILON),
        per_second: records as f64 / (produce_seconds + consume_seconds).max(f64::EPSILON),
    })
}

/// Reads `records` records of `topic` from the beginning; returns the time it took.
fn consume_all(
    kafka: &KafkaArgs,
    topic: &str,
    partitions: i32,
    records: u64,
) -> anyhow::Result<Duration> {
    let consumer: BaseConsumer<QuietContext> =
        consumer_config(kafka, &kafka.group_id("bench-ceiling"))
            .create_with_context(QuietContext::default())
            .context("creating the ceiling consumer")?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;

    let started = Instant::now();
    let mut read = 0u64;
    let mut bytes = 0usize;
    while read < records {
        match consumer.poll(POLL_TIMEOUT) {
            Some(Ok(message)) => {
                bytes += message.payload_len();
                read += 1;
            }
            Some(Err(error)) => return Err(error).context("consuming the ceiling topic"),
            None => bail!(
                "the ceiling topic returned {read} of {records} records within {POLL_TIMEOUT:?}"
            ),
        }
    }
    let elapsed = started.elapsed();
    std::hint::black_box(bytes);
    Ok(elapsed)
}

/// Measures the HTTP ceiling: `requests` POSTs to `/ceiling`, `concurrency` at a time, over a
/// pooled hyper client, each a copy of one request signed with `secret`.
pub async fn http(
    receiver: SocketAddr,
    secret: &str,
    requests: u64,
    concurrency: usize,
    payload_bytes: usize,
) -> anyhow::Result<HttpCeiling> {
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build_http::<Full<Bytes>>();
    let body = Bytes::from(crate::load::payload(0, now_us(), payload_bytes));
    let id = "ceiling-0";
    let timestamp = (now_us() / 1_000_000) as i64;
    let signature = Secret::parse(secret)?.sign(id, timestamp, &body);
    let template = Arc::new(Template {
        uri: format!("http://{receiver}/ceiling"),
        id: id.to_string(),
        timestamp: timestamp.to_string(),
        signature,
        body,
    });

    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, template) = (client.clone(), template.clone());
        let (next, failed) = (next.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                if !template.send(&client).await {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for worker in workers {
        worker.await.context("an HTTP ceiling worker panicked")?;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(HttpCeiling {
        requests,
        concurrency,
        seconds,
        failed: failed.load(Ordering::Relaxed),
        per_second: requests as f64 / seconds.max(f64::EPSILON),
    })
}

/// One signed request, sent again and again.
struct Template {
    uri: String,
    id: String,
    timestamp: String,
    signature: String,
    body: Bytes,
}

impl Template {
    /// Sends the request and reads the response; returns whether it was a 2xx.
    async fn send(
        &self,
        client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    ) -> bool {
        let request = Request::builder()
            .method(Method::POST)
            .uri(&self.uri)
            .header("content-type", "application/json")
            .header("webhook-id", &self.id)
            .header("webhook-timestamp", &self.timestamp)
            .header("webhook-signature", &self.signature)
            .body(Full::new(self.body.clone()));
        let Ok(request) = request else {
            return false;
        };
        match client.request(request).await {
            Ok(response) => {
                let success = response.status().is_success();
                success && response.into_body().collect().await.is_ok()
            }
            Err(_) => false,
        }
    }
}
