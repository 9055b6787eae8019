//! Names that differ between runs and between tests of one run, so that no test can pass on
//! what an earlier run (or another test) left in a registry or a local image store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A short lowercase alphanumeric string unique to this process, this moment and this call:
/// valid in repository path components and in tags.
pub fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Fold the clock to 48 bits: still changes every nanosecond, keeps names short.
    let clock = (nanos as u64) & 0xffff_ffff_ffff;
    format!("{:x}{:x}{n:x}", std::process::id(), clock)
}

/// A repository name `e2e/<prefix>-<unique>`; `prefix` must be lowercase alphanumeric (dashes
/// allowed inside).
pub fn unique_repo(prefix: &str) -> String {
    format!("e2e/{prefix}-{}", unique_suffix())
}

/// A tag `t-<unique>`.
pub fn unique_tag() -> String {
    format!("t-{}", unique_suffix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_differ_and_are_valid_path_components() {
        let a = unique_suffix();
        let b = unique_suffix();
        assert_ne!(a, b);
        for s in [a, b] {
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()), "{s}");
        }
        assert!(unique_repo("x").starts_with("e2e/x-"));
        assert!(unique_tag().starts_with("t-"));
    }
}
