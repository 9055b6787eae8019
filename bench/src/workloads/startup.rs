//! startup: time from spawning a server on a fresh data directory to its first `200` on
//! `GET /v2/`, polled on a new connection every millisecond.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::figures::{Better, Figure};
use crate::servers::{self, Binaries, Kind};

/// Runs `runs` alternating starts of each server (after one untimed start each, so that both
/// binaries are in the page cache) and reports the median in milliseconds.
pub fn startup(bins: &Binaries, work_dir: &Path, runs: usize) -> Result<Figure> {
    let dir = work_dir.join("startup");
    for kind in Kind::ALTERNATION {
        once(bins, &dir, kind, "warmup").with_context(|| format!("{kind} warm-up start"))?;
    }
    let mut ms: [Vec<f64>; 2] = Default::default();
    for run in 0..runs {
        for (i, kind) in Kind::ALTERNATION.into_iter().enumerate() {
            let t = once(bins, &dir, kind, &run.to_string()).with_context(|| format!("{kind} start {run}"))?;
            ms[i].push(t.as_secs_f64() * 1e3);
        }
    }
    eprintln!("    registry:2 {:?} ms", rounded(&ms[0]));
    eprintln!("    Berth      {:?} ms", rounded(&ms[1]));
    let _ = std::fs::remove_dir_all(&dir);
    let [r, b] = ms;
    let f = Figure::new("startup", "ms", Better::Lower, r, b);
    let met = f.berth.is_some_and(|b| b < 100.0);
    Ok(f.condition("Berth < 100 ms", met).note(format!(
        "median of {runs} starts on a fresh data directory, spawn to first 200 on GET /v2/"
    )))
}

fn rounded(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| (x * 10.0).round() / 10.0).collect()
}

/// One start: spawn, poll, kill. Returns spawn-to-200.
fn once(bins: &Binaries, dir: &Path, kind: Kind, label: &str) -> Result<Duration> {
    let data = dir.join(format!("{}-{label}", kind.slug()));
    std::fs::create_dir_all(&data)?;
    let log = dir.join(format!("{}-{label}.log", kind.slug()));
    let port = servers::free_port()?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // Everything but the spawn itself is prepared before the clock starts.
    let mut cmd = match kind {
        Kind::Berth => servers::berth_command(&bins.berth, &data, &addr.to_string(), &log)?,
        Kind::Registry => servers::registry_command(&bins.registry, &data, &data.with_extension("yml"), port, &log)?,
    };
    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("spawning {kind}"))?;
    let mut guard = KillOnDrop(child);
    let deadline = start + Duration::from_secs(30);
    loop {
        if servers::get_v2_status(addr).ok() == Some(200) {
            let elapsed = start.elapsed();
            guard.0.kill()?;
            guard.0.wait()?;
            return Ok(elapsed);
        }
        if let Some(status) = guard.0.try_wait()? {
            bail!(
                "{kind} exited ({status}) during startup; log:\n{}",
                servers::log_tail(&log)
            );
        }
        if Instant::now() > deadline {
            bail!("{kind} did not answer 200 on GET /v2/ within 30 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
