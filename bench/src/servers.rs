//! Starting and stopping the two servers, and sampling their CPU time and memory from `/proc`.

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// Which server a process or a figure belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// CNCF Distribution (`registry:2`, Debian's `docker-registry`).
    Registry,
    /// Berth.
    Berth,
}

impl Kind {
    /// Both, in the order every alternating workload runs them.
    pub const ALTERNATION: [Kind; 2] = [Kind::Registry, Kind::Berth];

    /// A short name for paths.
    pub fn slug(self) -> &'static str {
        match self {
            Kind::Registry => "registry",
            Kind::Berth => "berth",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Kind::Registry => "registry:2",
            Kind::Berth => "Berth",
        })
    }
}

/// Paths to the two server binaries.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// The `berth` binary.
    pub berth: PathBuf,
    /// The `docker-registry` binary.
    pub registry: PathBuf,
}

/// A running server process. Dropping it kills the process.
pub struct Server {
    /// Which server this is.
    pub kind: Kind,
    /// `http://127.0.0.1:PORT/`.
    pub base: reqwest::Url,
    /// The listening address.
    pub addr: SocketAddr,
    /// Its storage root (for registry:2: the filesystem driver's `rootdirectory`).
    pub data_dir: PathBuf,
    /// Where its stderr goes.
    pub log_path: PathBuf,
    pid: u32,
    child: Mutex<Child>,
}

/// Resident memory of a process, in KiB.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak resident size so far.
    pub hwm_kib: u64,
}

/// How a server deviates from the default set-up (filesystem storage, Berth on SQLite): extra
/// `BERTH_*` variables for Berth (e.g. `BERTH_DATABASE__URL`, `BERTH_STORAGE__KIND`), and the
/// `storage:` driver block for registry:2 (YAML lines indented by 2, replacing the filesystem
/// driver), used by the scale-out workloads.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// Extra environment for Berth: (name, value).
    pub berth_env: Vec<(String, String)>,
    /// registry:2's storage driver block instead of `filesystem: {rootdirectory: …}`.
    pub registry_storage: Option<String>,
}

/// How long a server may take to become ready before the run fails.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

impl Server {
    /// Starts `kind` on a free loopback port over a fresh `data_dir` and waits until it answers.
    pub async fn start(kind: Kind, bins: &Binaries, data_dir: &Path, log_path: &Path) -> Result<Server> {
        Self::start_with(kind, bins, data_dir, log_path, &Setup::default()).await
    }

