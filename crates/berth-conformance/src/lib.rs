//! Black-box conformance suite for the [OCI Distribution Specification v1.1].
//!
//! The suite drives the four workflow categories of the specification
//! (spec "Workflow Categories": Pull, Push, Content Discovery, Content
//! Management) over plain HTTP(S) against any registry URL. It knows nothing of
//! the registry's implementation. It is modelled on the official Go suite
//! (`opencontainers/distribution-spec/conformance`) and ports its checks,
//! including the SHOULD-level ones, and adds checks for spec requirements the
//! Go suite does not cover (exact `Range` headers, error bodies, pagination,
//! `n=0`, tag length limits, Docker media types, ...).
//!
//! All content is generated at run time from random bytes, so repeated runs
//! never collide; what the suite pushes is deleted afterwards where the
//! registry allows it.
//!
//! Every check ends as PASS, FAIL or SKIP. A check is skipped when it does not
//! apply: an OPTIONAL feature the registry does not offer (`_catalog`, a
//! `Link` header on tag pages, referrers filtering) or a prerequisite check
//! that already failed. Error responses are held to the spec's JSON error
//! body (`{"errors":[{"code":…,"message":…}]}`) with the expected code.
//!
//! From the command line:
//!
//! ```text
//! cargo run -p berth-conformance -- http://127.0.0.1:5000 \
//!     [--namespace X] [--cross-mount-namespace Y] [--no-referrers] \
//!     [--deletion-may-be-disabled] [--only pull,push,discovery,management]
//! ```
//!
//! It prints one line per check and ends with `N passed, N failed`; the exit
//! status is 0 iff no check failed.
//!
//! ```no_run
//! # async fn demo() {
//! let config = berth_conformance::Config::new("http://127.0.0.1:5000");
//! let report = berth_conformance::run(&config).await;
//! report.print_summary();
//! assert_eq!(report.failed(), 0);
//! # }
//! ```
//!
//! [OCI Distribution Specification v1.1]: https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md

mod checks;
mod content;
mod http;

pub use http::{append_query, parse_next_link, resolve_location};

/// Which workflow categories to run (spec "Workflow Categories").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workflows {
    /// Spec "Pull": fetching manifests and blobs (MUST be supported by every registry).
    pub pull: bool,
    /// Spec "Push": uploading blobs (monolithic, chunked, streamed, mount) and manifests.
    pub push: bool,
    /// Spec "Content Discovery": listing tags, referrers, and the `_catalog` extension.
    pub discovery: bool,
    /// Spec "Content Management": deleting tags, manifests and blobs.
    pub management: bool,
}

impl Workflows {
    /// Every workflow category.
    pub const fn all() -> Self {
        Self {
            pull: true,
            push: true,
            discovery: true,
            management: true,
        }
    }

    /// No workflow category (the `GET /v2/` base check still runs).
    pub const fn none() -> Self {
        Self {
            pull: false,
            push: false,
            discovery: false,
            management: false,
        }
    }
}

impl Default for Workflows {
    fn default() -> Self {
        Self::all()
    }
}

/// What to test and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Base URL of the registry, e.g. `http://127.0.0.1:5000` (spec "API": the
    /// endpoints live under `/v2/` of this URL).
    pub base_url: String,
    /// Repository name the suite pushes to and pulls from (default
    /// `conformance/test`). Must match the spec's `<name>` grammar.
    pub namespace: String,
    /// A second repository, target of cross-repository blob mounts (spec
    /// "Mounting a blob from another repository"; default `conformance/other`).
    pub cross_mount_namespace: String,
    /// Workflow categories to run.
    pub workflows: Workflows,
    /// Whether to test the referrers API and the `OCI-Subject` response header
    /// (spec "Listing Referrers", "Pushing Manifests with Subject"), new in v1.1.
    pub referrers: bool,
    /// Whether a registry may answer deletions with `400 UNSUPPORTED` or `405`
    /// (spec "Content Management": "Registries MAY implement deletion or they
    /// MAY disable it"). Off by default: deletions must succeed with `202`.
    pub deletion_may_be_disabled: bool,
}

