//! The pipeline's components as separate `aurora` processes, and what Linux reports of each:
//! CPU time from /proc/PID/stat and peak resident memory (VmHWM) from /proc/PID/status.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::process::{Child, Command};

/// How long a component may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// CPU time and memory of a process at one moment.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    /// User and system CPU time since the process started, in seconds.
    pub cpu_seconds: f64,
    /// Peak resident set size since the process started, in bytes.
    pub peak_rss_bytes: u64,
}

/// Reads the CPU time and peak RSS of process `pid`.
pub fn usage(pid: u32) -> anyhow::Result<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    Ok(Usage {
        cpu_seconds: cpu_seconds(&stat).with_context(|| format!("parsing /proc/{pid}/stat"))?,
        peak_rss_bytes: peak_rss_bytes(&status)
            .with_context(|| format!("no VmHWM in /proc/{pid}/status"))?,
    })
}

/// CPU seconds of the threads of this process whose name starts with `prefix`.
pub fn thread_cpu_seconds(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter(|stat| thread_name(stat).is_some_and(|name| name.starts_with(prefix)))
        .filter_map(|stat| cpu_seconds(&stat))
        .sum()
}

/// CPU seconds all processes of the machine have spent busy since boot, from /proc/stat:
/// user, nice, system, irq, softirq and steal time of every CPU together.
pub fn machine_busy_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().find(|line| line.starts_with("cpu ")) else {
        return 0.0;
    };
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    // Fields: user nice system idle iowait irq softirq steal guest guest_nice.
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&index| ticks.get(index))
        .sum();
    busy as f64 / ticks_per_second()
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

fn thread_name(stat: &str) -> Option<&str> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    stat.get(open + 1..close)
}

/// utime + stime of a /proc stat line, in seconds. The command name in parentheses may hold
/// spaces, so fields are counted from the last ')': state is field 3, utime 14, stime 15.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / ticks_per_second())
}

fn peak_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A running `aurora` component.
pub struct Component {
    pub name: &'static str,
    pub pid: u32,
    child: Child,
}

impl Component {
    /// Starts `aurora NAME` with `env`, its log in `log_dir/NAME.log`.
    pub fn spawn(
        aurora: &Path,
        name: &'static str,
        env: &[(String, String)],
        log_dir: &Path,
    ) -> anyhow::Result<Component> {
        let log_path = log_dir.join(format!("{name}.log"));
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let child = Command::new(aurora)
            .arg(name)
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} {name}", aurora.display()))?;
        let pid = child
            .id()
            .with_context(|| format!("aurora {name} exited at once"))?;
        Ok(Component { name, pid, child })
    }

    /// Returns whether the process has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits for the exit; kills the process when it takes too long.
    pub async fn stop(mut self) {
        signal(self.pid, libc::SIGTERM);
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            eprintln!(
                "aurora {} did not stop within {STOP_TIMEOUT:?}; killing it.",
                self.name
            );
            let _ = self.child.kill().await;
        }
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill has no memory preconditions; the pid is one of our own children.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// A `perf record` session attached to one process.
pub struct Profile {
    child: Child,
    pub output: PathBuf,
}

impl Profile {
    /// Starts sampling `pid` (cpu-clock, DWARF call graphs) into `dir/NAME.perf.data`.
    pub fn start(pid: u32, name: &str, dir: &Path) -> anyhow::Result<Profile> {
        let output = dir.join(format!("{name}.perf.data"));
        let child = Command::new("perf")
            .args(["record", "-q", "-e", "cpu-clock", "-F", "499"])
            .args(["--call-graph", "dwarf,16384", "-p", &pid.to_string(), "-o"])
            .arg(&output)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting perf record; install perf or run without --profile")?;
        Ok(Profile { child, output })
    }

    /// Stops sampling (SIGINT, which makes perf write its file) and waits for perf to exit.
    pub async fn finish(mut self) {
        if let Some(pid) = self.child.id() {
            signal(pid, libc::SIGINT);
        }
        if tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_counted_after_name() {
        let stat = "42 (aurora (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0";
        let seconds = cpu_seconds(stat).unwrap();
        assert!((seconds - 300.0 / ticks_per_second()).abs() < 1e-9);
        assert_eq!(thread_name(stat), Some("aurora (x) y"));
    }

    #[test]
    fn peak_rss_read_from_status() {
        let status = "Name:\taurora\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\n";
        assert_eq!(peak_rss_bytes(status), Some(2048 * 1024));
    }

    #[test]
    fn own_usage_is_readable() {
        let usage = usage(std::process::id()).unwrap();
        assert!(usage.peak_rss_bytes > 0);
    }
}