    /// [`Server::start`] with a non-default [`Setup`].
    pub async fn start_with(
        kind: Kind,
        bins: &Binaries,
        data_dir: &Path,
        log_path: &Path,
        setup: &Setup,
    ) -> Result<Server> {
        fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let server = match kind {
            Kind::Berth => {
                let (bins, data_dir, log_path) = (bins.clone(), data_dir.to_owned(), log_path.to_owned());
                let env = setup.berth_env.clone();
                tokio::task::spawn_blocking(move || start_berth(&bins.berth, &data_dir, &log_path, &env)).await??
            }
            Kind::Registry => {
                let port = free_port()?;
                let config = registry_config_path(data_dir);
                let mut cmd = match &setup.registry_storage {
                    None => registry_command(&bins.registry, data_dir, &config, port, log_path)?,
                    Some(storage) => {
                        let yaml = registry_config_with_storage(storage, port);
                        fs::write(&config, yaml).with_context(|| format!("writing {}", config.display()))?;
                        let mut cmd = registry_serve(&bins.registry, &config, log_path)?;
                        // aws-sdk-go v1 cannot apply a custom CA bundle to registry:2's HTTP
                        // transport and panics at start-up; the S3 endpoints here are plain HTTP.
                        cmd.env_remove("AWS_CA_BUNDLE");
                        cmd
                    }
                };
                let mut child = cmd
                    .spawn()
                    .with_context(|| format!("starting {}", bins.registry.display()))?;
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                let deadline = Instant::now() + READY_TIMEOUT;
                loop {
                    if let Some(status) = child.try_wait()? {
                        bail!(
                            "registry:2 exited ({status}) before answering; log:\n{}",
                            log_tail(log_path)
                        );
                    }
                    if get_v2_status(addr).ok() == Some(200) {
                        break;
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        bail!("registry:2 did not answer GET /v2/ within {READY_TIMEOUT:?}");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Server::new(kind, child, addr, data_dir, log_path)?
            }
        };
        Ok(server)
    }

    fn new(kind: Kind, child: Child, addr: SocketAddr, data_dir: &Path, log_path: &Path) -> Result<Server> {
        Ok(Server {
            kind,
            base: reqwest::Url::parse(&format!("http://{addr}/"))?,
            addr,
            data_dir: data_dir.to_owned(),
            log_path: log_path.to_owned(),
            pid: child.id(),
            child: Mutex::new(child),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `base` joined with a path such as `/v2/`.
    pub fn url(&self, path: &str) -> Result<reqwest::Url> {
        self.base.join(path).with_context(|| format!("bad path {path}"))
    }

    /// Fails if the process has exited.
    pub fn check_alive(&self) -> Result<()> {
        let mut child = self.child.lock().map_err(|_| anyhow!("poisoned lock"))?;
        if let Some(status) = child.try_wait()? {
            bail!(
                "{} (pid {}) has exited: {status}; log tail:\n{}",
                self.kind,
                self.pid,
                log_tail(&self.log_path)
            );
        }
        Ok(())
    }

    /// User + system CPU seconds the process has used so far (all threads).
    pub fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(self.pid).with_context(|| format!("{} CPU time", self.kind))
    }

    /// Its resident memory now and at peak.
    pub fn memory(&self) -> Result<Memory> {
        memory(self.pid).with_context(|| format!("{} memory", self.kind))
    }

    /// Waits until the process is idle (under 5 % of a core over 200 ms; at most 180 s), so
    /// that no leftover work from a previous measurement is charged to the next one. Returns how
    /// long it waited.
    pub async fn settle(&self) -> Result<Duration> {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(180);
        loop {
            let before = self.cpu_seconds()?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let used = self.cpu_seconds()? - before;
            if used <= 0.01 {
                let waited = start.elapsed();
                if waited > Duration::from_secs(3) {
                    eprintln!(
                        "    (waited {:.0} s for {} to go idle)",
                        waited.as_secs_f64(),
                        self.kind
                    );
                }
                return Ok(waited);
            }
            if Instant::now() > deadline {
                eprintln!(
                    "warning: {} still busy ({used:.2} CPU-s per 0.2 s) after 180 s; going on",
                    self.kind
                );
                return Ok(start.elapsed());
            }
        }
    }

    /// Stops the process: SIGTERM, up to 10 s to exit, then SIGKILL.
    pub fn stop(self) -> Result<()> {
        self.terminate()
    }

    /// [`Server::stop`] without giving the handle up (for a restart on the same storage).
    pub fn terminate(&self) -> Result<()> {
        let mut child = self.child.lock().map_err(|_| anyhow!("poisoned lock"))?;
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        let _ = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: {} did not exit 10 s after SIGTERM; killing it", self.kind);
        child.kill()?;
        child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock()
            && matches!(child.try_wait(), Ok(None))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts Berth with `--listen 127.0.0.1:0` and reads its address from the line it prints on
/// stdout when ready. A thread keeps draining its stdout afterwards.
fn start_berth(bin: &Path, data_dir: &Path, log_path: &Path, env: &[(String, String)]) -> Result<Server> {
    let mut child = berth_command(bin, data_dir, "127.0.0.1:0", log_path)?
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("berth stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(address) = line.trim().strip_prefix("berth listening on http://")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(address.to_owned());
            }
        }
    });
    match rx.recv_timeout(READY_TIMEOUT) {
        Ok(address) => {
            let addr: SocketAddr = address
                .parse()
                .with_context(|| format!("berth printed address {address:?}"))?;
            Server::new(Kind::Berth, child, addr, data_dir, log_path)
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("berth did not print its address; log:\n{}", log_tail(log_path))
        }
    }
}

/// The command that runs Berth on `listen` over `data_dir`, logging at warn to `log_path`.
pub fn berth_command(bin: &Path, data_dir: &Path, listen: &str, log_path: &Path) -> Result<Command> {
    let log = fs::File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg("--listen")
        .arg(listen)
        .arg("--data")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    Ok(cmd)
}

/// The registry:2 configuration: warn-level logs, no access log, filesystem storage with deletes
/// enabled and the default in-memory blob-descriptor cache.
pub fn registry_config(root: &Path, port: u16) -> String {
    format!(
        "version: 0.1\n\
         log: {{level: warn, accesslog: {{disabled: true}}}}\n\
         storage:\n  \
           filesystem: {{rootdirectory: {}}}\n  \
           delete: {{enabled: true}}\n  \
           cache: {{blobdescriptor: inmemory}}\n\
         http: {{addr: 127.0.0.1:{port}}}\n",
        root.display()
    )
}

/// [`registry_config`] with `storage` (a driver block, lines indented by 2) in place of the
/// filesystem driver; deletes and the in-memory blob-descriptor cache as always.
pub fn registry_config_with_storage(storage: &str, port: u16) -> String {
    format!(
        "version: 0.1\n\
         log: {{level: warn, accesslog: {{disabled: true}}}}\n\
         storage:\n{storage}\n  \
           delete: {{enabled: true}}\n  \
           cache: {{blobdescriptor: inmemory}}\n\
         http: {{addr: 127.0.0.1:{port}}}\n",
        storage = storage.trim_end()
    )
}

/// Where the registry:2 configuration for storage root `root` is written (`<root>.yml`).
pub fn registry_config_path(root: &Path) -> PathBuf {
    root.with_extension("yml")
}

/// Writes the registry:2 configuration to `config` and returns the command that serves it.
pub fn registry_command(bin: &Path, root: &Path, config: &Path, port: u16, log_path: &Path) -> Result<Command> {
    fs::write(config, registry_config(root, port)).with_context(|| format!("writing {}", config.display()))?;
    registry_serve(bin, config, log_path)
}

/// The command that serves an already written registry:2 configuration `config`.
fn registry_serve(bin: &Path, config: &Path, log_path: &Path) -> Result<Command> {
    let log = fs::File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    Ok(cmd)
}

/// A loopback port that was free a moment ago (bind to port 0, read it, release it).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `GET /v2/` on a new connection; the status code.
pub fn get_v2_status(addr: SocketAddr) -> Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_nodelay(true)?;
    write!(stream, "GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    let line = std::str::from_utf8(&head)?;
    let code = line.get(9..12).context("short status line")?;
    Ok(code.parse()?)
}

/// Clock ticks per second for `/proc/<pid>/stat` (`getconf CLK_TCK`, read once).
fn clock_ticks() -> Result<f64> {
    static TICKS: OnceLock<f64> = OnceLock::new();
    if let Some(t) = TICKS.get() {
        return Ok(*t);
    }
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .context("running getconf CLK_TCK")?;
    let ticks: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("parsing getconf CLK_TCK")?;
    if ticks <= 0.0 {
        bail!("getconf CLK_TCK gave {ticks}");
    }
    Ok(*TICKS.get_or_init(|| ticks))
}

/// utime + stime of `pid` in seconds (process-wide, all threads).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = parse_stat_ticks(&stat)?;
    Ok(ticks as f64 / clock_ticks()?)
}

/// utime + stime in ticks from the text of `/proc/<pid>/stat`.
fn parse_stat_ticks(stat: &str) -> Result<u64> {
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// VmRSS and VmHWM of `pid`.
pub fn memory(pid: u32) -> Result<Memory> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_memory(&status)
}

fn parse_status_memory(status: &str) -> Result<Memory> {
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .with_context(|| format!("no {name} in status"))?;
        Ok(line
            .trim_start_matches(':')
            .split_whitespace()
            .next()
            .context("empty")?
            .parse()?)
    };
    Ok(Memory {
        rss_kib: field("VmRSS")?,
        hwm_kib: field("VmHWM")?,
    })
}

/// Samples `VmRSS` of a process every 10 ms on a thread of its own until stopped, keeping the
/// largest value seen (a peak between two samples can be missed: combine it with `VmHWM`).
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, usize)>,
}

