//! Reading a CNCF Distribution (`registry:2`) filesystem storage tree, without changing it.
//!
//! The layout (Distribution's `registry/storage/paths.go`), under `<root>/docker/registry/v2`:
//!
//! ```text
//! blobs/<alg>/<hex[0..2]>/<hex>/data                          the bytes of every blob and manifest
//! repositories/<name…>/_layers/<alg>/<hex>/link               blobs linked in the repository
//! repositories/<name…>/_manifests/revisions/<alg>/<hex>/link  manifests stored in the repository
//! repositories/<name…>/_manifests/tags/<tag>/current/link     what a tag points at
//! repositories/<name…>/_manifests/tags/<tag>/index/…          the tag's earlier targets (not read)
//! repositories/<name…>/_uploads/…                             unfinished uploads (not read)
//! ```
//!
//! A link file holds `<alg>:<hex>`. A repository name has as many path components as
//! directories; a directory holding `_manifests` is a repository (as for Distribution's
//! catalog), and may hold further repositories below it (`team/app` and `team/app/cli`).
//! A deleted manifest or blob link leaves its directory without a `link` file: such entries are
//! not listed.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use berth_types::Digest;

/// The storage tree of a Distribution registry.
pub struct DistributionTree {
    /// `<root>/docker/registry/v2`.
    v2: PathBuf,
}

/// One entry of a directory of links (`_layers`, `_manifests/revisions`, a tag's `current`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// The digest the link names (equal to the one its path names, where the path names one).
    Digest(Digest),
    /// An entry that cannot be read: its path relative to the repository, and why.
    Broken {
        /// The entry, e.g. `_layers/sha256/ab12…`.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A tag of a source repository and what its `current/link` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTag {
    /// The tag as named by its directory.
    pub name: String,
    /// The manifest it points at.
    pub target: Link,
}

impl DistributionTree {
    /// Opens the tree at `dir`: the storage root (Distribution's `rootdirectory`, holding
    /// `docker/registry/v2`) or the `v2` directory itself. Errors: neither holds
    /// `repositories` or `blobs`.
    pub fn open(dir: &Path) -> anyhow::Result<DistributionTree> {
        for v2 in [dir.join("docker/registry/v2"), dir.to_owned()] {
            if v2.join("repositories").is_dir() || v2.join("blobs").is_dir() {
                return Ok(DistributionTree { v2 });
            }
        }
        bail!(
            "{} is not a registry:2 filesystem storage root: it has no docker/registry/v2/repositories \
             (give the filesystem driver's rootdirectory)",
            dir.display()
        )
    }

    /// The names of the repositories, sorted, as `/`-separated paths below `repositories/`,
    /// found by walking it. Directories whose names start with `_` are never names.
    pub fn repositories(&self) -> anyhow::Result<Vec<String>> {
        let root = self.v2.join("repositories");
        let mut names = Vec::new();
        if !root.is_dir() {
            return Ok(names);
        }
        let mut pending = vec![(root, String::new())];
        while let Some((dir, name)) = pending.pop() {
            if !name.is_empty() && dir.join("_manifests").is_dir() {
                names.push(name.clone());
            }
            for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
                let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
                let component = entry.file_name().to_string_lossy().into_owned();
                if component.starts_with('_') || !entry.file_type()?.is_dir() {
                    continue;
                }
                let child = if name.is_empty() {
                    component
                } else {
                    format!("{name}/{component}")
                };
                pending.push((entry.path(), child));
            }
        }
        names.sort();
        Ok(names)
    }

    /// Where the bytes of `digest` are: `blobs/<alg>/<hex[0..2]>/<hex>/data`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.v2
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The directory of repository `name` (a name from [`DistributionTree::repositories`]).
    fn repository_dir(&self, name: &str) -> PathBuf {
        self.v2.join("repositories").join(name)
    }

    /// The blobs linked in repository `name` (`_layers`), sorted by digest.
    pub fn layers(&self, name: &str) -> anyhow::Result<Vec<Link>> {
        read_link_directory(&self.repository_dir(name), "_layers")
    }

    /// The manifests stored in repository `name` (`_manifests/revisions`), sorted by digest.
    pub fn revisions(&self, name: &str) -> anyhow::Result<Vec<Link>> {
        read_link_directory(&self.repository_dir(name), "_manifests/revisions")
    }

    /// The tags of repository `name` with their current targets, sorted by name.
    pub fn tags(&self, name: &str) -> anyhow::Result<Vec<SourceTag>> {
        let tags_dir = self.repository_dir(name).join("_manifests/tags");
        let mut tags = Vec::new();
        for tag in sorted_subdirectories(&tags_dir)? {
            let relative = format!("_manifests/tags/{tag}/current/link");
            let target = match std::fs::read_to_string(tags_dir.join(&tag).join("current/link")) {
                Ok(text) => parse_link(&relative, &text, None),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Link::Broken {
                    entry: relative,
                    reason: "the tag has no current link".to_owned(),
                },
                Err(error) => Link::Broken {
                    entry: relative,
                    reason: format!("unreadable: {error}"),
                },
            };
            tags.push(SourceTag { name: tag, target });
        }
        Ok(tags)
    }
}

