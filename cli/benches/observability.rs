//! Costs of observability on the delivery path, printed as figures: recording one delivery's
//! metrics, one `delivery` span with the JSON log format (enabled and filtered out), and
//! encoding a scrape. Run with `cargo bench -p aurora --bench observability`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aurora_common::metrics::EndpointLoad;
use aurora_common::{Metrics, RetryTier};
use tracing_subscriber::EnvFilter;

const METRIC_ITERATIONS: u32 = 10_000_000;
const SPAN_ITERATIONS: u32 = 1_000_000;
const SCRAPE_ITERATIONS: u32 = 200;
const SCRAPED_ENDPOINTS: usize = 1_000;

fn per_operation(elapsed: Duration, iterations: u32) -> f64 {
    elapsed.as_nanos() as f64 / f64::from(iterations)
}

/// Measures one delivered attempt as the deliverer records it: an outcome counter and the
/// histogram.
fn record_metrics() -> f64 {
    let metrics = Metrics::new();
    let deliverer = metrics.deliverer(&[RetryTier::new("bench.", Duration::from_secs(1))]);
    let started = Instant::now();
    for index in 0..METRIC_ITERATIONS {
        deliverer.delivered.inc();
        deliverer
            .attempt_seconds
            .observe(black_box(f64::from(index % 1000) / 1000.0));
    }
    per_operation(started.elapsed(), METRIC_ITERATIONS)
}

/// Measures one `delivery` span as the deliverer opens it, entered once, under the JSON
/// format writing to a sink at `level`.
fn open_spans(level: &str) -> f64 {
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::new(level))
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let started = Instant::now();
        for index in 0..SPAN_ITERATIONS {
            let span = tracing::info_span!(
                "delivery",
                endpoint_id = "billing",
                topic = "aurora.deliveries",
                partition = 3,
                offset = i64::from(index),
                attempt = tracing::field::Empty,
            );
            span.record("attempt", 1);
            let _entered = black_box(span.enter());
        }
        per_operation(started.elapsed(), SPAN_ITERATIONS)
    })
}

/// Measures encoding every metric with a thousand endpoints in flight.
fn encode_scrape() -> (f64, usize) {
    let metrics = Metrics::new();
    let deliverer = metrics.deliverer(&[]);
    deliverer.observe_endpoints(|| {
        Some(
            (0..SCRAPED_ENDPOINTS)
                .map(|index| EndpointLoad {
                    endpoint_id: format!("endpoint-{index}"),
                    deliveries_in_flight: 1,
                    requests_in_flight: 1,
                })
                .collect(),
        )
    });
    let mut bytes = 0;
    let started = Instant::now();
    for _ in 0..SCRAPE_ITERATIONS {
        bytes = black_box(metrics.encode().expect("metrics encode")).len();
    }
    let millis = started.elapsed().as_secs_f64() * 1000.0 / f64::from(SCRAPE_ITERATIONS);
    (millis, bytes)
}

fn main() {
    println!(
        "metrics per delivered attempt (counter + histogram): {:.1} ns",
        record_metrics()
    );
    println!(
        "delivery span, JSON logs at info (span enabled): {:.1} ns",
        open_spans("info")
    );
    println!(
        "delivery span, JSON logs at warn (span filtered out): {:.1} ns",
        open_spans("warn")
    );
    let (millis, bytes) = encode_scrape();
    println!("scrape with {SCRAPED_ENDPOINTS} endpoints: {millis:.2} ms, {bytes} bytes");
}
