//! Conversions between Rust values and the portable column types (BIGINT for sizes, offsets
//! and unix-millisecond timestamps), and the parsing of stored text back into typed values.

use berth_types::Digest;

use crate::MetaError;

pub(crate) use crate::clock::now_ms;

/// An unsigned quantity as a BIGINT. Errors: [`MetaError::OutOfRange`] above `i64::MAX`.
pub(crate) fn to_bigint(field: &'static str, value: u64) -> Result<i64, MetaError> {
    i64::try_from(value).map_err(|_| MetaError::OutOfRange { field, value })
}

/// A byte length as a BIGINT.
pub(crate) fn len_to_bigint(field: &'static str, len: usize) -> Result<i64, MetaError> {
    to_bigint(field, u64::try_from(len).unwrap_or(u64::MAX))
}

/// A stored BIGINT that must be non-negative; `None` (logged as corrupt) otherwise.
pub(crate) fn stored_u64(table: &'static str, record: &str, column: &'static str, value: i64) -> Option<u64> {
    match u64::try_from(value) {
        Ok(value) => Some(value),
        Err(_) => {
            tracing::error!(
                table,
                record,
                column,
                value,
                "corrupt record: negative value; treated as missing"
            );
            None
        }
    }
}

/// A stored digest; `None` (logged as corrupt) when it does not parse.
pub(crate) fn stored_digest(table: &'static str, record: &str, text: &str) -> Option<Digest> {
    match Digest::parse(text) {
        Ok(digest) => Some(digest),
        Err(error) => {
            tracing::error!(
                table,
                record,
                value = text,
                error = %error,
                "corrupt record: stored digest does not parse; treated as missing"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigint_conversions_refuse_what_does_not_fit() {
        assert_eq!(to_bigint("size", 5).ok(), Some(5));
        assert_eq!(to_bigint("size", i64::MAX as u64).ok(), Some(i64::MAX));
        assert!(matches!(
            to_bigint("size", u64::MAX),
            Err(MetaError::OutOfRange {
                field: "size",
                value: u64::MAX
            })
        ));
        assert_eq!(stored_u64("t", "r", "c", 7), Some(7));
        assert_eq!(stored_u64("t", "r", "c", -1), None);
    }

    #[test]
    fn stored_digests_parse_or_are_missing() {
        let text = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            stored_digest("t", "r", &text).map(|d| d.as_str().to_owned()),
            Some(text.clone())
        );
        assert!(stored_digest("t", "r", "sha256:xyz").is_none());
        assert!(now_ms() > 1_600_000_000_000);
    }
}
