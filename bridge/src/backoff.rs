//! Exponential backoff with ±20 % jitter between attempts of a failing AWS or Kafka call.

use std::time::Duration;

/// Delays that double from `initial` after each failure, up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

/// Share of a delay by which the jitter may shorten or lengthen it.
const JITTER: f64 = 0.2;

impl Backoff {
    /// Backoff from 200 ms up to 30 s.
    pub const DEFAULT: Backoff = Backoff {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(30),
    };

    /// Delay before attempt `failures + 1`, without jitter: `initial × 2^(failures − 1)`,
    /// capped at `max`; zero before the first failure.
    pub fn base_delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 2u32.saturating_pow(failures - 1);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Delay before attempt `failures + 1`, with ±20 % jitter so that instances that failed
    /// together do not retry together.
    pub fn delay(&self, failures: u32) -> Duration {
        let jitter = rand::random_range(-JITTER..=JITTER);
        self.base_delay(failures).mul_f64(1.0 + jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let backoff = Backoff::DEFAULT;
        let table = [
            (0, Duration::ZERO),
            (1, Duration::from_millis(200)),
            (2, Duration::from_millis(400)),
            (3, Duration::from_millis(800)),
            (8, Duration::from_millis(25_600)),
            (9, Duration::from_secs(30)),
            (40, Duration::from_secs(30)),
            (u32::MAX, Duration::from_secs(30)),
        ];
        for (failures, expected) in table {
            assert_eq!(
                backoff.base_delay(failures),
                expected,
                "after {failures} failures"
            );
        }
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        let backoff = Backoff::DEFAULT;
        for _ in 0..1000 {
            let delay = backoff.delay(3);
            assert!(delay >= Duration::from_millis(640), "{delay:?}");
            assert!(delay <= Duration::from_millis(960), "{delay:?}");
        }
    }
}
