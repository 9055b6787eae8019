//! The scratch directory: created fresh for every run, and deleted in a way this machine's disk
//! can take.
//!
//! The root filesystem here is mounted with online `discard`: every freed block is trimmed when
//! the journal commits, so deleting registry:2's 100,000 synthetic repositories (half a million
//! directories and files) in `rm -rf` order (directory hash order, scattered blocks) takes about
//! 9 minutes. Deleting in name order frees the blocks roughly in the order they were allocated,
//! so neighbouring blocks are trimmed together (about 5 times faster), and deleting large
//! directories from 16 threads, each a contiguous run of names, overlaps the waits (another 3×
//! or so): about a minute for those 100,000 repositories.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

const MARKER: &str = ".berth-bench-work";

/// Creates `dir` (absolute) afresh, wiping a previous one — only if it is one of ours (it has
/// the marker file) or is empty.
pub fn prepare(dir: &Path) -> Result<PathBuf> {
    if dir.exists() {
        let ours = dir.join(MARKER).exists();
        let empty = fs::read_dir(dir)?.next().is_none();
        if !ours && !empty {
            bail!(
                "{} exists and is not a berth-bench work directory (no {MARKER}); refusing to wipe it",
                dir.display()
            );
        }
        eprintln!("berth-bench: wiping the previous work directory {}", dir.display());
        remove_tree(dir).with_context(|| format!("wiping {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::write(dir.join(MARKER), "scratch space of berth-bench; wiped at every run\n")?;
    Ok(dir.to_owned())
}

/// Deletes `path` and everything under it, depth first, each directory's entries in name order;
/// the entries of a large directory are split into contiguous runs deleted by parallel threads.
/// A missing `path` is fine. Symbolic links are removed, never followed.
pub fn remove_tree(path: &Path) -> Result<()> {
    remove(path, true)
}

/// Directories with at least this many entries are deleted by `THREADS` threads.
const PARALLEL_ENTRIES: usize = 1024;
const THREADS: usize = 16;

fn remove(path: &Path, may_fork: bool) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("stat {}", path.display())),
    };
    if !meta.is_dir() {
        return fs::remove_file(path).with_context(|| format!("deleting {}", path.display()));
    }
    let mut entries: Vec<PathBuf> = fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    entries.sort_unstable();
    if may_fork && entries.len() >= PARALLEL_ENTRIES {
        let run = entries.len().div_ceil(THREADS);
        std::thread::scope(|scope| {
            let workers: Vec<_> = entries
                .chunks(run)
                .map(|chunk| scope.spawn(move || chunk.iter().try_for_each(|e| remove(e, false))))
                .collect();
            workers
                .into_iter()
                .try_for_each(|w| w.join().map_err(|_| anyhow::anyhow!("a deleting thread panicked"))?)
        })?;
    } else {
        for entry in entries {
            remove(&entry, may_fork)?;
        }
    }
    fs::remove_dir(path).with_context(|| format!("deleting {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wipes_only_its_own_directory() -> Result<()> {
        let root = tempfile::tempdir()?;
        let work = root.path().join("w");
        prepare(&work)?;
        fs::create_dir_all(work.join("a/b/c"))?;
        fs::write(work.join("a/b/c/f"), "x")?;
        std::os::unix::fs::symlink(root.path(), work.join("a/link"))?;
        prepare(&work)?;
        assert!(!work.join("a").exists());
        assert!(root.path().exists(), "a symlink is removed, not followed");

        let foreign = root.path().join("foreign");
        fs::create_dir_all(&foreign)?;
        fs::write(foreign.join("precious"), "x")?;
        assert!(prepare(&foreign).is_err());
        assert!(foreign.join("precious").exists());
        remove_tree(&root.path().join("missing"))?;

        let big = root.path().join("big");
        for i in 0..(PARALLEL_ENTRIES + 5) {
            fs::create_dir_all(big.join(format!("r{i:05}/x")))?;
            fs::write(big.join(format!("r{i:05}/x/f")), "y")?;
        }
        remove_tree(&big)?;
        assert!(!big.exists());
        Ok(())
    }
}
