//! The registry's clock: the time recorded with pushes, tags, links and pulls, and the "now"
//! that garbage collection and retention policies measure ages against.
//!
//! It is the system clock, unless the environment variable [`CLOCK_OFFSET_ENV`] names a file:
//! then the file's content, a signed number of milliseconds, is added to the system clock
//! (re-read at every call, so a test can move time while the server runs). This exists for
//! tests of age-based rules ("tags pushed more than 30 days ago"); never set it in production.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable naming the clock offset file (tests only).
pub const CLOCK_OFFSET_ENV: &str = "BERTH_TEST_CLOCK_OFFSET_FILE";

/// The current time in unix milliseconds (0 if the clock is before 1970), plus the test offset
/// if one is set.
pub fn now_ms() -> i64 {
    let system = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX));
    system.saturating_add(offset_ms())
}

/// The test offset in milliseconds: 0 unless [`CLOCK_OFFSET_ENV`] is set; an unreadable or
/// malformed file counts as 0 (logged).
fn offset_ms() -> i64 {
    static OFFSET_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
    let Some(path) = OFFSET_FILE.get_or_init(|| std::env::var_os(CLOCK_OFFSET_ENV).map(PathBuf::from)) else {
        return 0;
    };
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            tracing::warn!(path = %path.display(), "clock offset file does not hold a number of milliseconds");
            0
        }),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read the clock offset file");
            0
        }
    }
}
