//! `berth_oci::range::parse_content_range`: the `Content-Range` of an upload chunk.
//!
//! Text mode: the input (if UTF-8) is the header value; an accepted range has start <= end and
//! its canonical spellings (`a-b`, `bytes a-b/*`, `bytes=a-b`) parse to the same pair.
//! Structured mode: a header built from numbers (small, huge, u64::MAX, past u64::MAX, with
//! leading zeros), each accepted prefix and suffix and optional spaces, compared with the
//! expected result computed from those numbers.
#![no_main]

use arbitrary::Arbitrary;
use berth_fuzz::{Mode, mode};
use berth_oci::range::parse_content_range;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Number {
    Small(u16),
    Any(u64),
    Max,
    /// u64::MAX + 1 + n: must be refused.
    Overflow(u32),
    /// The number with 1..=4 leading zeros.
    LeadingZeros(u8, u64),
}

impl Number {
    /// The text and the value (None past u64::MAX).
    fn render(&self) -> (String, Option<u64>) {
        match *self {
            Number::Small(n) => (n.to_string(), Some(u64::from(n))),
            Number::Any(n) => (n.to_string(), Some(n)),
            Number::Max => (u64::MAX.to_string(), Some(u64::MAX)),
            Number::Overflow(n) => ((u128::from(u64::MAX) + 1 + u128::from(n)).to_string(), None),
            Number::LeadingZeros(z, n) => (format!("{}{n}", "0".repeat(1 + usize::from(z % 4))), Some(n)),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Prefix {
    None,
    BytesSpace,
    BytesEquals,
}

#[derive(Arbitrary, Debug)]
enum Length {
    Star,
    Number(u64),
}

#[derive(Arbitrary, Debug)]
struct Built {
    prefix: Prefix,
    start: Number,
    end: Number,
    length: Option<Length>,
    /// Spaces: before everything, around the dash, after everything.
    spaces: [bool; 4],
}

fn check_text(value: &str) {
    match parse_content_range(value) {
        Ok((start, end)) => {
            assert!(start <= end, "{value:?} -> ({start}, {end})");
            for canonical in [
                format!("{start}-{end}"),
                format!("bytes {start}-{end}/*"),
                format!("bytes={start}-{end}"),
            ] {
                assert_eq!(parse_content_range(&canonical), Ok((start, end)), "{canonical:?}");
            }
        }
        Err(e) => {
            assert_eq!(e.0, value);
            let _ = e.to_string();
        }
    }
}

fn check_built(built: &Built) {
    let (start_text, start) = built.start.render();
    let (end_text, end) = built.end.render();
    let space = |on: bool| if on { " " } else { "" };
    let prefix = match built.prefix {
        Prefix::None => "",
        Prefix::BytesSpace => "bytes ",
        Prefix::BytesEquals => "bytes=",
    };
    let length = match &built.length {
        None => String::new(),
        Some(Length::Star) => "/*".to_owned(),
        Some(Length::Number(n)) => format!("/{n}"),
    };
    let [s0, s1, s2, s3] = built.spaces;
    let value = format!(
        "{}{prefix}{start_text}{}-{}{end_text}{length}{}",
        space(s0),
        space(s1),
        space(s2),
        space(s3)
    );
    let expected = match (start, end) {
        (Some(start), Some(end)) if start <= end => Some((start, end)),
        _ => None,
    };
    let got = parse_content_range(&value);
    assert_eq!(got.as_ref().ok(), expected.as_ref(), "{value:?} -> {got:?}");
    check_text(&value);
}

fuzz_target!(|data: &[u8]| {
    match mode(data) {
        Mode::Text(bytes) => {
            if let Ok(value) = std::str::from_utf8(bytes) {
                check_text(value);
            }
        }
        Mode::Structured(u) => {
            if let Ok(built) = <Built as Arbitrary>::arbitrary_take_rest(u) {
                check_built(&built);
            }
        }
    }
});
