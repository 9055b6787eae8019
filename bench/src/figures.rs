//! The result model: one `Figure` per reported number, with both servers' values, the ratio
//! oriented so that > 1 means Berth is better, and the target it is held to.

use serde::Serialize;

/// Which direction is better for a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Rates: MB/s, requests/s, images/s.
    Higher,
    /// Times, latencies, CPU and memory.
    Lower,
}

/// Advantage of Berth over registry:2: `berth / registry` when higher is better,
/// `registry / berth` when lower is better, so that > 1 always means Berth is better.
pub fn advantage(better: Better, registry: f64, berth: f64) -> Option<f64> {
    let (num, den) = match better {
        Better::Higher => (berth, registry),
        Better::Lower => (registry, berth),
    };
    (num.is_finite() && den.is_finite() && num > 0.0 && den > 0.0).then(|| num / den)
}

/// Server CPU time per operation for both servers.
#[derive(Clone, Debug, Serialize)]
pub struct Cpu {
    /// e.g. `CPU-s/GiB` or `CPU-µs/request`.
    pub unit: String,
    /// registry:2's value.
    pub registry: Option<f64>,
    /// Berth's value.
    pub berth: Option<f64>,
    /// registry / berth: > 1 means Berth uses less CPU per operation.
    pub advantage: Option<f64>,
}

impl Cpu {
    /// Builds the pair and its advantage (lower is better).
    pub fn new(unit: &str, registry: Option<f64>, berth: Option<f64>) -> Self {
        let advantage = match (registry, berth) {
            (Some(r), Some(b)) => advantage(Better::Lower, r, b),
            _ => None,
        };
        Self {
            unit: unit.to_owned(),
            registry,
            berth,
            advantage,
        }
    }
}

/// Latency percentiles of one server in a rate workload, in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Slowest request.
    pub max_us: f64,
}

/// Details of a rate (load-generator) run for both servers.
#[derive(Clone, Debug, Serialize)]
pub struct RateDetail {
    /// Concurrent connections.
    pub connections: usize,
    /// Seconds of the measured window.
    pub seconds: f64,
    /// Requests completed in the window (registry:2, Berth).
    pub requests: [u64; 2],
    /// Failed requests: transport errors, non-2xx statuses, unexpected bodies (registry:2, Berth).
    pub errors: [u64; 2],
    /// The first error seen, if any (registry:2, Berth).
    pub first_error: [Option<String>; 2],
    /// Requests abandoned in flight when the window closed (registry:2, Berth).
    pub abandoned: [u64; 2],
    /// Latency (registry:2, Berth).
    pub latency: [Latency; 2],
}

/// One condition of a target.
#[derive(Clone, Debug, Serialize)]
pub struct Condition {
    /// What is required, e.g. `≥ 10× registry:2` or `Berth p99 < 10 ms`.
    pub description: String,
    /// Whether the run met it.
    pub met: bool,
}

/// A figure as reported: one number for each server.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    /// Stable name, e.g. `push_monolithic_1g`.
    pub name: String,
    /// Unit of the values, e.g. `MB/s`.
    pub unit: String,
    /// Which direction is better.
    pub better_when: Better,
    /// registry:2's value (the median of its repetitions).
    pub registry: Option<f64>,
    /// Berth's value (the median of its repetitions).
    pub berth: Option<f64>,
    /// The advantage of Berth (see [`advantage`]); > 1 means Berth is better.
    pub ratio: Option<f64>,
    /// The ratio is only a lower bound (registry:2 completed nothing in the window).
    pub ratio_is_lower_bound: bool,
    /// Every repetition (registry:2).
    pub registry_samples: Vec<f64>,
    /// Every repetition (Berth).
    pub berth_samples: Vec<f64>,
    /// Server CPU per operation.
    pub cpu: Option<Cpu>,
    /// Load-generator details for rate workloads.
    pub rate: Option<RateDetail>,
    /// Fraction of a machine limit reached (registry:2, Berth), with the limit's name.
    pub fraction_of_limit: Option<LimitFraction>,
    /// The speed-up the target asks for, if it is a ratio (for the chart's marker).
    pub target_ratio: Option<f64>,
    /// Human-readable target.
    pub target: Option<String>,
    /// Every condition of the target.
    pub conditions: Vec<Condition>,
    /// All conditions met (None when the figure has no target or could not be measured).
    pub met: Option<bool>,
    /// Free-form remarks (sizes, how something was populated, bounds).
    pub notes: Vec<String>,
    /// Set when the workload failed: the error message.
    pub failed: Option<String>,
}

