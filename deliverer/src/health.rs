//! Endpoint health: a run of consecutive failures spanning a long enough time disables an
//! endpoint, and the changes on the way are reported as operational events.
//!
//! State is kept per deliverer instance. One endpoint's deliveries, retries included, share a
//! partition of the deliveries topic, so one instance receives all of them. A rebalance that
//! moves the partition starts the count afresh.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// When an endpoint is reported failing and when it is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Consecutive failures after which the endpoint is reported failing.
    pub failing_after: u32,
    /// Consecutive failures after which the endpoint is disabled, once they span `disable_span`.
    pub disable_after: u32,
    /// Minimum time from the first to the latest failure of the run before disabling.
    pub disable_span: Duration,
}

/// A change worth an operational event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthChange {
    Failing { consecutive_failures: u32 },
    Disable { consecutive_failures: u32 },
    Recovered { consecutive_failures: u32 },
}

#[derive(Debug, Default)]
struct EndpointHealth {
    consecutive_failures: u32,
    first_failure_ms: i64,
    reported_failing: bool,
}

/// Health of every endpoint this instance delivers to.
#[derive(Debug)]
pub struct Health {
    policy: HealthPolicy,
    endpoints: Mutex<HashMap<String, EndpointHealth>>,
}

impl Health {
    pub fn new(policy: HealthPolicy) -> Self {
        Health {
            policy,
            endpoints: Mutex::default(),
        }
    }

    /// Records an attempt's result and returns the change it causes, if any.
    pub fn record(&self, endpoint_id: &str, succeeded: bool, now_ms: i64) -> Option<HealthChange> {
        let mut endpoints = self
            .endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if succeeded {
            let state = endpoints.remove(endpoint_id)?;
            return state.reported_failing.then_some(HealthChange::Recovered {
                consecutive_failures: state.consecutive_failures,
            });
        }

        let state = endpoints.entry(endpoint_id.to_string()).or_default();
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        if state.consecutive_failures == 1 {
            state.first_failure_ms = now_ms;
        }
        let failures = state.consecutive_failures;
        let span_ms = now_ms.saturating_sub(state.first_failure_ms);
        let span_reached =
            span_ms >= self.policy.disable_span.as_millis().min(i64::MAX as u128) as i64;
        if failures >= self.policy.disable_after && span_reached {
            endpoints.remove(endpoint_id);
            return Some(HealthChange::Disable {
                consecutive_failures: failures,
            });
        }
        if failures >= self.policy.failing_after && !state.reported_failing {
            state.reported_failing = true;
            return Some(HealthChange::Failing {
                consecutive_failures: failures,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(span: Duration) -> Health {
        Health::new(HealthPolicy {
            failing_after: 2,
            disable_after: 4,
            disable_span: span,
        })
    }

    #[test]
    fn failing_then_disabled() {
        let health = health(Duration::from_secs(10));
        assert_eq!(health.record("a", false, 0), None);
        assert_eq!(
            health.record("a", false, 1_000),
            Some(HealthChange::Failing {
                consecutive_failures: 2
            })
        );
        assert_eq!(health.record("a", false, 2_000), None);
        // Four failures, but spanning only 3 s.
        assert_eq!(health.record("a", false, 3_000), None);
        assert_eq!(
            health.record("a", false, 10_000),
            Some(HealthChange::Disable {
                consecutive_failures: 5
            })
        );
    }

    #[test]
    fn success_resets_and_reports_recovery() {
        let health = health(Duration::ZERO);
        assert_eq!(health.record("a", false, 0), None);
        assert_eq!(health.record("a", true, 1), None);
        assert_eq!(health.record("a", false, 2), None);
        assert_eq!(
            health.record("a", false, 3),
            Some(HealthChange::Failing {
                consecutive_failures: 2
            })
        );
        assert_eq!(
            health.record("a", true, 4),
            Some(HealthChange::Recovered {
                consecutive_failures: 2
            })
        );
        assert_eq!(health.record("a", true, 5), None);
    }

    #[test]
    fn endpoints_are_independent() {
        let health = health(Duration::ZERO);
        health.record("a", false, 0);
        assert_eq!(health.record("b", false, 0), None);
        assert_eq!(
            health.record("a", false, 0),
            Some(HealthChange::Failing {
                consecutive_failures: 2
            })
        );
    }
}
