//! Helpers shared by Berth's fuzz targets.
//!
//! Every target reads its input in one of two modes, chosen by the first byte:
//! - **text** (the usual case, and the format of every file under `seeds/`): the bytes are the
//!   untrusted text itself, in a small per-target framing that stays human-readable;
//! - **structured** (first byte [`STRUCTURED`], which never starts valid UTF-8): the rest is fed
//!   to `arbitrary` to build a grammar-aware value (valid-looking digests, repository names,
//!   manifests…), which the target renders to text and checks against an independent oracle.

use arbitrary::{Arbitrary, Unstructured};

/// First byte selecting the structured mode (`0xff` is never part of UTF-8 text).
pub const STRUCTURED: u8 = 0xff;

/// An input split by mode.
pub enum Mode<'a> {
    /// Plain bytes: the text to parse (maybe not UTF-8).
    Text(&'a [u8]),
    /// Bytes for `arbitrary`.
    Structured(Unstructured<'a>),
}

/// Splits `data` into its mode.
pub fn mode(data: &[u8]) -> Mode<'_> {
    match data.split_first() {
        Some((&STRUCTURED, rest)) => Mode::Structured(Unstructured::new(rest)),
        _ => Mode::Text(data),
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// A digest-like string: mostly valid, sometimes broken in one specific way.
#[derive(Arbitrary, Debug, Clone)]
pub enum DigestSel {
    /// `sha256:<64 hex>` (valid).
    Sha256([u8; 32]),
    /// `sha512:<128 hex>` (valid).
    Sha512([u8; 32], [u8; 32]),
    /// sha256 with uppercase hex (invalid).
    Upper([u8; 32]),
    /// sha256 truncated or padded by a few characters (invalid).
    BadLength([u8; 32], u8),
    /// A well-formed but unsupported algorithm (invalid).
    OtherAlgorithm(u8, [u8; 32]),
    /// A sha256 digest with one character replaced (invalid unless the replacement is hex).
    Corrupted([u8; 32], u8, char),
    /// Anything.
    Raw(String),
}

impl DigestSel {
    /// The text.
    pub fn render(&self) -> String {
        match self {
            DigestSel::Sha256(h) => format!("sha256:{}", hex(h)),
            DigestSel::Sha512(a, b) => format!("sha512:{}{}", hex(a), hex(b)),
            DigestSel::Upper(h) => format!("sha256:{}", hex(h).to_uppercase()),
            DigestSel::BadLength(h, n) => {
                let text = hex(h);
                let n = usize::from(*n % 8);
                if n < 4 {
                    format!("sha256:{}", &text[..64 - 1 - n])
                } else {
                    format!("sha256:{text}{}", &text[..n - 3])
                }
            }
            DigestSel::OtherAlgorithm(alg, h) => {
                let names = [
                    "md5",
                    "sha384",
                    "sha256+b64",
                    "sha1",
                    "blake3",
                    "SHA256",
                    "sha-256",
                    "sha256.x",
                ];
                format!("{}:{}", names[usize::from(*alg) % names.len()], hex(h))
            }
            DigestSel::Corrupted(h, at, c) => {
                let mut text = format!("sha256:{}", hex(h));
                let at = 7 + usize::from(*at) % 64;
                text.replace_range(at..at + 1, &c.to_string());
                text
            }
            DigestSel::Raw(s) => s.clone(),
        }
    }
}

/// One path component of a repository name, built from the grammar's pieces
/// (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`), sometimes with a broken piece.
#[derive(Arbitrary, Debug, Clone)]
pub struct NameComponent(pub Vec<NamePiece>);

/// A piece of a repository name component.
#[derive(Arbitrary, Debug, Clone)]
pub enum NamePiece {
    /// A run of `[a-z0-9]` (length 1..=8).
    Alnum(u8, u32),
    /// `.`
    Dot,
    /// `_`
    Underscore,
    /// `__`
    DoubleUnderscore,
    /// `-` repeated (1..=4)
    Dashes(u8),
    /// An uppercase letter (invalid).
    Upper(u8),
    /// Any character.
    Char(char),
}

impl NameComponent {
    /// The text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                NamePiece::Alnum(len, seed) => {
                    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
                    let mut s = *seed;
                    for _ in 0..=(len % 8) {
                        out.push(char::from(ALNUM[(s % 36) as usize]));
                        s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345) >> 3;
                    }
                }
                NamePiece::Dot => out.push('.'),
                NamePiece::Underscore => out.push('_'),
                NamePiece::DoubleUnderscore => out.push_str("__"),
                NamePiece::Dashes(n) => out.push_str(&"-".repeat(1 + usize::from(n % 4))),
                NamePiece::Upper(c) => out.push(char::from(b'A' + c % 26)),
                NamePiece::Char(c) => out.push(*c),
            }
        }
        out
    }
}

/// A repository name: components joined by `/`.
pub fn render_name(components: &[NameComponent]) -> String {
    components
        .iter()
        .map(NameComponent::render)
        .collect::<Vec<_>>()
        .join("/")
}

/// A UUID in one of the spellings clients might send; only `Hyphenated` is Berth's form.
#[derive(Arbitrary, Debug, Clone)]
pub enum UuidSel {
    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lowercase (valid).
    Hyphenated([u8; 16]),
    /// Uppercase hyphenated.
    Upper([u8; 16]),
    /// 32 hex digits without hyphens.
    Simple([u8; 16]),
    /// `{…}`.
    Braced([u8; 16]),
    /// `urn:uuid:…`.
    Urn([u8; 16]),
}

impl UuidSel {
    /// The text.
    pub fn render(&self) -> String {
        let hyphenated = |b: &[u8; 16]| {
            let h = hex(b);
            format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
        };
        match self {
            UuidSel::Hyphenated(b) => hyphenated(b),
            UuidSel::Upper(b) => hyphenated(b).to_uppercase(),
            UuidSel::Simple(b) => hex(b),
            UuidSel::Braced(b) => format!("{{{}}}", hyphenated(b)),
            UuidSel::Urn(b) => format!("urn:uuid:{}", hyphenated(b)),
        }
    }
}
