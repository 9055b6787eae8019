//! An S3-compatible server on loopback for the object-storage tests: moto (`moto_server`, PyPI
//! `moto[server]`, installed into `.cache/venv` by `scripts/test`).
//!
//! Each test binary (or test) starts its own server on a free port with [`S3Server::start`],
//! which skips loudly when moto is missing (or fails under `BERTH_REQUIRE_ALL=1`). moto accepts
//! any credentials; it implements multipart uploads, `ListMultipartUploads` and presigned URLs.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::e2e::workspace_root;
use crate::require_condition;

/// The access key id the tests use (moto accepts any).
pub const ACCESS_KEY_ID: &str = "berth-test";
/// The secret access key the tests use.
pub const SECRET_ACCESS_KEY: &str = "berth-test-secret";
/// The region the tests use.
pub const REGION: &str = "us-east-1";

/// A running `moto_server` on `127.0.0.1`, killed when dropped, or by its watchdog shell
/// once the test process is gone (a server kept in a `static` is never dropped).
pub struct S3Server {
    /// The watchdog shell.
    child: Child,
    /// moto's process id.
    moto_pid: u32,
    addr: SocketAddr,
}

/// Runs moto (`$0`) on port `$1` in the background, prints its pid, and kills it when process
/// `$2` (the test) has ended.
const WATCHDOG: &str = r#""$0" -H 127.0.0.1 -p "$1" >/dev/null 2>&1 &
m=$!
echo "$m"
while kill -0 "$2" 2>/dev/null && kill -0 "$m" 2>/dev/null; do sleep 1; done
kill "$m" 2>/dev/null"#;

/// `BERTH_MOTO_SERVER`, else `<workspace>/.cache/venv/bin/moto_server`, else `moto_server` on
/// the `PATH`; `None` when none runs.
pub fn moto_server_binary() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(path) = std::env::var("BERTH_MOTO_SERVER")
        && !path.is_empty()
    {
        candidates.push(PathBuf::from(path));
    }
    candidates.push(workspace_root().join(".cache/venv/bin/moto_server"));
    candidates.push(PathBuf::from("moto_server"));
    candidates.into_iter().find(|candidate| {
        Command::new(candidate)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    })
}

impl S3Server {
    /// Starts moto on a free loopback port and waits until it answers. `None` (after a loud
    /// SKIP line naming `why`) when moto is not installed; panics then under
    /// `BERTH_REQUIRE_ALL=1`, and whenever an installed moto fails to start.
    pub fn start(why: &str) -> Option<S3Server> {
        let binary = moto_server_binary();
        if !require_condition(
            binary.is_some(),
            "no moto_server (.cache/venv/bin/moto_server, BERTH_MOTO_SERVER or PATH)",
            &format!("{why}; scripts/test installs moto[server] into .cache/venv"),
        ) {
            return None;
        }
        let binary = binary?;
        let mut last_error = None;
        // A free port may be taken between probing and binding: try a few.
        for _ in 0..3 {
            match S3Server::spawn(&binary) {
                Ok(server) => return Some(server),
                Err(error) => last_error = Some(error),
            }
        }
        panic!("starting {}: {:?}", binary.display(), last_error);
    }

    fn spawn(binary: &PathBuf) -> anyhow::Result<S3Server> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg(binary)
            .arg(port.to_string())
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("running {}", binary.display()))?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
        }
        let moto_pid = line.trim().parse().context("reading moto_server's pid")?;
        let mut server = S3Server {
            child,
            moto_pid,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!("moto_server exited with {status}");
            }
            if TcpStream::connect_timeout(&server.addr, Duration::from_millis(200)).is_ok()
                && reqwest::blocking::get(server.endpoint()).is_ok_and(|r| r.status().is_success())
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("moto_server did not answer on {} within 30 s", server.addr);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates the bucket `name` (idempotent).
    pub fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        let response = reqwest::blocking::Client::new()
            .put(format!("{}/{name}", self.endpoint()))
            .send()?;
        if !response.status().is_success() && response.status().as_u16() != 409 {
            bail!("creating bucket {name}: {}", response.status());
        }
        Ok(())
    }

    /// The number of multipart uploads in progress in `bucket` (moto's ListMultipartUploads),
    /// to check that none is left behind.
    pub fn multipart_uploads_in_progress(&self, bucket: &str) -> anyhow::Result<usize> {
        let body = reqwest::blocking::get(format!("{}/{bucket}?uploads", self.endpoint()))?.text()?;
        Ok(body.matches("<Upload>").count())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.moto_pid.to_string()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
