//! Classification of HTTP response statuses for deliveries.

/// The decision for one attempt's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The endpoint accepted the delivery.
    Delivered,
    /// The attempt failed; try again per the retry schedule.
    Retry { reason: String },
}

/// Classifies a response status.
///
/// - 2xx: delivered.
/// - 3xx: failure, because redirects are not followed.
/// - every other status: failure, retried per the schedule.
pub fn classify(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        300..=399 => Verdict::Retry {
            reason: format!("HTTP {status}: redirects are not followed"),
        },
        _ => Verdict::Retry {
            reason: format!("HTTP {status}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify() {
        let table = [
            (200, true),
            (204, true),
            (299, true),
            (301, false),
            (302, false),
            (400, false),
            (404, false),
            (429, false),
            (500, false),
            (503, false),
            (100, false),
        ];
        for (status, delivered) in table {
            assert_eq!(
                classify(status) == Verdict::Delivered,
                delivered,
                "status {status}"
            );
        }
    }
}
