//! Metrics of the metadata store (see docs/metrics.md): the names, their descriptions
//! ([`describe`]), and the timer that records [`DB_OPERATION_DURATION_SECONDS`].
//!
//! Label `operation`: every write transaction is labelled with the name of the store method
//! that queued it (`put_manifest`, `complete_upload`, `create_upload`, …: a fixed set, taken
//! from the operation's closure type, see [`write_operation_name`]), measured from queueing to
//! the answer (so on SQLite it includes waiting for the group commit); the main reads carry
//! their method's name too (`get_manifest`, `get_tagged_manifest`, `blob_link`, `find_blob`,
//! `get_upload`, `list_tags`, `list_repositories`, `list_referrers`, `user_with_password_hash`,
//! `project_usage`, `count_uploads`, `inline_blob_content`). Reads answered by the read cache
//! are not timed.

use std::time::Instant;

/// Histogram, seconds, label `operation`: how long one metadata store operation took.
pub const DB_OPERATION_DURATION_SECONDS: &str = "berth_db_operation_duration_seconds";

/// Registers the descriptions of this crate's metrics with the installed recorder (call once,
/// after installing it).
pub fn describe() {
    metrics::describe_histogram!(
        DB_OPERATION_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Duration of metadata store operations: write transactions (from queueing to commit) and the main reads"
    );
}

/// Records the time from its start to its drop under an operation name (also when the
/// operation failed or its caller went away).
pub(crate) struct Timer {
    operation: &'static str,
    started: Instant,
}

impl Timer {
    /// Starts timing `operation`.
    pub(crate) fn start(operation: &'static str) -> Timer {
        Timer {
            operation,
            started: Instant::now(),
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        metrics::histogram!(DB_OPERATION_DURATION_SECONDS, "operation" => self.operation)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// The label of a write whose operation is a closure of type `F`: the name of the function
/// that defines the closure (`berth_meta::manifests::<impl …>::put_manifest::{{closure}}` →
/// `put_manifest`). Bounded, since closure types are fixed at compile time; `"write"` if the
/// type name has an unexpected shape.
pub(crate) fn write_operation_name<F>() -> &'static str {
    operation_of_type_name(std::any::type_name::<F>())
}

fn operation_of_type_name(mut name: &'static str) -> &'static str {
    while let Some(outer) = name.strip_suffix("::{{closure}}") {
        name = outer;
    }
    // The last path segment outside angle brackets (`<impl berth_meta::store::MetaStore>`).
    let mut depth = 0usize;
    let mut start = 0;
    let bytes = name.as_bytes();
    for (index, byte) in bytes.iter().enumerate() {
        match byte {
            b'<' => depth += 1,
            b'>' => depth = depth.saturating_sub(1),
            b':' if depth == 0 && bytes.get(index + 1) == Some(&b':') => start = index + 2,
            _ => {}
        }
    }
    let segment = name.get(start..).unwrap_or("");
    let segment = segment.split('<').next().unwrap_or("");
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        "write"
    } else {
        segment
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Store;

    impl Store {
        fn name_of_closure_in_method(&self) -> &'static str {
            fn name_of<F>(_: F) -> &'static str {
                write_operation_name::<F>()
            }
            name_of(|x: u8| x)
        }
    }

    #[test]
    fn writes_are_named_after_the_method_defining_their_closure() {
        assert_eq!(Store.name_of_closure_in_method(), "name_of_closure_in_method");
        assert_eq!(
            operation_of_type_name(
                "berth_meta::manifests::<impl berth_meta::store::MetaStore>::put_manifest::{{closure}}::{{closure}}"
            ),
            "put_manifest"
        );
        assert_eq!(
            operation_of_type_name("berth_meta::gc::collect<T>::{{closure}}"),
            "collect"
        );
        assert_eq!(operation_of_type_name("{{closure}}"), "write");
        assert_eq!(operation_of_type_name(""), "write");
    }
}
