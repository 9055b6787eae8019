//! `berth_types`: `Digest::parse`, `RepositoryName::parse`, `Tag::parse`, `Reference::parse`,
//! `UploadId::parse`.
//!
//! Text mode: the input (if UTF-8) is given to all five parsers. Structured mode: the text is
//! a concatenation of grammar-aware tokens (digests, names, UUIDs, long runs near the length
//! limits). Checked for each parser:
//! - accepted exactly when an independent regex of the spec grammar matches (differential);
//! - an accepted value's `as_str()`/`Display` is the input, and it re-parses equal;
//! - digest parts agree (`algorithm:hex`, hex length), serde round-trips;
//! - `Reference` is a digest exactly when the text has `:`, and then agrees with `Digest`/`Tag`.
#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use berth_fuzz::{DigestSel, Mode, NameComponent, UuidSel, mode, render_name};
use berth_types::{
    Digest, MAX_REPOSITORY_NAME_LEN, MAX_TAG_LEN, Reference, ReferenceError, RepositoryName, Tag, UploadId,
};
use libfuzzer_sys::fuzz_target;
use regex::Regex;

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("oracle regex compiles")
}

// Oracles, written from the specifications rather than from the parsers.
// image-spec descriptor.md: sha256 `[a-f0-9]{64}`, sha512 `[a-f0-9]{128}`.
static DIGEST: LazyLock<Regex> = LazyLock::new(|| regex(r"\A(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})\z"));
// distribution-spec §Pulling manifests.
static NAME: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\A[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*\z"));
static TAG: LazyLock<Regex> = LazyLock::new(|| regex(r"\A[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}\z"));
// Berth issues lowercase hyphenated UUIDs and accepts only that form back.
static UPLOAD_ID: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\z"));

#[derive(Arbitrary, Debug)]
enum Token {
    Digest(DigestSel),
    Name(Vec<NameComponent>),
    Uuid(UuidSel),
    /// Characters from the tag alphabet plus a few outsiders.
    TagChars(Vec<u8>),
    /// `count` copies of one character: reaches the 128 (tag) and 255 (name) byte limits.
    Run(u16, char),
    Separator(u8),
    Char(char),
}

fn render(tokens: &[Token]) -> String {
    let mut out = String::new();
    for token in tokens {
        match token {
            Token::Digest(d) => out.push_str(&d.render()),
            Token::Name(components) => out.push_str(&render_name(components)),
            Token::Uuid(u) => out.push_str(&u.render()),
            Token::TagChars(bytes) => {
                const ALPHABET: &[u8] = b"aZ09_.-+:/@ Az";
                out.extend(
                    bytes
                        .iter()
                        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()])),
                );
            }
            Token::Run(count, c) => out.extend(std::iter::repeat_n(*c, usize::from(count % 300))),
            Token::Separator(s) => out.push(char::from(b":/._-+=@ \t%"[usize::from(*s) % 11])),
            Token::Char(c) => out.push(*c),
        }
    }
    out
}

fn check(text: &str) {
    // Digest.
    let digest = Digest::parse(text);
    assert_eq!(
        digest.is_ok(),
        DIGEST.is_match(text),
        "Digest::parse({text:?}) = {digest:?}"
    );
    match &digest {
        Ok(d) => {
            assert_eq!(d.as_str(), text);
            assert_eq!(d.to_string(), text);
            assert_eq!(format!("{}:{}", d.algorithm().as_str(), d.hex()), text);
            assert_eq!(d.hex().len(), d.algorithm().hex_len());
            assert_eq!(Digest::parse(d.as_str()).as_ref(), Ok(d));
            assert_eq!(text.parse::<Digest>().as_ref(), Ok(d));
            let json = serde_json::to_string(d).expect("a digest serializes");
            assert_eq!(serde_json::from_str::<Digest>(&json).ok().as_ref(), Some(d));
        }
        Err(e) => {
            let _ = e.to_string();
            // A JSON string holding the text must not deserialize to a digest either.
            let json = serde_json::to_string(text).expect("a string serializes");
            assert!(serde_json::from_str::<Digest>(&json).is_err());
        }
    }

    // RepositoryName.
    let name = RepositoryName::parse(text);
    let expected = text.len() <= MAX_REPOSITORY_NAME_LEN && NAME.is_match(text);
    assert_eq!(name.is_ok(), expected, "RepositoryName::parse({text:?}) = {name:?}");
    match &name {
        Ok(n) => {
            assert_eq!(n.as_str(), text);
            assert_eq!(n.to_string(), text);
            assert_eq!(RepositoryName::parse(n.as_str()).as_ref(), Ok(n));
            assert_eq!(text.parse::<RepositoryName>().as_ref(), Ok(n));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }

    // Tag.
    let tag = Tag::parse(text);
    assert_eq!(tag.is_ok(), TAG.is_match(text), "Tag::parse({text:?}) = {tag:?}");
    match &tag {
        Ok(t) => {
            assert!(t.as_str().len() <= MAX_TAG_LEN);
            assert_eq!(t.as_str(), text);
            assert_eq!(t.to_string(), text);
            assert_eq!(Tag::parse(t.as_str()).as_ref(), Ok(t));
            assert_eq!(text.parse::<Tag>().as_ref(), Ok(t));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }

    // Reference: a digest when the text has `:`, else a tag.
    let reference = Reference::parse(text);
    match &reference {
        Ok(r) => {
            assert_eq!(r.as_str(), text);
            assert_eq!(r.to_string(), text);
            assert_eq!(Reference::parse(r.as_str()).as_ref(), Ok(r));
            match r {
                Reference::Digest(d) => {
                    assert!(text.contains(':'));
                    assert_eq!(digest.as_ref(), Ok(d));
                }
                Reference::Tag(t) => {
                    assert!(!text.contains(':'));
                    assert_eq!(tag.as_ref(), Ok(t));
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
            if text.contains(':') {
                assert!(
                    matches!(e, ReferenceError::Digest(_)) && digest.is_err(),
                    "{text:?}: {e:?}"
                );
            } else {
                assert!(matches!(e, ReferenceError::Tag(_)) && tag.is_err(), "{text:?}: {e:?}");
            }
        }
    }

    // UploadId.
    let id = UploadId::parse(text);
    assert_eq!(
        id.is_ok(),
        UPLOAD_ID.is_match(text),
        "UploadId::parse({text:?}) = {id:?}"
    );
    match &id {
        Ok(i) => {
            assert_eq!(i.as_str(), text);
            assert_eq!(i.to_string(), text);
            assert_eq!(UploadId::parse(i.as_str()).as_ref(), Ok(i));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match mode(data) {
        Mode::Text(bytes) => {
            if let Ok(text) = std::str::from_utf8(bytes) {
                check(text);
            }
        }
        Mode::Structured(u) => {
            if let Ok(tokens) = <Vec<Token> as Arbitrary>::arbitrary_take_rest(u) {
                check(&render(&tokens));
            }
        }
    }
});
