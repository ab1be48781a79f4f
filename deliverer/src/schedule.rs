//! The retry schedule: which retry tier a failed delivery goes to next.

use std::time::Duration;

use rand::Rng;

/// Largest share by which a retry delay is moved earlier or later at random.
pub const RETRY_JITTER: f64 = 0.2;

/// Returns the index of the tier for the next attempt, or `None` when the attempts are
/// exhausted.
///
/// After attempt n (counting from 1) a delivery goes to tier n - 1. When the endpoint
/// requested a minimum delay (`Retry-After`), the first tier from there whose delay covers it
/// is chosen, or the last tier when none does. That keeps the records of a tier roughly in
/// due order.
pub fn next_tier(
    tiers: &[Duration],
    attempts_made: usize,
    minimum: Option<Duration>,
) -> Option<usize> {
    let base = attempts_made.checked_sub(1)?;
    if base >= tiers.len() {
        return None;
    }
    let Some(minimum) = minimum else {
        return Some(base);
    };
    let covering = (base..tiers.len()).find(|&index| tiers[index] >= minimum);
    Some(covering.unwrap_or(tiers.len() - 1))
}

/// Returns the time of the next attempt, in epoch milliseconds: `now_ms` plus the tier delay
/// moved by up to ±20 % at random, and never earlier than `minimum`. Saturates instead of
/// overflowing.
pub fn next_attempt_at_ms(now_ms: i64, delay: Duration, minimum: Option<Duration>) -> i64 {
    let factor = 1.0 + rand::rng().random_range(-RETRY_JITTER..=RETRY_JITTER);
    let jittered_ms = (delay.as_millis().min(i64::MAX as u128) as f64 * factor) as i64;
    let minimum_ms = minimum.map_or(0, |minimum| {
        minimum.as_millis().min(i64::MAX as u128) as i64
    });
    now_ms.saturating_add(jittered_ms.max(minimum_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(values: &[u64]) -> Vec<Duration> {
        values
            .iter()
            .map(|value| Duration::from_secs(*value))
            .collect()
    }

    #[test]
    fn tiers_follow_attempts() {
        let tiers = secs(&[1, 30, 300]);
        assert_eq!(next_tier(&tiers, 0, None), None);
        assert_eq!(next_tier(&tiers, 1, None), Some(0));
        assert_eq!(next_tier(&tiers, 2, None), Some(1));
        assert_eq!(next_tier(&tiers, 3, None), Some(2));
        assert_eq!(next_tier(&tiers, 4, None), None);
        assert_eq!(next_tier(&tiers, usize::MAX, None), None);
    }

    #[test]
    fn retry_after_picks_covering_tier() {
        let tiers = secs(&[1, 30, 300]);
        assert_eq!(next_tier(&tiers, 1, Some(Duration::from_secs(20))), Some(1));
        assert_eq!(next_tier(&tiers, 1, Some(Duration::from_secs(30))), Some(1));
        assert_eq!(next_tier(&tiers, 1, Some(Duration::from_secs(31))), Some(2));
        assert_eq!(
            next_tier(&tiers, 1, Some(Duration::from_secs(9999))),
            Some(2)
        );
        assert_eq!(next_tier(&tiers, 3, Some(Duration::from_secs(1))), Some(2));
        assert_eq!(next_tier(&tiers, 2, Some(Duration::ZERO)), Some(1));
    }

    #[test]
    fn next_attempt_stays_within_jitter_and_minimum() {
        for _ in 0..1000 {
            let at = next_attempt_at_ms(1_000_000, Duration::from_secs(10), None);
            assert!((1_008_000..=1_012_000).contains(&at), "{at}");
            let at = next_attempt_at_ms(0, Duration::from_secs(1), Some(Duration::from_secs(5)));
            assert_eq!(at, 5_000);
        }
    }

    #[test]
    fn next_attempt_saturates() {
        assert_eq!(
            next_attempt_at_ms(i64::MAX - 5, Duration::from_secs(60), None),
            i64::MAX
        );
        assert_eq!(
            next_attempt_at_ms(0, Duration::MAX, Some(Duration::MAX)),
            i64::MAX
        );
    }
}