impl RssSampler {
    /// Starts sampling `pid`.
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut peak, mut samples) = (0u64, 0usize);
            loop {
                if let Ok(m) = memory(pid) {
                    peak = peak.max(m.rss_kib);
                    samples += 1;
                }
                if flag.load(Ordering::Relaxed) {
                    return (peak, samples);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        RssSampler { stop, thread }
    }

    /// Stops (after one last sample) and returns the largest VmRSS seen, in KiB, and the number
    /// of samples taken.
    pub fn finish(self) -> Result<(u64, usize)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().map_err(|_| anyhow!("RSS sampler panicked"))
    }
}

/// The last 2 KB of a log file, for error messages.
pub fn log_tail(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(2000);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_command_with_spaces() -> Result<()> {
        let stat = "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 1 2 3";
        assert_eq!(parse_stat_ticks(stat)?, 325);
        Ok(())
    }

    #[test]
    fn status_memory_fields() -> Result<()> {
        let status = "Name:\tberth\nVmHWM:\t   40960 kB\nVmRSS:\t   20480 kB\n";
        let m = parse_status_memory(status)?;
        assert_eq!((m.rss_kib, m.hwm_kib), (20480, 40960));
        Ok(())
    }

    #[test]
    fn own_process_is_measurable() -> Result<()> {
        let pid = std::process::id();
        assert!(cpu_seconds(pid)? >= 0.0);
        assert!(memory(pid)?.hwm_kib > 0);
        Ok(())
    }

    #[test]
    fn rss_sampler_sees_own_process() -> Result<()> {
        let sampler = RssSampler::start(std::process::id());
        std::thread::sleep(Duration::from_millis(30));
        let (peak, samples) = sampler.finish()?;
        assert!(peak > 0 && samples >= 1);
        Ok(())
    }

    #[test]
    fn registry_config_has_the_fair_settings() {
        let c = registry_config(Path::new("/x/y"), 4321);
        assert!(c.contains("rootdirectory: /x/y"));
        assert!(c.contains("blobdescriptor: inmemory"));
        assert!(c.contains("addr: 127.0.0.1:4321"));
        assert!(c.contains("level: warn"));
    }
}
