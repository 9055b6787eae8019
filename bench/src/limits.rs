//! The machine's own limits, measured in the same run: SHA-256 on one core, loopback TCP, and a
//! durable disk write. Push and pull figures are reported as fractions of these.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::content::{MB, MIB, Rng};
use crate::figures::median;

/// The three limits, in MB/s (10^6 bytes per second).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Limits {
    /// sha2 0.11 hashing on one thread, 1 MiB `update`s; best of 3.
    pub sha256_core: f64,
    /// One thread writing 1 MiB buffers over loopback TCP to another that discards; best of 3.
    pub loopback_tcp: f64,
    /// 1 MiB writes to a new file then `sync_all`, fsync included; median of 3.
    pub disk_durable_write: f64,
    /// Bytes hashed per sha256_core repetition.
    pub sha256_bytes: u64,
    /// Bytes sent per loopback_tcp repetition.
    pub loopback_bytes: u64,
    /// Bytes written per disk_durable_write repetition.
    pub disk_bytes: u64,
}

impl Limits {
    /// The ceiling for a push: it must both hash and store every byte.
    pub fn push_ceiling(&self) -> f64 {
        self.sha256_core.min(self.disk_durable_write)
    }
}

/// Sizes of the limit measurements.
#[derive(Clone, Copy, Debug)]
pub struct LimitSizes {
    /// Bytes to hash.
    pub sha256: u64,
    /// Bytes to send over loopback.
    pub loopback: u64,
    /// Bytes to write durably.
    pub disk: u64,
}

/// Measures all three limits (blocking; several seconds).
pub fn measure(work_dir: &Path, sizes: LimitSizes) -> Result<Limits> {
    let sha = (0..3).map(|_| sha256_core(sizes.sha256)).collect::<Vec<_>>();
    let tcp = (0..3)
        .map(|_| loopback_tcp(sizes.loopback))
        .collect::<Result<Vec<_>>>()?;
    let disk = (0..3)
        .map(|_| disk_durable_write(work_dir, sizes.disk))
        .collect::<Result<Vec<_>>>()?;
    Ok(Limits {
        sha256_core: sha.iter().copied().fold(0.0, f64::max),
        loopback_tcp: tcp.iter().copied().fold(0.0, f64::max),
        disk_durable_write: median(&disk).context("no disk samples")?,
        sha256_bytes: sizes.sha256,
        loopback_bytes: sizes.loopback,
        disk_bytes: sizes.disk,
    })
}

fn random_mib() -> Vec<u8> {
    let mut buf = vec![0u8; MIB as usize];
    Rng::unique().fill(&mut buf);
    buf
}

/// MB/s of sha2 over `bytes` in 1 MiB updates.
fn sha256_core(bytes: u64) -> f64 {
    let buf = random_mib();
    let start = Instant::now();
    let mut hasher = Sha256::new();
    for _ in 0..bytes / MIB {
        hasher.update(&buf);
    }
    let digest = hasher.finalize();
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(digest);
    bytes as f64 / MB / secs
}

/// MB/s of `bytes` through a loopback TCP connection, writer and reader on two threads.
fn loopback_tcp(bytes: u64) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> Result<u64> {
        let (mut stream, _) = listener.accept()?;
        let mut buf = vec![0u8; MIB as usize];
        let mut total = 0u64;
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
        }
    });
    let buf = random_mib();
    let mut stream = TcpStream::connect(addr)?;
    let start = Instant::now();
    for _ in 0..bytes / MIB {
        stream.write_all(&buf)?;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    let received = reader.join().map_err(|_| anyhow::anyhow!("reader thread panicked"))??;
    let secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(received == bytes, "loopback reader got {received} of {bytes} bytes");
    Ok(bytes as f64 / MB / secs)
}

/// MB/s of writing `bytes` to a new file in `dir` and `sync_all`, fsync included.
fn disk_durable_write(dir: &Path, bytes: u64) -> Result<f64> {
    let _ = std::process::Command::new("sync").status();
    let path = dir.join("limits-disk-write.tmp");
    let buf = random_mib();
    let start = Instant::now();
    let mut file = fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    for _ in 0..bytes / MIB {
        file.write_all(&buf)?;
    }
    file.sync_all()?;
    let secs = start.elapsed().as_secs_f64();
    drop(file);
    fs::remove_file(&path)?;
    Ok(bytes as f64 / MB / secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_limits_are_positive() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let l = measure(
            dir.path(),
            LimitSizes {
                sha256: 4 * MIB,
                loopback: 4 * MIB,
                disk: 2 * MIB,
            },
        )?;
        assert!(l.sha256_core > 0.0 && l.loopback_tcp > 0.0 && l.disk_durable_write > 0.0);
        assert!(l.push_ceiling() <= l.sha256_core);
        assert!(!dir.path().join("limits-disk-write.tmp").exists());
        Ok(())
    }
}