/// A push or pull figure as a fraction of a machine limit.
#[derive(Clone, Debug, Serialize)]
pub struct LimitFraction {
    /// e.g. `min(sha256_core, disk_durable_write)`.
    pub limit: String,
    /// The limit in MB/s.
    pub limit_mb_s: f64,
    /// registry:2's fraction.
    pub registry: Option<f64>,
    /// Berth's fraction.
    pub berth: Option<f64>,
}

impl Figure {
    /// A figure from both servers' samples; the value is each one's median.
    pub fn new(name: &str, unit: &str, better: Better, registry: Vec<f64>, berth: Vec<f64>) -> Self {
        let r = median(&registry);
        let b = median(&berth);
        let ratio = match (r, b) {
            (Some(r), Some(b)) => advantage(better, r, b),
            _ => None,
        };
        Self {
            name: name.to_owned(),
            unit: unit.to_owned(),
            better_when: better,
            registry: r,
            berth: b,
            ratio,
            ratio_is_lower_bound: false,
            registry_samples: registry,
            berth_samples: berth,
            cpu: None,
            rate: None,
            fraction_of_limit: None,
            target_ratio: None,
            target: None,
            conditions: Vec::new(),
            met: None,
            notes: Vec::new(),
            failed: None,
        }
    }

    /// A figure for a workload that failed.
    pub fn failed(name: &str, unit: &str, better: Better, error: String) -> Self {
        let mut f = Self::new(name, unit, better, Vec::new(), Vec::new());
        f.failed = Some(error);
        f
    }

    /// Attaches server CPU per operation (medians of the samples).
    pub fn with_cpu(mut self, unit: &str, registry: &[f64], berth: &[f64]) -> Self {
        self.cpu = Some(Cpu::new(unit, median(registry), median(berth)));
        self
    }

    /// Adds a target "Berth ≥ `ratio`× registry:2" (oriented like the ratio).
    pub fn target_speedup(mut self, ratio: f64) -> Self {
        self.target_ratio = Some(ratio);
        let met = self.ratio.is_some_and(|r| r >= ratio);
        self.push_condition(format!("≥ {ratio}× registry:2"), met);
        self
    }

    /// Adds a condition computed by the workload.
    pub fn condition(mut self, description: impl Into<String>, met: bool) -> Self {
        self.push_condition(description.into(), met);
        self
    }

    fn push_condition(&mut self, description: String, met: bool) {
        self.conditions.push(Condition { description, met });
        self.target = Some(
            self.conditions
                .iter()
                .map(|c| c.description.as_str())
                .collect::<Vec<_>>()
                .join(" and "),
        );
        let measured = self.registry.is_some() || self.berth.is_some();
        self.met = Some(measured && self.failed.is_none() && self.conditions.iter().all(|c| c.met));
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Total errors across both servers in a rate run.
    pub fn errors(&self) -> u64 {
        self.rate.as_ref().map_or(0, |r| r.errors.iter().sum())
    }
}

/// Median of the finite samples (mean of the middle two for an even count).
pub fn median(samples: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// A number with about three significant digits, without exponent for ordinary magnitudes.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".to_owned();
    }
    let a = x.abs();
    if a == 0.0 {
        "0".to_owned()
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else if a >= 0.01 {
        format!("{x:.3}")
    } else {
        format!("{x:.2e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advantage_is_oriented() {
        assert_eq!(advantage(Better::Higher, 100.0, 300.0), Some(3.0));
        assert_eq!(advantage(Better::Lower, 30.0, 10.0), Some(3.0));
        assert_eq!(advantage(Better::Lower, 30.0, 0.0), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn targets_combine() {
        let f = Figure::new("x", "MB/s", Better::Higher, vec![100.0], vec![350.0])
            .target_speedup(3.0)
            .condition("≥ 0.85 × limit", false);
        assert_eq!(f.ratio, Some(3.5));
        assert_eq!(f.met, Some(false));
        assert_eq!(f.target.as_deref(), Some("≥ 3× registry:2 and ≥ 0.85 × limit"));
        let g = Figure::new("y", "ms", Better::Lower, vec![], vec![50.0]).condition("Berth < 100 ms", true);
        assert_eq!(g.met, Some(true));
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(fmt_num(1234.5), "1234");
        assert_eq!(fmt_num(12.345), "12.3");
        assert_eq!(fmt_num(1.2345), "1.23");
        assert_eq!(fmt_num(0.12345), "0.123");
    }
}
