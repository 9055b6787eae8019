//! A `berth serve` started with a configuration file, whose log (standard error) goes to a file
//! the test reads, and which may report a metrics listener on its second stdout line. Shared by
//! `metrics.rs` and `access_log.rs` (included with `#[path]`, next to `mod common`).

#![allow(dead_code, reason = "each test binary uses a different subset of these helpers")]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{Harness, Process, berth_binary};

/// The line `berth serve` prints after the listening line when `[metrics] listen` is set.
const METRICS_PREFIX: &str = "berth metrics on ";

/// A running server: its harness (requests, CLI on its data directory), its log file, and the
/// base URL of its metrics listener when it has one. Killed on drop.
pub struct Observed {
    /// Requests to the main listener; `cli` on the data directory.
    pub harness: Harness,
    /// `http://127.0.0.1:PORT` of the separate metrics listener.
    pub metrics_base: Option<String>,
    /// Where the server's standard error (its log) goes.
    pub log: PathBuf,
    child: Child,
    _temp: tempfile::TempDir,
}

impl Observed {
    /// Starts `berth serve --config <file with config_toml>` on `127.0.0.1:0` with `RUST_LOG`
    /// = `rust_log`. With `metrics_listener`, reads the metrics listener's address from the
    /// second stdout line.
    pub fn start(config_toml: &str, rust_log: &str, metrics_listener: bool) -> Observed {
        let temp = tempfile::Builder::new()
            .prefix("berth-observed-")
            .tempdir()
            .expect("tempdir");
        let data_dir = temp.path().join("data");
        let config = temp.path().join("berth.toml");
        std::fs::write(&config, config_toml).expect("write config");
        let log = temp.path().join("berth.log");
        let log_file = std::fs::File::create(&log).expect("create log file");
        let mut child = Command::new(berth_binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data_dir)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn berth");
        let stdout = child.stdout.take().expect("berth stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut next_line = || lines.next().and_then(Result::ok).unwrap_or_default();
        let first = next_line();
        let Some(address) = first.trim().strip_prefix(berth_testkit::LISTENING_PREFIX) else {
            let _ = child.kill();
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("berth did not report its address; first stdout line was {first:?}; log:\n{log_text}");
        };
        let base_url = format!("http://{address}");
        let metrics_base = metrics_listener.then(|| {
            let second = next_line();
            match second.trim().strip_prefix(METRICS_PREFIX) {
                Some(base) => base.to_owned(),
                None => {
                    let _ = child.kill();
                    panic!("berth did not report its metrics listener; second stdout line was {second:?}");
                }
            }
        });
        Observed {
            harness: Harness::over(Process::External { base_url, data_dir }),
            metrics_base,
            log,
            child,
            _temp: temp,
        }
    }

    /// The log written so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).expect("read the server's log")
    }

    /// Waits (up to 10 s) until `check` accepts the log; returns the log it accepted, or
    /// panics with the log.
    pub async fn wait_for_log(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        for _ in 0..200 {
            let text = self.log_text();
            if check(&text) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the log never showed {what}:\n{}", self.log_text());
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
