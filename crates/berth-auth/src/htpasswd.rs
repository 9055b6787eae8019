//! Reading Apache `htpasswd` files with bcrypt entries (`htpasswd -B`), the format `registry:2`'s
//! `htpasswd` authentication uses: one `name:hash` per line.

use crate::names::AccountName;
use crate::passwords::is_bcrypt;

/// One user from an `htpasswd` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtpasswdEntry {
    /// The user name.
    pub name: AccountName,
    /// The bcrypt hash, as in the file.
    pub bcrypt_hash: String,
}

/// Why an `htpasswd` file cannot be imported. Nothing is imported from a file with any error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HtpasswdError {
    /// A line is not `name:hash`.
    #[error("line {line}: expected NAME:HASH")]
    Form {
        /// 1-based line number.
        line: usize,
    },
    /// The name is not a valid Berth user name.
    #[error("line {line}: {source}")]
    Name {
        /// 1-based line number.
        line: usize,
        /// The name's problem.
        source: crate::names::NameError,
    },
    /// The hash is not bcrypt (MD5 `$apr1$`, SHA-1 `{SHA}`, crypt and plain text are refused,
    /// as `registry:2` refuses them).
    #[error("line {line}: user {name:?} has a non-bcrypt hash; re-create it with `htpasswd -B`")]
    NotBcrypt {
        /// 1-based line number.
        line: usize,
        /// The user name.
        name: String,
    },
    /// A user appears twice.
    #[error("line {line}: user {name:?} appears twice")]
    Duplicate {
        /// 1-based line number of the second entry.
        line: usize,
        /// The user name.
        name: String,
    },
}

/// Parses an `htpasswd` file. Blank lines and lines starting with `#` are skipped; surrounding
/// whitespace and a trailing `\r` are ignored. Errors: the first bad line ([`HtpasswdError`]).
pub fn parse_htpasswd(text: &str) -> Result<Vec<HtpasswdEntry>, HtpasswdError> {
    let mut entries: Vec<HtpasswdEntry> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (name, hash) = trimmed.split_once(':').ok_or(HtpasswdError::Form { line })?;
        let name = AccountName::parse(name).map_err(|source| HtpasswdError::Name { line, source })?;
        if !is_bcrypt(hash) {
            return Err(HtpasswdError::NotBcrypt {
                line,
                name: name.to_string(),
            });
        }
        if entries.iter().any(|entry| entry.name == name) {
            return Err(HtpasswdError::Duplicate {
                line,
                name: name.to_string(),
            });
        }
        entries.push(HtpasswdEntry {
            name,
            bcrypt_hash: hash.to_owned(),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcrypt_entries_are_read() {
        let text =
            "# users\nalice:$2y$05$abcdefghijklmnopqrstuv0123456789012345678901234567890\r\n\n  bob:$2b$10$xyz  \n";
        let entries = parse_htpasswd(text).expect("parse");
        let names: Vec<&str> = entries.iter().map(|entry| entry.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert!(entries[0].bcrypt_hash.starts_with("$2y$05$"));
        assert_eq!(entries[1].bcrypt_hash, "$2b$10$xyz");
    }

    #[test]
    fn other_hashes_and_bad_lines_are_refused_with_their_line() {
        let cases = [
            (
                "alice:$apr1$salt$hash",
                HtpasswdError::NotBcrypt {
                    line: 1,
                    name: "alice".into(),
                },
            ),
            (
                "alice:{SHA}abc",
                HtpasswdError::NotBcrypt {
                    line: 1,
                    name: "alice".into(),
                },
            ),
            ("ok:$2y$05$x\nbob", HtpasswdError::Form { line: 2 }),
            (
                "a:$2y$05$x\na:$2y$05$y",
                HtpasswdError::Duplicate {
                    line: 2,
                    name: "a".into(),
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_htpasswd(text), Err(expected), "{text:?}");
        }
        assert!(matches!(
            parse_htpasswd("Robot$x:$2y$05$x"),
            Err(HtpasswdError::Name { line: 1, .. })
        ));
    }
}
