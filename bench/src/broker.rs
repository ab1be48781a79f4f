//! The broker of a run: one given with --bootstrap, or a tansu broker started with
//! `scripts/broker start PORT` on 127.0.0.1 and stopped at the end.

use std::path::PathBuf;

use anyhow::{bail, Context};

/// The broker a run uses.
pub struct Broker {
    pub bootstrap: String,
    /// Process id, when known, for CPU time and memory figures.
    pub pid: Option<u32>,
    /// Port of the broker this run started, which it stops at the end.
    started_port: Option<u16>,
}

/// Returns the `scripts/broker` of the workspace this binary was built from.
fn script() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/broker"))
}

impl Broker {
    /// Uses a broker that is already running.
    pub fn given(bootstrap: String, pid: Option<u32>) -> Broker {
        Broker {
            bootstrap,
            pid,
            started_port: None,
        }
    }

    /// Starts tansu on `port`, or on a free port when `port` is `None`.
    pub fn start(port: Option<u16>) -> anyhow::Result<Broker> {
        let port = match port {
            Some(port) => port,
            None => free_port()?,
        };
        let script = script();
        let status = std::process::Command::new(&script)
            .args(["start", &port.to_string()])
            .status()
            .with_context(|| format!("running {} start {port}", script.display()))?;
        if !status.success() {
            bail!("{} start {port} failed ({status})", script.display());
        }
        let pid_file = script
            .parent()
            .and_then(|scripts| scripts.parent())
            .map(|root| root.join(format!(".aurora/broker-{port}.pid")));
        let pid = pid_file
            .and_then(|path| std::fs::read_to_string(path).ok())
            .and_then(|text| text.trim().parse().ok());
        Ok(Broker {
            bootstrap: format!("127.0.0.1:{port}"),
            pid,
            started_port: Some(port),
        })
    }

    /// Stops the broker when this run started it.
    pub fn stop(&self) {
        let Some(port) = self.started_port else {
            return;
        };
        let script = script();
        let result = std::process::Command::new(&script)
            .args(["stop", &port.to_string()])
            .status();
        if !matches!(result, Ok(status) if status.success()) {
            eprintln!(
                "Stopping the broker on port {port} failed; run {} stop {port}.",
                script.display()
            );
        }
    }
}

/// Returns a loopback port that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    let socket = std::net::TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(socket.local_addr()?.port())
}
