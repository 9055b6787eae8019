//! What the run ran on: CPU, cores, kernel, date, Berth's commit and registry:2's version.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

/// Machine and version information for the report header.
#[derive(Clone, Debug, Serialize)]
pub struct MachineInfo {
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Cores available to this process.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// Start of the run, UTC (ISO 8601).
    pub date_utc: String,
    /// `git rev-parse --short HEAD` of the repository Berth was built from.
    pub berth_commit: String,
    /// Whether tracked files differed from that commit (the binary may include those changes).
    pub berth_worktree_dirty: bool,
    /// `docker-registry --version`.
    pub registry_version: String,
}

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Gathers the information; unknown parts read "unknown".
pub fn collect(registry_bin: &Path) -> MachineInfo {
    let unknown = || "unknown".to_owned();
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(unknown);
    MachineInfo {
        cpu_model,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| unknown()),
        date_utc: run("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_else(unknown),
        berth_commit: run("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(unknown),
        berth_worktree_dirty: run("git", &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty()),
        registry_version: run(&registry_bin.to_string_lossy(), &["--version"]).unwrap_or_else(unknown),
    }
}