/// The names of the subdirectories of `dir`, sorted; none when `dir` does not exist.
fn sorted_subdirectories(dir: &Path) -> anyhow::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("reading {}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        if entry.file_type()?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// The links of `<repository>/<base>/<alg>/<hex>/link`. Directories without a `link` file (what
/// a deletion leaves) are not listed.
fn read_link_directory(repository: &Path, base: &str) -> anyhow::Result<Vec<Link>> {
    let mut links = Vec::new();
    for algorithm in sorted_subdirectories(&repository.join(base))? {
        for hex in sorted_subdirectories(&repository.join(base).join(&algorithm))? {
            let relative = format!("{base}/{algorithm}/{hex}");
            let path = repository.join(&relative).join("link");
            let named = format!("{algorithm}:{hex}");
            match std::fs::read_to_string(&path) {
                Ok(text) => links.push(parse_link(&relative, &text, Some(&named))),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => links.push(Link::Broken {
                    entry: relative,
                    reason: format!("unreadable link: {error}"),
                }),
            }
        }
    }
    Ok(links)
}

/// Parses the content of a link file at `entry`; `named` is the digest its path names, which
/// the content must equal.
fn parse_link(entry: &str, text: &str, named: Option<&str>) -> Link {
    let text = text.trim();
    let broken = |reason: String| Link::Broken {
        entry: entry.to_owned(),
        reason,
    };
    match Digest::parse(text) {
        Ok(digest) if named.is_none_or(|named| named == digest.as_str()) => Link::Digest(digest),
        Ok(digest) => broken(format!("the link names {digest}, its path {}", named.unwrap_or(""))),
        Err(error) => broken(format!("the link holds {text:?}, not a digest: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const HEX_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn finds_nested_repositories_links_and_tags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v2 = dir.path().join("docker/registry/v2");
        let repos = v2.join("repositories");
        write(
            &repos
                .join("team/app/_manifests/revisions/sha256")
                .join(HEX_A)
                .join("link"),
            &format!("sha256:{HEX_A}"),
        );
        // A deleted revision: the directory without its link.
        std::fs::create_dir_all(repos.join("team/app/_manifests/revisions/sha256").join(HEX_B)).expect("mkdir");
        write(
            &repos.join("team/app/_layers/sha256").join(HEX_B).join("link"),
            &format!("sha256:{HEX_A}"),
        );
        write(
            &repos.join("team/app/_manifests/tags/v1/current/link"),
            &format!("sha256:{HEX_A}"),
        );
        std::fs::create_dir_all(repos.join("team/app/_manifests/tags/gone")).expect("mkdir");
        write(
            &repos.join("team/app/cli/_manifests/tags/latest/current/link"),
            "nonsense",
        );
        std::fs::create_dir_all(repos.join("team/app/_uploads/some-upload")).expect("mkdir");
        std::fs::create_dir_all(repos.join("only-layers/_layers")).expect("mkdir");

        for root in [dir.path(), v2.as_path()] {
            let tree = DistributionTree::open(root).expect("open");
            assert_eq!(tree.repositories().expect("walk"), vec!["team/app", "team/app/cli"]);
        }
        let tree = DistributionTree::open(dir.path()).expect("open");
        let a = Digest::parse(&format!("sha256:{HEX_A}")).expect("digest");
        assert_eq!(
            tree.revisions("team/app").expect("revisions"),
            vec![Link::Digest(a.clone())]
        );
        assert!(matches!(
            &tree.layers("team/app").expect("layers")[..],
            [Link::Broken { entry, .. }] if entry == &format!("_layers/sha256/{HEX_B}")
        ));
        let tags = tree.tags("team/app").expect("tags");
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].name, "gone");
        assert!(matches!(tags[0].target, Link::Broken { .. }));
        assert_eq!(tags[1].target, Link::Digest(a.clone()));
        assert!(matches!(
            tree.tags("team/app/cli").expect("tags")[0].target,
            Link::Broken { .. }
        ));
        assert_eq!(tree.blob_path(&a), v2.join("blobs/sha256/aa").join(HEX_A).join("data"));
        assert!(DistributionTree::open(&repos).is_err());
    }
}
