//! The results as JSON (everything) and Markdown (the tables a README can embed).

use std::fmt::Write as _;

use serde::Serialize;

use crate::figures::{Figure, fmt_num};
use crate::limits::Limits;
use crate::machine::MachineInfo;
use crate::workloads::Scale;

/// Everything one run produced.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Machine and versions.
    pub machine: MachineInfo,
    /// Sizes and durations used.
    pub scale: Scale,
    /// Wall-clock seconds of the whole run.
    pub wall_seconds: f64,
    /// The machine limits, when measured.
    pub limits: Option<Limits>,
    /// How to read `ratio`.
    pub ratio_meaning: &'static str,
    /// Every figure.
    pub figures: Vec<Figure>,
    /// Workloads that failed, with their errors.
    pub failures: Vec<String>,
}

/// The meaning of every ratio in the report.
pub const RATIO_MEANING: &str = "Berth's advantage over registry:2; > 1 means Berth is better. \
     Berth ÷ registry:2 for rates (MB/s, req/s, images/s); registry:2 ÷ Berth for times, \
     latencies, CPU per operation and memory.";

fn ratio(r: Option<f64>) -> String {
    r.map_or("—".to_owned(), |r| format!("{}×", fmt_num(r)))
}

fn value(v: Option<f64>) -> String {
    v.map_or("—".to_owned(), fmt_num)
}

fn met(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "✅",
        Some(false) => "❌",
        None => "—",
    }
}

impl Report {
    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut s = String::new();
        let _ = writeln!(s, "# Berth vs registry:2\n");
        if self.scale.quick {
            let _ = writeln!(
                s,
                "> **QUICK SMOKE-TEST RUN (`--quick`): sizes and durations scaled down; not representative.**\n"
            );
        }
        let _ = writeln!(
            s,
            "{} · {} cores · Linux {} · {} · Berth {}{} · registry:2 = {} · run took {:.0} s (before cleanup)\n",
            m.cpu_model,
            m.cores,
            m.kernel,
            m.date_utc,
            m.berth_commit,
            if m.berth_worktree_dirty {
                " (with uncommitted changes)"
            } else {
                ""
            },
            m.registry_version,
            self.wall_seconds
        );
        let _ = writeln!(s, "**advantage** = {RATIO_MEANING}\n");
        let _ = writeln!(
            s,
            "| figure | unit | registry:2 | Berth | advantage | server CPU per op: registry:2 | Berth | CPU advantage | target | met |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---|:-:|");
        for f in &self.figures {
            let (cr, cb, ca) = match &f.cpu {
                Some(c) => (
                    c.registry
                        .map_or("—".to_owned(), |v| format!("{} {}", fmt_num(v), c.unit)),
                    value(c.berth),
                    ratio(c.advantage),
                ),
                None => ("".to_owned(), "".to_owned(), "".to_owned()),
            };
            let name = if f.failed.is_some() {
                format!("{} **FAILED**", f.name)
            } else if f.errors() > 0 {
                format!("{} ⚠ **{} failed requests**", f.name, f.errors())
            } else {
                f.name.clone()
            };
            let (reg, adv) = if f.ratio_is_lower_bound {
                let window = f.rate.as_ref().map_or(1.0, |r| r.seconds);
                (format!("< {}", fmt_num(1.0 / window)), format!("≥ {}", ratio(f.ratio)))
            } else {
                (value(f.registry), ratio(f.ratio))
            };
            let _ = writeln!(
                s,
                "| {name} | {} | {reg} | {} | {adv} | {cr} | {cb} | {ca} | {} | {} |",
                f.unit,
                value(f.berth),
                f.target.as_deref().unwrap_or(""),
                met(f.met)
            );
        }

        let rates: Vec<&Figure> = self.figures.iter().filter(|f| f.rate.is_some()).collect();
        if !rates.is_empty() {
            let _ = writeln!(s, "\n### Request latency (load generator)\n");
            let _ = writeln!(
                s,
                "| workload | connections | registry:2 p50 / p99 (ms) | Berth p50 / p99 (ms) | requests registry:2 / Berth | failed registry:2 / Berth |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
            for f in rates {
                if let Some(r) = &f.rate {
                    let lat = |i: usize| {
                        format!(
                            "{} / {}",
                            fmt_num(r.latency[i].p50_us / 1e3),
                            fmt_num(r.latency[i].p99_us / 1e3)
                        )
                    };
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {} / {} | {} / {} |",
                        f.name,
                        r.connections,
                        lat(0),
                        lat(1),
                        r.requests[0],
                        r.requests[1],
                        r.errors[0],
                        r.errors[1]
                    );
                }
            }
        }

        if let Some(l) = &self.limits {
            let _ = writeln!(s, "\n### Machine limits (same run)\n");
            let _ = writeln!(s, "| limit | MB/s | how |");
            let _ = writeln!(s, "|---|---:|---|");
            let _ = writeln!(
                s,
                "| sha256_core | {} | sha2 0.11, one thread, 1 MiB updates, best of 3 |",
                fmt_num(l.sha256_core)
            );
            let _ = writeln!(
                s,
                "| loopback_tcp | {} | one writer thread, one reader thread, 1 MiB writes, best of 3 |",
                fmt_num(l.loopback_tcp)
            );
            let _ = writeln!(
                s,
                "| disk_durable_write | {} | 1 MiB writes then fsync, in the work directory, median of 3 |",
                fmt_num(l.disk_durable_write)
            );
            let fractions: Vec<&Figure> = self.figures.iter().filter(|f| f.fraction_of_limit.is_some()).collect();
            if !fractions.is_empty() {
                let _ = writeln!(s, "\n| figure | of limit | registry:2 | Berth |");
                let _ = writeln!(s, "|---|---|---:|---:|");
                for f in fractions {
                    if let Some(fr) = &f.fraction_of_limit {
                        let pct = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{:.0} %", v * 100.0));
                        let _ = writeln!(
                            s,
                            "| {} | {} ({} MB/s) | {} | {} |",
                            f.name,
                            fr.limit,
                            fmt_num(fr.limit_mb_s),
                            pct(fr.registry),
                            pct(fr.berth)
                        );
                    }
                }
            }
        }

        let noted: Vec<&Figure> = self
            .figures
            .iter()
            .filter(|f| !f.notes.is_empty() || f.failed.is_some())
            .collect();
        if !noted.is_empty() {
            let _ = writeln!(s, "\n### Notes\n");
            for f in noted {
                let mut parts = f.notes.clone();
                if let Some(e) = &f.failed {
                    parts.push(format!("**FAILED: {}**", e.replace('\n', " ")));
                }
                if let Some(r) = &f.rate {
                    for (i, who) in ["registry:2", "Berth"].iter().enumerate() {
                        if let Some(e) = &r.first_error[i] {
                            parts.push(format!("**{who}: first failure: {e}**"));
                        }
                    }
                }
                let _ = writeln!(s, "- **{}**: {}", f.name, parts.join("; "));
            }
        }
        s
    }
}
