//! What the end-to-end client tests share: the registry under test, the workspace's paths
//! (the Python venv that `scripts/test` makes), and images built from the static busybox.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};

use crate::BerthProcess;

/// Names an already running registry (`HOST:PORT`, plain HTTP) to test instead of starting
/// Berth: for trying the client tests against a reference registry (e.g. Debian's
/// `docker-registry`, CNCF distribution). Berth-only checks are then skipped by the tests.
pub const EXTERNAL_REGISTRY_ENV: &str = "BERTH_E2E_REGISTRY";

/// The registry an end-to-end test talks to: a fresh `berth serve` on `127.0.0.1:0` (the
/// normal case), or the one named by [`EXTERNAL_REGISTRY_ENV`].
pub struct TestRegistry {
    berth: Option<BerthProcess>,
    host: String,
}

impl TestRegistry {
    /// Starts `binary serve` (see [`BerthProcess::start`]), unless [`EXTERNAL_REGISTRY_ENV`]
    /// names another registry.
    pub fn start(binary: &Path) -> anyhow::Result<TestRegistry> {
        if let Ok(host) = std::env::var(EXTERNAL_REGISTRY_ENV)
            && !host.is_empty()
        {
            eprintln!("e2e: testing the external registry {host} ({EXTERNAL_REGISTRY_ENV}), not berth");
            return Ok(TestRegistry { berth: None, host });
        }
        let berth = BerthProcess::start(binary)?;
        let host = berth.host();
        eprintln!("e2e: berth listening on {host}, data in {}", berth.data_dir().display());
        Ok(TestRegistry {
            berth: Some(berth),
            host,
        })
    }

    /// Starts `binary serve` on a fresh PostgreSQL database (see
    /// [`BerthProcess::start_on_postgres`]). `Ok(None)` after a loud SKIP line when no
    /// PostgreSQL server is configured, or when [`EXTERNAL_REGISTRY_ENV`] names another
    /// registry (whose metadata backend is not ours to choose).
    pub fn start_on_postgres(binary: &Path) -> anyhow::Result<Option<TestRegistry>> {
        if std::env::var(EXTERNAL_REGISTRY_ENV).is_ok_and(|host| !host.is_empty()) {
            eprintln!("e2e: {EXTERNAL_REGISTRY_ENV} is set: skipping a test of Berth on PostgreSQL");
            return Ok(None);
        }
        let Some(berth) = BerthProcess::start_on_postgres(binary)? else {
            return Ok(None);
        };
        let host = berth.host();
        eprintln!(
            "e2e: berth on PostgreSQL listening on {host}, blobs in {}",
            berth.data_dir().display()
        );
        Ok(Some(TestRegistry {
            berth: Some(berth),
            host,
        }))
    }

    /// `HOST:PORT`, as image references want it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `http://HOST:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.host)
    }

    /// The Berth process, unless an external registry is tested.
    pub fn berth(&self) -> Option<&BerthProcess> {
        self.berth.as_ref()
    }

    /// Whether the registry under test is Berth.
    pub fn is_berth(&self) -> bool {
        self.berth.is_some()
    }

    /// `HOST:PORT/repo:tag`.
    pub fn image_ref(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.host)
    }
}

/// The workspace root: the nearest ancestor of this crate holding a `Cargo.toml` with a
/// `[workspace]` table.
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in here.ancestors() {
        let manifest = dir.join("Cargo.toml");
        if std::fs::read_to_string(&manifest).is_ok_and(|s| s.lines().any(|l| l.trim() == "[workspace]")) {
            return dir.to_owned();
        }
    }
    here.to_owned()
}

/// The tests' Python, with oras-py and openapi-spec-validator: `BERTH_PYTHON`, else
/// `<workspace>/.cache/venv/bin/python` (made by `scripts/test`). `None` when neither exists.
pub fn test_python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("BERTH_PYTHON")
        && !p.is_empty()
    {
        return Some(PathBuf::from(p));
    }
    let p = workspace_root().join(".cache/venv/bin/python");
    p.exists().then_some(p)
}

/// Paths where Debian's busybox-static puts its binary; `BERTH_BUSYBOX` is tried first.
pub const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

