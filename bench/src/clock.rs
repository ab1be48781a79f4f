//! Wall-clock time in microseconds since the Unix epoch, the unit of the benchmark payload's
//! send time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Current wall-clock time in microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
