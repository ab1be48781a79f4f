//! Per-endpoint limits, so that a slow or rate-limited endpoint cannot hold back the others
//! that share its partition: requests per second (governor), concurrent requests, and
//! deliveries held in flight.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use aurora_common::metrics::{DelivererMetrics, EndpointLoad};
use aurora_schemas::RateLimit;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Limits of one endpoint.
struct EndpointLimit {
    in_flight: Arc<Semaphore>,
    concurrency: Arc<Semaphore>,
    /// Holders of a concurrency place still waiting for the rate limit, so not yet sending.
    rate_waiting: AtomicUsize,
    rate: Mutex<Option<(RateLimit, Arc<DefaultDirectRateLimiter>)>>,
}

/// Counts a wait for the rate limit while it lasts, including when the wait is cancelled.
struct RateWait<'a>(&'a AtomicUsize);

impl<'a> RateWait<'a> {
    fn start(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, Ordering::Relaxed);
        RateWait(waiting)
    }
}

impl Drop for RateWait<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

type Endpoints = Arc<Mutex<HashMap<String, Arc<EndpointLimit>>>>;

/// Limits of every endpoint, created on first use.
pub struct EndpointLimits {
    max_in_flight: usize,
    max_concurrency: usize,
    endpoints: Endpoints,
    metrics: DelivererMetrics,
}

impl EndpointLimits {
    /// Creates the limits and reports each endpoint's load to `metrics` at every scrape.
    pub fn new(max_in_flight: usize, max_concurrency: usize, metrics: &DelivererMetrics) -> Self {
        let endpoints = Endpoints::default();
        let observed = Arc::downgrade(&endpoints);
        metrics.observe_endpoints(move || {
            let endpoints = observed.upgrade()?;
            Some(load(&endpoints, max_in_flight, max_concurrency))
        });
        EndpointLimits {
            max_in_flight,
            max_concurrency,
            endpoints,
            metrics: metrics.clone(),
        }
    }

    fn endpoint(&self, endpoint_id: &str) -> Arc<EndpointLimit> {
        let mut endpoints = self
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        endpoints
            .entry(endpoint_id.to_string())
            .or_insert_with(|| {
                Arc::new(EndpointLimit {
                    in_flight: Arc::new(Semaphore::new(self.max_in_flight)),
                    concurrency: Arc::new(Semaphore::new(self.max_concurrency)),
                    rate_waiting: AtomicUsize::new(0),
                    rate: Mutex::new(None),
                })
            })
            .clone()
    }

    /// Takes one of the endpoint's in-flight places, waiting while all are taken.
    pub async fn hold(&self, endpoint_id: &str) -> OwnedSemaphorePermit {
        let limit = self.endpoint(endpoint_id);
        if let Ok(permit) = limit.in_flight.clone().try_acquire_owned() {
            return permit;
        }
        tracing::debug!(
            endpoint_id,
            max_in_flight = self.max_in_flight,
            "Endpoint has the maximum deliveries in flight; waiting."
        );
        // The semaphore is never closed, so acquiring can only succeed.
        limit
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("in-flight semaphore is never closed")
    }

    /// Waits for the endpoint's rate limit and a concurrency place; the permit ends the request.
    pub async fn admit(
        &self,
        endpoint_id: &str,
        rate_limit: Option<RateLimit>,
    ) -> OwnedSemaphorePermit {
        let limit = self.endpoint(endpoint_id);
        let permit = limit
            .concurrency
            .clone()
            .acquire_owned()
            .await
            .expect("concurrency semaphore is never closed");
        if let Some(limiter) = rate_limiter(&limit, rate_limit) {
            if limiter.check().is_err() {
                tracing::trace!(endpoint_id, "Rate limit reached; waiting.");
                let waited = Instant::now();
                let wait = RateWait::start(&limit.rate_waiting);
                limiter.until_ready().await;
                drop(wait);
                self.metrics.rate_limit_waits.inc();
                self.metrics
                    .rate_limit_wait_seconds
                    .inc_by(waited.elapsed().as_secs_f64());
            }
        }
        permit
    }
}

/// Returns the deliveries and requests each endpoint holds, from its semaphores' free places.
/// Requests still waiting for the rate limit are not counted as under way.
fn load(endpoints: &Endpoints, max_in_flight: usize, max_concurrency: usize) -> Vec<EndpointLoad> {
    let endpoints = endpoints.lock().unwrap_or_else(PoisonError::into_inner);
    let taken = |free: usize, max: usize| max.saturating_sub(free) as i64;
    endpoints
        .iter()
        .map(|(endpoint_id, limit)| EndpointLoad {
            endpoint_id: endpoint_id.clone(),
            deliveries_in_flight: taken(limit.in_flight.available_permits(), max_in_flight),
            requests_in_flight: taken(limit.concurrency.available_permits(), max_concurrency)
                .saturating_sub(limit.rate_waiting.load(Ordering::Relaxed) as i64),
        })
        .collect()
}

/// Returns the endpoint's limiter for its current rate limit, rebuilt when the limit changes.
fn rate_limiter(
    limit: &EndpointLimit,
    rate_limit: Option<RateLimit>,
) -> Option<Arc<DefaultDirectRateLimiter>> {
    let rate_limit = rate_limit?;
    let per_second = NonZeroU32::new(u32::try_from(rate_limit.per_second).ok()?)?;
    let burst =
        NonZeroU32::new(u32::try_from(rate_limit.burst).unwrap_or(1)).unwrap_or(NonZeroU32::MIN);
    let mut rate = limit.rate.lock().unwrap_or_else(PoisonError::into_inner);
    match rate.as_ref() {
        Some((current, limiter)) if *current == rate_limit => Some(limiter.clone()),
        _ => {
            let limiter = Arc::new(RateLimiter::direct(
                Quota::per_second(per_second).allow_burst(burst),
            ));
            *rate = Some((rate_limit, limiter.clone()));
            Some(limiter)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn requests_in_flight(limits: &EndpointLimits) -> i64 {
        load(
            &limits.endpoints,
            limits.max_in_flight,
            limits.max_concurrency,
        )[0]
        .requests_in_flight
    }

    #[tokio::test]
    async fn rate_limit_wait_is_not_request_in_flight() {
        let limits = Arc::new(EndpointLimits::new(8, 4, &DelivererMetrics::default()));
        let rate_limit = Some(RateLimit {
            per_second: 1,
            burst: 1,
        });
        let first = limits.admit("orders", rate_limit).await;
        let second = tokio::spawn({
            let limits = limits.clone();
            async move { limits.admit("orders", rate_limit).await }
        });
        let endpoint = limits.endpoint("orders");
        for _ in 0..100 {
            if endpoint.rate_waiting.load(Ordering::Relaxed) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(endpoint.rate_waiting.load(Ordering::Relaxed), 1);
        assert_eq!(requests_in_flight(&limits), 1);

        drop(first);
        let second = second.await.unwrap();
        assert_eq!(endpoint.rate_waiting.load(Ordering::Relaxed), 0);
        assert_eq!(requests_in_flight(&limits), 1);
        drop(second);
        assert_eq!(requests_in_flight(&limits), 0);
    }
}