/// Whether `bytes` is an ELF executable without a program interpreter (statically linked).
pub fn is_static_elf(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return false; // not a 64-bit little-endian ELF
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    let mut u64_bytes = [0u8; 8];
    u64_bytes.copy_from_slice(&bytes[32..40]);
    let phoff = u64::from_le_bytes(u64_bytes) as usize;
    let phentsize = usize::from(u16_at(54));
    let phnum = usize::from(u16_at(56));
    if phentsize < 4 {
        return false;
    }
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        at + 4 <= bytes.len() && u32_at(at) != PT_INTERP
    })
}

/// The statically linked busybox to put in test images (Debian's `busybox-static`).
pub fn static_busybox() -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(p) = std::env::var("BERTH_BUSYBOX")
        && !p.is_empty()
    {
        candidates.push(PathBuf::from(p));
    }
    candidates.extend(BUSYBOX_CANDIDATES.iter().map(PathBuf::from));
    let mut tried = Vec::new();
    for path in candidates {
        match std::fs::read(&path) {
            Ok(bytes) if is_static_elf(&bytes) => return Ok(path),
            Ok(_) => tried.push(format!("{} (not a static x86-64/aarch64 ELF)", path.display())),
            Err(e) => tried.push(format!("{} ({e})", path.display())),
        }
    }
    bail!(
        "no static busybox found (apt-get install busybox-static); tried: {}",
        tried.join(", ")
    )
}

/// Like [`crate::require_tool`] for the static busybox: `Some(path)`, or a loud skip (`None`),
/// or a panic under `BERTH_REQUIRE_ALL=1`.
pub fn require_static_busybox(why: &str) -> Option<PathBuf> {
    match static_busybox() {
        Ok(p) => Some(p),
        Err(e) => {
            crate::require_condition(false, &format!("{e:#}"), why);
            None
        }
    }
}

/// Writes `size` bytes from `/dev/urandom` to `path` (incompressible) and returns their
/// `sha256:` digest.
pub fn write_random_file(path: &Path, size: u64) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let mut src = std::fs::File::open("/dev/urandom").context("open /dev/urandom")?;
    let mut dst = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut remaining = size;
    let mut buf = vec![0u8; 1 << 20];
    while remaining > 0 {
        let n = remaining.min(buf.len() as u64) as usize;
        src.read_exact(&mut buf[..n])?;
        dst.write_all(&buf[..n])?;
        remaining -= n as u64;
    }
    dst.sync_all()?;
    drop(dst);
    let digest = crate::oci::sha256_file(path)?;
    ensure!(
        std::fs::metadata(path)?.len() == size,
        "short write to {}",
        path.display()
    );
    Ok(digest)
}

/// A Berth with access enforced (`[auth] mode = MODE`) and one user who is a developer of one
/// private project: what the clients' login tests start from. `work` holds the data directory
/// and the configuration file, and is removed when this is dropped.
pub struct SecuredRegistry {
    /// The running server (stopped when dropped).
    pub berth: BerthProcess,
    /// Its data directory (for the CLI).
    pub data: PathBuf,
    /// The temporary directory holding `data` and `berth.toml`.
    pub work: tempfile::TempDir,
}

impl SecuredRegistry {
    /// Creates `user` (with `password`) and the private project `project` with `user` as a
    /// developer, then starts `binary serve` with `[auth] mode = mode`.
    pub fn start(
        binary: &Path,
        mode: &str,
        user: &str,
        password: &str,
        project: &str,
    ) -> anyhow::Result<SecuredRegistry> {
        let work = tempfile::tempdir()?;
        let data = work.path().join("data");
        crate::cmd::berth_cli(binary, &data, &["user", "add", user, "--password-stdin"], password);
        crate::cmd::berth_cli(binary, &data, &["project", "create", project], "");
        crate::cmd::berth_cli(
            binary,
            &data,
            &["project", "member", "add", project, user, "developer"],
            "",
        );
        let config = work.path().join("berth.toml");
        std::fs::write(&config, format!("[auth]\nmode = \"{mode}\"\n"))?;
        let config = config.to_str().context("the temporary path is not UTF-8")?;
        let berth = BerthProcess::start_in(binary, &data, &["--config", config])?;
        Ok(SecuredRegistry { berth, data, work })
    }
}
