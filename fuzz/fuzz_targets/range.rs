//! `berth_oci::range::parse_range(value, size)`: the `Range` of a blob `GET`.
//!
//! Text mode: `<size>\n<Range value>` (a first line that is not a number is used by its length
//! as the size; without a newline the size is 1024). Checked: a `Partial(r)` has
//! `r.start < r.end <= size`, so it is never returned for an empty blob, and re-reading the
//! served range as `bytes=<start>-<end-1>` gives the same range.
//! Structured mode: one range spec of RFC 9110 §14.1.2 (`a-b`, `a-`, `-n`, several ranges,
//! another unit) built from numbers, against a blob size near the edges, compared with the
//! result computed independently from the RFC's rules.
#![no_main]

use std::ops::Range;

use arbitrary::Arbitrary;
use berth_fuzz::{Mode, mode};
use berth_oci::range::{RangeRequest, parse_range};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Number {
    Small(u8),
    Any(u64),
    Max,
    Overflow(u16),
}

impl Number {
    fn render(&self) -> (String, Option<u64>) {
        match *self {
            Number::Small(n) => (n.to_string(), Some(u64::from(n))),
            Number::Any(n) => (n.to_string(), Some(n)),
            Number::Max => (u64::MAX.to_string(), Some(u64::MAX)),
            Number::Overflow(n) => ((u128::from(u64::MAX) + 1 + u128::from(n)).to_string(), None),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Spec {
    /// `bytes=a-b`
    Closed(Number, Number),
    /// `bytes=a-`
    From(Number),
    /// `bytes=-n`
    Suffix(Number),
    /// `bytes=a-b,c-d` (ignored: Whole)
    Several(Number, Number, Number, Number),
    /// `items=a-b` (ignored: Whole)
    OtherUnit(Number, Number),
}

#[derive(Arbitrary, Debug)]
enum Size {
    Zero,
    Small(u8),
    Any(u64),
    Max,
}

#[derive(Arbitrary, Debug)]
struct Built {
    spec: Spec,
    size: Size,
    /// Spaces before the value, after `bytes=`, around the dash, at the end.
    spaces: [bool; 5],
}

fn check_partial(value: &str, size: u64, result: &RangeRequest) {
    if let RangeRequest::Partial(range) = result {
        assert!(
            range.start < range.end && range.end <= size,
            "parse_range({value:?}, {size}) = {result:?}"
        );
        // The served range, asked for explicitly, is served again.
        let again = format!("bytes={}-{}", range.start, range.end - 1);
        assert_eq!(
            parse_range(&again, size),
            RangeRequest::Partial(range.clone()),
            "{again:?}"
        );
    }
}

/// RFC 9110 §14.1.2–14.1.3, with Berth's choices for what it ignores (serve the whole blob):
/// several ranges, another unit, an invalid spec (`a-b` with a > b, numbers past u64).
fn expected(spec: &Spec, size: u64) -> (String, RangeRequest) {
    let unsatisfiable = RangeRequest::Unsatisfiable;
    match spec {
        Spec::Closed(a, b) => {
            let ((a_text, a), (b_text, b)) = (a.render(), b.render());
            let want = match (a, b) {
                (Some(a), Some(b)) if a <= b => {
                    if a >= size {
                        unsatisfiable
                    } else {
                        // last-pos past the end means "to the end".
                        let last = b.min(size - 1);
                        RangeRequest::Partial(Range {
                            start: a,
                            end: last + 1,
                        })
                    }
                }
                _ => RangeRequest::Whole,
            };
            (format!("{a_text}-{b_text}"), want)
        }
        Spec::From(a) => {
            let (a_text, a) = a.render();
            let want = match a {
                Some(a) if a < size => RangeRequest::Partial(a..size),
                Some(_) => unsatisfiable,
                None => RangeRequest::Whole,
            };
            (format!("{a_text}-"), want)
        }
        Spec::Suffix(n) => {
            let (n_text, n) = n.render();
            let want = match n {
                // A zero-length suffix, or any suffix of an empty blob, selects nothing.
                Some(0) => unsatisfiable,
                Some(_) if size == 0 => unsatisfiable,
                Some(n) => RangeRequest::Partial(size - n.min(size)..size),
                None => RangeRequest::Whole,
            };
            (format!("-{n_text}"), want)
        }
        Spec::Several(a, b, c, d) => (
            format!("{}-{},{}-{}", a.render().0, b.render().0, c.render().0, d.render().0),
            RangeRequest::Whole,
        ),
        Spec::OtherUnit(..) => (String::new(), RangeRequest::Whole),
    }
}

fn check_built(built: &Built) {
    let size = match built.size {
        Size::Zero => 0,
        Size::Small(n) => u64::from(n),
        Size::Any(n) => n,
        Size::Max => u64::MAX,
    };
    let (spec_text, want) = expected(&built.spec, size);
    let sp = |i: usize| if built.spaces[i] { " " } else { "" };
    let value = match &built.spec {
        Spec::OtherUnit(a, b) => format!("{}items={}-{}", sp(0), a.render().0, b.render().0),
        _ => {
            // Spaces around the dash: only where the spec has numbers on that side.
            let spec_text = spec_text.replacen('-', &format!("{}-{}", sp(2), sp(3)), 1);
            format!("{}bytes={}{spec_text}{}", sp(0), sp(1), sp(4))
        }
    };
    let got = parse_range(&value, size);
    assert_eq!(got, want, "parse_range({value:?}, {size})");
    check_partial(&value, size, &got);
}

fuzz_target!(|data: &[u8]| {
    match mode(data) {
        Mode::Text(bytes) => {
            let Ok(text) = std::str::from_utf8(bytes) else { return };
            let (size, value) = match text.split_once('\n') {
                Some((size, value)) => (size.trim().parse::<u64>().unwrap_or(size.len() as u64), value),
                None => (1024, text),
            };
            let result = parse_range(value, size);
            check_partial(value, size, &result);
        }
        Mode::Structured(u) => {
            if let Ok(built) = <Built as Arbitrary>::arbitrary_take_rest(u) {
                check_built(&built);
            }
        }
    }
});
