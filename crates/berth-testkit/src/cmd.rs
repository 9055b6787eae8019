//! Running external clients (docker, skopeo, podman, python) with a time limit, and errors that
//! show the whole command line, its exit status and what it printed.
//!
//! Every command is echoed to stderr as `+ program args…` before it runs, so a failing test's
//! captured output reads like a shell transcript.

use std::fmt::Write as _;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The default time limit of one command: `BERTH_E2E_CMD_TIMEOUT_SECS`, else 300 seconds.
pub fn default_timeout() -> Duration {
    let secs = std::env::var("BERTH_E2E_CMD_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(300);
    Duration::from_secs(secs)
}

/// What a finished command printed, and how it ended.
#[derive(Debug)]
pub struct CmdOutput {
    /// The command line, as [`describe`] renders it.
    pub line: String,
    /// The exit status.
    pub status: ExitStatus,
    /// Standard output, decoded lossily as UTF-8.
    pub stdout: String,
    /// Standard error, decoded lossily as UTF-8.
    pub stderr: String,
    /// How long the command ran.
    pub elapsed: Duration,
}

impl CmdOutput {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Standard output without leading and trailing white space.
    pub fn stdout_trimmed(&self) -> &str {
        self.stdout.trim()
    }

    /// A multi-line report of the command, its status and (the tails of) its output.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "command: {}", self.line);
        let _ = writeln!(s, "status:  {} after {:.1?}", self.status, self.elapsed);
        let _ = writeln!(s, "--- stdout ---\n{}", tail(&self.stdout, 6000));
        let _ = writeln!(s, "--- stderr ---\n{}", tail(&self.stderr, 6000));
        s
    }
}

/// Renders a command as a shell-like line (`VAR=value program 'arg with space'`).
pub fn describe(cmd: &Command) -> String {
    let mut parts: Vec<String> = Vec::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            parts.push(format!("{}={}", key.to_string_lossy(), quote(&value.to_string_lossy())));
        }
    }
    parts.push(quote(&cmd.get_program().to_string_lossy()));
    for arg in cmd.get_args() {
        parts.push(quote(&arg.to_string_lossy()));
    }
    parts.join(" ")
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%^".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("[… {start} bytes cut …]{}", &s[start..])
}

/// Builds a [`Command`] from a program and its arguments.
pub fn cmd<S: AsRef<std::ffi::OsStr>>(program: &str, args: impl IntoIterator<Item = S>) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    c
}

fn reader<R: Read + Send + 'static>(mut r: R) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Runs `cmd` (stdin closed, stdout and stderr captured) for at most `timeout`, killing it
/// past that. Returns its output whatever its exit status; fails only when it cannot be
/// started or ran out of time.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> anyhow::Result<CmdOutput> {
    let line = describe(cmd);
    eprintln!("+ {line}");
    let started = Instant::now();
    let mut child: Child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;
    let out = reader(child.stdout.take().context("child stdout")?);
    let err = reader(child.stderr.take().context("child stderr")?);
    let deadline = started + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    let elapsed = started.elapsed();
    match status {
        Some(status) => Ok(CmdOutput {
            line,
            status,
            stdout,
            stderr,
            elapsed,
        }),
        None => bail!(
            "`{line}` did not finish within {timeout:?}; killed.\n--- stdout ---\n{}\n--- stderr ---\n{}",
            tail(&stdout, 6000),
            tail(&stderr, 6000)
        ),
    }
}

/// Runs `cmd` with the [`default_timeout`] and returns its output whatever its exit status.
pub fn run(cmd: &mut Command) -> anyhow::Result<CmdOutput> {
    run_with_timeout(cmd, default_timeout())
}

/// Runs `cmd` and fails, with a full report, unless it exits with status 0.
pub fn run_ok(cmd: &mut Command) -> anyhow::Result<CmdOutput> {
    let output = run(cmd)?;
    if !output.success() {
        bail!("command failed\n{}", output.report());
    }
    Ok(output)
}

/// Runs `cmd` and fails, with a full report, if it exits with status 0: for commands that are
/// expected to fail (pulling a deleted image, say).
pub fn run_expect_failure(cmd: &mut Command) -> anyhow::Result<CmdOutput> {
    let output = run(cmd)?;
    if output.success() {
        bail!("command succeeded but was expected to fail\n{}", output.report());
    }
    Ok(output)
}

/// Commands run when dropped (at the end of a test, passing or panicking): removing images
/// from a local docker or podman store, say. Their failures are only printed.
#[derive(Default)]
pub struct Cleanup {
    commands: Vec<Command>,
}

impl Cleanup {
    /// An empty set of cleanup commands.
    pub fn new() -> Cleanup {
        Cleanup::default()
    }

    /// Adds a command to run on drop; commands run in the reverse order of their addition.
    pub fn defer(&mut self, cmd: Command) {
        self.commands.push(cmd);
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        while let Some(mut cmd) = self.commands.pop() {
            match run_with_timeout(&mut cmd, Duration::from_secs(120)) {
                Ok(out) if out.success() => {}
                Ok(out) => eprintln!("cleanup command failed (ignored)\n{}", out.report()),
                Err(e) => eprintln!("cleanup command failed (ignored): {e:#}"),
            }
        }
    }
}

/// Runs `command` with `stdin` written to its standard input, capturing its output, whatever its
/// exit status. A command that exits without reading its input is fine (the broken pipe is
/// ignored).
pub fn run_with_stdin(command: &mut Command, stdin: &str) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start `{}`: {error}", describe(command)));
    if let Some(mut input) = child.stdin.take() {
        let _ = std::io::Write::write_all(&mut input, stdin.as_bytes());
    }
    child
        .wait_with_output()
        .unwrap_or_else(|error| panic!("waiting for `{}`: {error}", describe(command)))
}

/// Runs the Berth CLI `binary ARGS --data DATA_DIR` (account and project commands on a data
/// directory) with `stdin`; panics with its standard error unless it succeeds; returns its
/// standard output.
pub fn berth_cli(binary: &std::path::Path, data_dir: &std::path::Path, args: &[&str], stdin: &str) -> String {
    berth_cli_with_env(binary, data_dir, &[], args, stdin)
}

/// Like [`berth_cli`], with environment variables set on the command (e.g. the
/// `BERTH_DATABASE__URL` of a server on PostgreSQL).
pub fn berth_cli_with_env(
    binary: &std::path::Path,
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: &str,
) -> String {
    let output = run_with_stdin(
        Command::new(binary)
            .args(args)
            .arg("--data")
            .arg(data_dir)
            .envs(env.iter().copied()),
        stdin,
    );
    assert!(
        output.status.success(),
        "berth {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("berth prints UTF-8")
}
