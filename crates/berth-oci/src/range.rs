//! Byte ranges: the `Content-Range` of a chunked upload `PATCH` and the `Range` of a blob `GET`.

use std::ops::Range;

/// A `Content-Range` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Content-Range {0:?} is not of the form <start>-<end>")]
pub struct ContentRangeError(pub String);

/// Parses the `Content-Range` of an upload chunk into an inclusive `(start, end)` pair.
///
/// Source: distribution-spec §Pushing a blob in chunks (`Content-Range: <range>` with
/// `<range>` = `^[0-9]+-[0-9]+$`). For robustness the RFC 9110 form `bytes <start>-<end>/<len|*>`
/// is accepted too. Errors when `end < start`, numbers overflow, or `end` is `u64::MAX` (the
/// range's length, `end - start + 1`, must fit in a `u64`).
pub fn parse_content_range(value: &str) -> Result<(u64, u64), ContentRangeError> {
    let error = || ContentRangeError(value.to_owned());
    let trimmed = value.trim();
    let spec = trimmed
        .strip_prefix("bytes=")
        .or_else(|| trimmed.strip_prefix("bytes "))
        .unwrap_or(trimmed);
    let spec = spec.split_once('/').map_or(spec, |(range, _length)| range);
    let (start, end) = spec.split_once('-').ok_or_else(error)?;
    let number = |text: &str| -> Result<u64, ContentRangeError> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error());
        }
        text.parse().map_err(|_| error())
    };
    let (start, end) = (number(start.trim())?, number(end.trim())?);
    if end < start || end == u64::MAX {
        return Err(error());
    }
    Ok((start, end))
}

/// What a blob `GET` with a `Range` header should return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// Serve the whole blob with `200` (no `Range`, or one Berth ignores: several ranges or an
    /// unknown unit, which RFC 9110 §14.2 allows a server to ignore).
    Whole,
    /// Serve this half-open byte range with `206` and `Content-Range`.
    Partial(Range<u64>),
    /// Answer `416` with `Content-Range: bytes */<size>`.
    Unsatisfiable,
}

/// Interprets a `Range` header against a blob of `size` bytes (RFC 9110 §14.1.2: `bytes=a-b`,
/// `bytes=a-`, `bytes=-suffix`).
pub fn parse_range(value: &str, size: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let number = |text: &str| -> Option<u64> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    };
    match (start.trim(), end.trim()) {
        ("", suffix) => match number(suffix) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(suffix) if size > 0 => RangeRequest::Partial(size.saturating_sub(suffix)..size),
            Some(_) => RangeRequest::Unsatisfiable,
            None => RangeRequest::Whole,
        },
        (start, "") => match number(start) {
            Some(start) if start < size => RangeRequest::Partial(start..size),
            Some(_) => RangeRequest::Unsatisfiable,
            None => RangeRequest::Whole,
        },
        (start, end) => match (number(start), number(end)) {
            (Some(start), Some(end)) if start <= end && start < size => {
                RangeRequest::Partial(start..end.saturating_add(1).min(size))
            }
            (Some(start), Some(end)) if start <= end => RangeRequest::Unsatisfiable,
            _ => RangeRequest::Whole,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn content_range_forms() {
        assert_eq!(parse_content_range("0-1023"), Ok((0, 1023)));
        assert_eq!(parse_content_range("bytes 10-19/*"), Ok((10, 19)));
        assert_eq!(parse_content_range("bytes=10-19"), Ok((10, 19)));
        for bad in [
            "",
            "-",
            "5-4",
            "a-b",
            "1-",
            "-1",
            "+1-2",
            "18446744073709551616-18446744073709551617",
            "0-18446744073709551615",
        ] {
            assert!(parse_content_range(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn range_forms() {
        assert_eq!(parse_range("bytes=0-0", 10), RangeRequest::Partial(0..1));
        assert_eq!(parse_range("bytes=5-", 10), RangeRequest::Partial(5..10));
        assert_eq!(parse_range("bytes=-3", 10), RangeRequest::Partial(7..10));
        assert_eq!(parse_range("bytes=-30", 10), RangeRequest::Partial(0..10));
        assert_eq!(parse_range("bytes=2-100", 10), RangeRequest::Partial(2..10));
        assert_eq!(parse_range("bytes=10-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-0", 0), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,4-5", 10), RangeRequest::Whole);
        assert_eq!(parse_range("items=0-1", 10), RangeRequest::Whole);
        assert_eq!(parse_range("bytes=3-1", 10), RangeRequest::Whole);
    }

    proptest! {
        #[test]
        fn partial_ranges_lie_within_the_blob(value in "(bytes=)?[0-9]{0,5}-[0-9]{0,5}", size in 0u64..100_000) {
            if let RangeRequest::Partial(range) = parse_range(&value, size) {
                prop_assert!(range.start < range.end);
                prop_assert!(range.end <= size);
            }
        }

        #[test]
        fn content_range_never_panics(value in "\\PC{0,40}") {
            if let Ok((start, end)) = parse_content_range(&value) {
                prop_assert!(start <= end);
                prop_assert!((end - start).checked_add(1).is_some());
            }
        }
    }
}
