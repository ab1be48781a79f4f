//! The figures of a run, printed as a table and written as JSON.

use serde::Serialize;

use crate::ceiling::{BrokerCeiling, HttpCeiling};

const MIB: f64 = 1024.0 * 1024.0;

/// Everything a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The command line that produced these figures.
    pub command: String,
    pub machine: Machine,
    pub broker: BrokerInfo,
    pub scenario: Scenario,
    pub pipeline: Pipeline,
    pub latency_ms: Latency,
    pub ceilings: Option<Ceilings>,
    pub components: Vec<ComponentFigures>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    /// 1-, 5- and 15-minute load averages at the end of the run.
    pub load_average: String,
}

impl Machine {
    /// Describes this machine from /proc.
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(|| "unknown".into(), |(_, model)| model.trim().to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            memory_gib: (memory_kib / MIB * 10.0).round() / 10.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|text| text.trim().to_string())
                .unwrap_or_default(),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .map(|text| {
                    text.split_whitespace()
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct BrokerInfo {
    pub kind: String,
    pub bootstrap: String,
    /// Whether this run started the broker, fresh and empty.
    pub started_by_bench: bool,
}

#[derive(Debug, Serialize)]
pub struct Scenario {
    pub events: u64,
    pub endpoints: usize,
    pub failing_endpoints: usize,
    /// Events per second produced; `None` when produced as fast as the producer took them.
    pub rate: Option<f64>,
    pub backlog: bool,
    pub payload_bytes: usize,
    pub partitions: i32,
}

#[derive(Debug, Serialize)]
pub struct Pipeline {
    /// (event, endpoint) pairs that must arrive.
    pub expected: u64,
    /// Pairs that arrived with a 2xx response, each counted once.
    pub delivered: u64,
    /// Repeated 2xx arrivals of a pair that had already arrived.
    pub duplicates: u64,
    /// Requests that failing endpoints rejected with 500 on purpose.
    pub failed_on_purpose: u64,
    /// Requests whose signature or body did not verify.
    pub rejected: u64,
    /// Connections the receiver accepted during the whole run, ceilings and warm-up included.
    pub receiver_connections: u64,
    /// Whether every expected pair arrived before the timeout.
    pub complete: bool,
    /// From the start of the measured run to the last first arrival.
    pub seconds: f64,
    /// Deliveries per second end to end: delivered / seconds.
    pub per_second: f64,
    /// Events produced per second (until every acknowledgement).
    pub produce_per_second: f64,
    pub produce_seconds: f64,
}

/// Produce-to-receive latency of first arrivals, from the send time in the payload to the
/// receiver's clock.
#[derive(Debug, Default, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    /// Nearest-rank percentiles of latencies in microseconds.
    pub fn from_micros(mut latencies_us: Vec<u32>) -> Latency {
        if latencies_us.is_empty() {
            return Latency::default();
        }
        latencies_us.sort_unstable();
        let at = |quantile: f64| {
            let rank = (quantile * latencies_us.len() as f64).ceil() as usize;
            f64::from(latencies_us[rank.clamp(1, latencies_us.len()) - 1]) / 1000.0
        };
        Latency {
            samples: latencies_us.len(),
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: at(1.0),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Ceilings {
    pub broker: BrokerCeiling,
    pub http: HttpCeiling,
    /// Pipeline deliveries per second divided by the broker ceiling.
    pub pipeline_to_broker: f64,
    /// Pipeline deliveries per second divided by the HTTP ceiling.
    pub pipeline_to_http: f64,
}

#[derive(Debug, Serialize)]
pub struct ComponentFigures {
    pub name: String,
    pub pid: Option<u32>,
    /// CPU seconds spent during the measured run.
    pub cpu_seconds: f64,
    /// Peak resident set size over the process's life, in MiB; `None` when not measurable
    /// separately (threads of the bench process).
    pub peak_rss_mib: Option<f64>,
}

impl ComponentFigures {
    pub fn new(
        name: &str,
        pid: Option<u32>,
        cpu_seconds: f64,
        peak_rss_bytes: Option<u64>,
    ) -> Self {
        ComponentFigures {
            name: name.to_string(),
            pid,
            cpu_seconds: round(cpu_seconds, 2),
            peak_rss_mib: peak_rss_bytes.map(|bytes| round(bytes as f64 / MIB, 1)),
        }
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

impl Report {
    /// Prints the figures as a table.
    pub fn print(&self) {
        self.print_setting();
        self.print_pipeline();
        if let Some(ceilings) = &self.ceilings {
            self.print_ceilings(ceilings);
        }
        self.print_processes();
    }

    fn print_setting(&self) {
        let scenario = &self.scenario;
        println!();
        println!("AuroraPress benchmark: {}", self.command);
        println!(
            "machine: {} CPUs ({}), {} GiB, Linux {}, load average {}; broker: {} at {}",
            self.machine.cpus,
            self.machine.cpu_model,
            self.machine.memory_gib,
            self.machine.kernel,
            self.machine.load_average,
            self.broker.kind,
            self.broker.bootstrap
        );
        let rate = scenario
            .rate
            .map_or_else(|| "unpaced".to_string(), |rate| format!("{rate}/s"));
        println!(
            "scenario: {} events x {} endpoints ({} failing), {rate}, {}payload {} B, {} partitions",
            scenario.events,
            scenario.endpoints,
            scenario.failing_endpoints,
            if scenario.backlog { "backlog drained from cold, " } else { "" },
            scenario.payload_bytes,
            scenario.partitions
        );
    }

    fn print_pipeline(&self) {
        let pipeline = &self.pipeline;
        println!();
        let status = if pipeline.complete {
            "complete"
        } else {
            "INCOMPLETE"
        };
        println!(
            "deliveries      {:>10} of {} ({status}), {} duplicates, {} failed on purpose, {} rejected, {} connections",
            pipeline.delivered, pipeline.expected, pipeline.duplicates, pipeline.failed_on_purpose, pipeline.rejected, pipeline.receiver_connections
        );
        println!(
            "end to end      {:>10.0} deliveries/s over {:.1} s",
            pipeline.per_second, pipeline.seconds
        );
        println!(
            "produce         {:>10.0} events/s over {:.1} s",
            pipeline.produce_per_second, pipeline.produce_seconds
        );
        let latency = &self.latency_ms;
        println!(
            "latency (ms)    p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  ({} samples)",
            latency.p50, latency.p99, latency.p999, latency.max, latency.samples
        );
    }

    fn print_processes(&self) {
        println!();
        println!(
            "{:<28} {:>8} {:>12} {:>14}",
            "process", "pid", "CPU seconds", "peak RSS MiB"
        );
        for component in &self.components {
            println!(
                "{:<28} {:>8} {:>12.2} {:>14}",
                component.name,
                component
                    .pid
                    .map_or_else(|| "-".into(), |pid| pid.to_string()),
                component.cpu_seconds,
                component
                    .peak_rss_mib
                    .map_or_else(|| "-".into(), |mib| format!("{mib:.1}"))
            );
        }
    }

    fn print_ceilings(&self, ceilings: &Ceilings) {
        let broker = &ceilings.broker;
        let http = &ceilings.http;
        println!(
            "broker ceiling  {:>10.0} records/s produce-then-consume ({} records: produce {:.0}/s, consume {:.0}/s); pipeline at {:.2}x",
            broker.per_second, broker.records, broker.produce_per_second, broker.consume_per_second, ceilings.pipeline_to_broker
        );
        println!(
            "HTTP ceiling    {:>10.0} requests/s ({} requests, {} at once, {} failed); pipeline at {:.2}x",
            http.per_second, http.requests, http.concurrency, http.failed, ceilings.pipeline_to_http
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let latency = Latency::from_micros((1..=1000).rev().collect());
        assert_eq!(latency.samples, 1000);
        assert_eq!(latency.p50, 0.5);
        assert_eq!(latency.p99, 0.99);
        assert_eq!(latency.p999, 0.999);
        assert_eq!(latency.max, 1.0);
    }

    #[test]
    fn percentiles_of_one_sample() {
        let latency = Latency::from_micros(vec![2500]);
        assert_eq!(latency.p50, 2.5);
        assert_eq!(latency.p999, 2.5);
    }
}
