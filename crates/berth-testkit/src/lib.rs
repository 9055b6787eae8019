//! Test-only helpers shared by Berth's end-to-end tests.
//!
//! [`BerthProcess`] runs the real `berth` binary on `127.0.0.1:0` with its own data directory
//! and learns the bound address from the first line the binary prints on stdout
//! (`berth listening on http://127.0.0.1:PORT`). [`require_tool`] decides what a test does when
//! an external client (docker, skopeo, podman, oras) is missing: skip loudly, or fail when
//! `BERTH_REQUIRE_ALL=1` (as `.ci/run` sets), so CI never passes by skipping.
//!
//! For the end-to-end tests with real clients (`crates/berth/tests/e2e_*.rs`): [`cmd`] runs
//! commands with a time limit and full error reports, [`e2e`] holds the registry under test
//! and the workspace's paths (venv, static busybox), [`http`] is a small client whose errors
//! show the whole exchange, [`names`] makes unique repository names and tags, and [`oci`]
//! builds digests, layers, images and OCI image layouts by hand; [`postgres`] makes a fresh
//! PostgreSQL database for a server on the PostgreSQL metadata backend.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub mod cmd;
pub mod e2e;
pub mod http;
pub mod names;
pub mod oci;
pub mod postgres;
pub mod s3;

/// The prefix of the line `berth serve` prints on stdout once it accepts connections.
pub const LISTENING_PREFIX: &str = "berth listening on http://";

/// A running `berth serve` process with its own data directory. Killed on drop.
pub struct BerthProcess {
    binary: PathBuf,
    data_dir: PathBuf,
    extra_args: Vec<String>,
    /// Environment variables set on the process (e.g. `BERTH_DATABASE__URL`).
    env: Vec<(String, String)>,
    child: Option<Child>,
    addr: SocketAddr,
    _temp: Option<tempfile::TempDir>,
    /// The PostgreSQL database of [`BerthProcess::start_on_postgres`], dropped after the
    /// process is killed.
    _database: Option<postgres::TestDatabase>,
}

impl BerthProcess {
    /// Starts `binary serve` on `127.0.0.1:0` with a fresh temporary data directory.
    pub fn start(binary: &Path) -> anyhow::Result<BerthProcess> {
        let temp = tempfile::Builder::new().prefix("berth-test-").tempdir()?;
        let data_dir = temp.path().join("data");
        let mut process = BerthProcess::start_in(binary, &data_dir, &[])?;
        process._temp = Some(temp);
        Ok(process)
    }

    /// Starts `binary serve` on `127.0.0.1:0` over `data_dir` (kept after drop), with extra
    /// command-line arguments after `serve`.
    pub fn start_in(binary: &Path, data_dir: &Path, extra_args: &[&str]) -> anyhow::Result<BerthProcess> {
        let extra_args: Vec<String> = extra_args.iter().map(|s| (*s).to_owned()).collect();
        let (child, addr) = spawn(binary, data_dir, &extra_args, &[])?;
        Ok(BerthProcess {
            binary: binary.to_owned(),
            data_dir: data_dir.to_owned(),
            extra_args,
            env: Vec::new(),
            child: Some(child),
            addr,
            _temp: None,
            _database: None,
        })
    }

    /// Starts `binary serve` on `127.0.0.1:0` with a fresh temporary data directory (for
    /// blobs) and a fresh PostgreSQL database as its metadata database (`BERTH_DATABASE__URL`;
    /// see [`postgres::TestDatabase`]). `Ok(None)` after a loud SKIP line when no PostgreSQL
    /// server is configured (a panic under `BERTH_REQUIRE_ALL=1`).
    pub fn start_on_postgres(binary: &Path) -> anyhow::Result<Option<BerthProcess>> {
        let Some(database) = postgres::TestDatabase::create("this test runs berth on the PostgreSQL metadata backend")?
        else {
            return Ok(None);
        };
        let temp = tempfile::Builder::new().prefix("berth-test-").tempdir()?;
        let data_dir = temp.path().join("data");
        let env = vec![("BERTH_DATABASE__URL".to_owned(), database.url().to_owned())];
        let (child, addr) = spawn(binary, &data_dir, &[], &env)?;
        Ok(Some(BerthProcess {
            binary: binary.to_owned(),
            data_dir,
            extra_args: Vec::new(),
            env,
            child: Some(child),
            addr,
            _temp: Some(temp),
            _database: Some(database),
        }))
    }

    /// The bound address, e.g. `127.0.0.1:41234`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` as docker, skopeo and podman expect in image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The PostgreSQL database URL of a process started by
    /// [`BerthProcess::start_on_postgres`].
    pub fn database_url(&self) -> Option<&str> {
        self._database.as_ref().map(postgres::TestDatabase::url)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process with SIGKILL (no chance to clean up) and waits for it.
    pub fn kill_hard(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("kill -9 berth")?;
            child.wait()?;
        }
        Ok(())
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit; returns the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("berth is not running");
        };
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                child.kill()?;
                bail!("berth did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the process again over the same data directory (on a new port).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill_hard()?;
        let (child, addr) = spawn(&self.binary, &self.data_dir, &self.extra_args, &self.env)?;
        self.child = Some(child);
        self.addr = addr;
        Ok(())
    }
}

impl Drop for BerthProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(
    binary: &Path,
    data_dir: &Path,
    extra_args: &[String],
    env: &[(String, String)],
) -> anyhow::Result<(Child, SocketAddr)> {
    let mut child = Command::new(binary)
        .arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data")
        .arg(data_dir)
        .args(extra_args)
        .env(
            "RUST_LOG",
            std::env::var("BERTH_TEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stdout = child.stdout.take().context("berth stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let Some(addr) = line.trim().strip_prefix(LISTENING_PREFIX) else {
        let _ = child.kill();
        bail!("berth did not report its address; first stdout line was {line:?}");
    };
    let addr: SocketAddr = addr.parse().with_context(|| format!("parsing address {addr:?}"))?;
    Ok((child, addr))
}

/// Whether `BERTH_REQUIRE_ALL=1` is set: then a missing tool fails the test instead of skipping.
pub fn require_all() -> bool {
    std::env::var("BERTH_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Returns true when `tool` can be run (`tool --version` succeeds, or `probe_args` when given).
/// Otherwise prints a loud SKIP line naming `why` and returns false, or panics when
/// [`require_all`] is set.
pub fn require_tool(tool: &str, probe_args: &[&str], why: &str) -> bool {
    let args: Vec<&str> = if probe_args.is_empty() {
        vec!["--version"]
    } else {
        probe_args.to_vec()
    };
    let ok = Command::new(tool)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    let message = format!("SKIP: `{tool} {}` failed; {why}", args.join(" "));
    if require_all() {
        panic!("{message} (BERTH_REQUIRE_ALL=1 forbids skipping)");
    }
    eprintln!("\n!!!!!!!! {message} !!!!!!!!\n");
    false
}

/// Like [`require_tool`] for any precondition: returns `ok`, after printing a loud SKIP line
/// naming `what` and `why` when it is false, or panics then when [`require_all`] is set.
pub fn require_condition(ok: bool, what: &str, why: &str) -> bool {
    if ok {
        return true;
    }
    let message = format!("SKIP: {what}; {why}");
    if require_all() {
        panic!("{message} (BERTH_REQUIRE_ALL=1 forbids skipping)");
    }
    eprintln!("\n!!!!!!!! {message} !!!!!!!!\n");
    false
}