impl Config {
    /// The default configuration for the registry at `base_url`: every
    /// workflow, referrers included, deletion required.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            ..Self::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:5000".to_string(),
            namespace: "conformance/test".to_string(),
            cross_mount_namespace: "conformance/other".to_string(),
            workflows: Workflows::all(),
            referrers: true,
            deletion_may_be_disabled: false,
        }
    }
}

/// Outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// Workflow category: `base`, `pull`, `push`, `discovery` or `management`.
    pub workflow: &'static str,
    /// What was checked, with the expected behaviour.
    pub name: String,
    /// Whether the registry behaved as the specification requires. Skipped
    /// checks count as passed.
    pub passed: bool,
    /// Why the check failed, was skipped, or extra information.
    pub detail: Option<String>,
    /// The check did not apply (an OPTIONAL feature the registry does not
    /// offer, or a prerequisite failed); it neither passes nor fails.
    pub skipped: bool,
}

/// All check results of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every check, in the order it ran.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// Number of checks that passed (skipped checks excluded).
    pub fn passed(&self) -> usize {
        self.checks.iter().filter(|c| c.passed && !c.skipped).count()
    }

    /// Number of checks that failed.
    pub fn failed(&self) -> usize {
        self.checks.iter().filter(|c| !c.passed).count()
    }

    /// Number of checks that were skipped.
    pub fn skipped(&self) -> usize {
        self.checks.iter().filter(|c| c.skipped).count()
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| !c.passed)
    }

    /// Whether every check passed (or was skipped).
    pub fn all_passed(&self) -> bool {
        self.failed() == 0
    }

    /// Prints every check (`PASS`, `FAIL` or `SKIP`, workflow, name, detail)
    /// to stdout, then a last line exactly `N passed, N failed`.
    pub fn print_summary(&self) {
        for c in &self.checks {
            let tag = if c.skipped {
                "SKIP"
            } else if c.passed {
                "PASS"
            } else {
                "FAIL"
            };
            match &c.detail {
                Some(d) => println!("{tag} [{}] {} — {d}", c.workflow, c.name),
                None => println!("{tag} [{}] {}", c.workflow, c.name),
            }
        }
        if self.skipped() > 0 {
            println!("({} skipped)", self.skipped());
        }
        println!("{} passed, {} failed", self.passed(), self.failed());
    }
}

/// Runs the configured workflows against `config.base_url` and reports every
/// check. Never panics on registry misbehaviour: problems become failed checks.
///
/// Order: the base check (spec "Determining Support", `GET /v2/` → 200), then
/// Push, Pull, Content Discovery and Content Management.
pub async fn run(config: &Config) -> Report {
    checks::run(config).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(passed: bool, skipped: bool) -> CheckResult {
        CheckResult {
            workflow: "pull",
            name: "x".into(),
            passed,
            detail: None,
            skipped,
        }
    }

    #[test]
    fn counts() {
        let r = Report {
            checks: vec![
                check(true, false),
                check(false, false),
                check(true, true),
                check(true, false),
            ],
        };
        assert_eq!((r.passed(), r.failed(), r.skipped()), (2, 1, 1));
        assert!(!r.all_passed());
    }

    #[test]
    fn defaults() {
        let c = Config::new("http://x");
        assert_eq!(c.namespace, "conformance/test");
        assert_eq!(c.cross_mount_namespace, "conformance/other");
        assert!(c.referrers && c.workflows.pull && c.workflows.management);
        assert!(!c.deletion_may_be_disabled);
    }

    #[tokio::test]
    async fn unreachable_registry_fails_cleanly() {
        // Port 9 (discard) on loopback: nothing listens there in practice.
        let mut c = Config::new("http://127.0.0.1:9");
        c.workflows = Workflows::none();
        let r = run(&c).await;
        assert_eq!(r.checks.len(), 1);
        assert_eq!(r.failed(), 1);
    }
}
