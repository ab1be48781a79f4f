//! Progress of a long command on stderr: one line rewritten in place when stderr is a
//! terminal, and a plain line every few seconds otherwise, so that logs stay readable.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Time between redraws of the line on a terminal.
const TERMINAL_INTERVAL: Duration = Duration::from_millis(100);

/// Time between progress lines when stderr is not a terminal.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// A count of done items out of a known total, shown on stderr.
pub struct Progress {
    label: String,
    total: u64,
    done: u64,
    terminal: bool,
    started: Instant,
    last_shown: Instant,
}

impl Progress {
    /// Starts showing progress of `total` items; the first line appears after one interval.
    pub fn new(label: impl Into<String>, total: u64) -> Progress {
        let now = Instant::now();
        Progress {
            label: label.into(),
            total,
            done: 0,
            terminal: std::io::stderr().is_terminal(),
            started: now,
            last_shown: now,
        }
    }

    /// Records that `done` items are done, and shows it when the interval has passed.
    pub fn set(&mut self, done: u64) {
        self.done = done;
        let interval = if self.terminal {
            TERMINAL_INTERVAL
        } else {
            LOG_INTERVAL
        };
        if self.last_shown.elapsed() >= interval {
            self.last_shown = Instant::now();
            let line = self.line();
            if self.terminal {
                // Carriage return and erase-to-end-of-line redraw the line in place.
                eprint!("\r{line}\x1b[K");
                let _ = std::io::stderr().flush();
            } else {
                eprintln!("{line}");
            }
        }
    }

    /// Shows the final count and the time taken, ending the line.
    pub fn finish(&mut self) {
        let line = format!(
            "{}, done in {:.1} s",
            self.line(),
            self.started.elapsed().as_secs_f64()
        );
        if self.terminal {
            eprintln!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
    }

    fn line(&self) -> String {
        let percent = if self.total == 0 {
            100.0
        } else {
            (self.done as f64 * 100.0 / self.total as f64).min(100.0)
        };
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            self.done as f64 / seconds
        } else {
            0.0
        };
        format!(
            "{}: {} of {} ({percent:.0} %, {rate:.0}/s)",
            self.label, self.done, self.total
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_caps_percent_and_handles_empty_total() {
        let mut progress = Progress::new("Sending", 4);
        progress.done = 6;
        assert!(progress.line().starts_with("Sending: 6 of 4 (100 %"));
        let empty = Progress::new("Reading", 0);
        assert!(empty.line().starts_with("Reading: 0 of 0 (100 %"));
    }
}
