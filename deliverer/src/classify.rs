//! Classification of HTTP responses for deliveries, status by status:
//!
//! - 2xx: delivered.
//! - 3xx: failure, retried, because redirects are not followed.
//! - 410 Gone: the endpoint requests no further calls, so it is disabled and the delivery
//!   is dead-lettered.
//! - 429 Too Many Requests and 503 Service Unavailable: failure, retried no earlier than the
//!   `Retry-After` header requests (seconds or an HTTP date), clamped to a configured maximum.
//! - every other status (1xx, other 4xx, other 5xx): failure, retried per the schedule.
//!
//! Timeouts and connection errors never reach this module: they are retried per the schedule.

use std::time::{Duration, SystemTime};

/// The decision for one attempt's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The endpoint accepted the delivery.
    Delivered,
    /// The attempt failed; try again per the retry schedule, and not before `not_before`.
    Retry {
        reason: String,
        not_before: Option<Duration>,
    },
    /// The endpoint is gone: disable it and dead-letter the delivery.
    Gone { reason: String },
}

/// Classifies a response from its status and `Retry-After` header.
///
/// `now` is the receiver-independent clock used to read an HTTP-date `Retry-After`, and
/// `max_retry_after` caps how long a header can postpone the next attempt.
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    now: SystemTime,
    max_retry_after: Duration,
) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        300..=399 => Verdict::Retry {
            reason: format!("HTTP {status}: redirects are not followed"),
            not_before: None,
        },
        410 => Verdict::Gone {
            reason: "endpoint returned 410 Gone".into(),
        },
        429 | 503 => Verdict::Retry {
            reason: format!("HTTP {status}"),
            not_before: retry_after
                .and_then(|value| parse_retry_after(value, now))
                .map(|delay| delay.min(max_retry_after)),
        },
        _ => Verdict::Retry {
            reason: format!("HTTP {status}"),
            not_before: None,
        },
    }
}

/// Parses `Retry-After` as delay-seconds or an HTTP date; a date in the past means now.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(3600);

    fn now() -> SystemTime {
        httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap()
    }

    fn is_delivered(verdict: &Verdict) -> bool {
        matches!(verdict, Verdict::Delivered)
    }

    #[test]
    fn statuses_classify() {
        let delivered = [200, 201, 202, 204, 299];
        let retried = [
            100, 199, 300, 301, 302, 307, 308, 400, 401, 403, 404, 408, 409, 413, 422, 429, 500,
            502, 503, 504, 599,
        ];
        for status in delivered {
            assert!(
                is_delivered(&classify(status, None, now(), MAX)),
                "status {status}"
            );
        }
        for status in retried {
            let verdict = classify(status, None, now(), MAX);
            assert!(
                matches!(
                    verdict,
                    Verdict::Retry {
                        not_before: None,
                        ..
                    }
                ),
                "status {status}: {verdict:?}"
            );
        }
        assert!(matches!(
            classify(410, None, now(), MAX),
            Verdict::Gone { .. }
        ));
    }

    #[test]
    fn redirects_are_failures() {
        let Verdict::Retry { reason, .. } = classify(302, None, now(), MAX) else {
            panic!("302 must be retried");
        };
        assert!(reason.contains("redirects are not followed"), "{reason}");
    }

    #[test]
    fn retry_after_is_honoured_on_429_and_503() {
        let cases = [
            (429, "120", Some(Duration::from_secs(120))),
            (503, "7", Some(Duration::from_secs(7))),
            (
                429,
                "Wed, 21 Oct 2015 07:30:00 GMT",
                Some(Duration::from_secs(120)),
            ),
            (503, "Wed, 21 Oct 2015 07:00:00 GMT", Some(Duration::ZERO)),
            (429, "999999999", Some(MAX)),
            (429, "soon", None),
            (429, "-5", None),
            (500, "120", None),
            (404, "120", None),
        ];
        for (status, header, expected) in cases {
            let verdict = classify(status, Some(header), now(), MAX);
            let Verdict::Retry { not_before, .. } = verdict else {
                panic!("{status} must be retried");
            };
            assert_eq!(not_before, expected, "{status} with Retry-After {header:?}");
        }
    }
}
