//! Table-style tests of parsing and planning.

mod berth_plan;
mod ecr_plan;
mod parse;

use crate::{DAY_MS, Deletion, Kept, ManifestFacts, Plan, Policy, RepositoryInventory, TagFacts, plan};

/// "Now" in every test: day 1000 after the epoch.
pub(crate) const NOW: i64 = 1000 * DAY_MS;

pub(crate) fn ago(days: i64) -> i64 {
    NOW - days * DAY_MS
}

/// A manifest pushed `days` days ago whose tags were pushed at the same time.
pub(crate) fn m(digest: &str, days: i64, tags: &[&str]) -> ManifestFacts {
    ManifestFacts {
        digest: digest.to_owned(),
        pushed_at_ms: ago(days),
        last_pulled_at_ms: None,
        tags: tags
            .iter()
            .map(|t| TagFacts {
                name: (*t).to_owned(),
                pushed_at_ms: ago(days),
                last_pulled_at_ms: None,
                immutable: false,
            })
            .collect(),
        listed_by: Vec::new(),
        subject: None,
        is_index: false,
    }
}

pub(crate) trait ManifestExt {
    fn at_ms(self, pushed_at_ms: i64) -> Self;
    fn tag_pushed(self, tag: &str, days: i64) -> Self;
    fn tag_pulled(self, tag: &str, days: i64) -> Self;
    fn pulled(self, days: i64) -> Self;
    fn immutable(self, tag: &str) -> Self;
    fn listed_by(self, index: &str) -> Self;
    fn subject(self, subject: &str) -> Self;
    fn index(self) -> Self;
}

impl ManifestExt for ManifestFacts {
    fn at_ms(mut self, pushed_at_ms: i64) -> Self {
        self.pushed_at_ms = pushed_at_ms;
        self
    }
    fn tag_pushed(mut self, tag: &str, days: i64) -> Self {
        for t in self.tags.iter_mut().filter(|t| t.name == tag) {
            t.pushed_at_ms = ago(days);
        }
        self
    }
    fn tag_pulled(mut self, tag: &str, days: i64) -> Self {
        for t in self.tags.iter_mut().filter(|t| t.name == tag) {
            t.last_pulled_at_ms = Some(ago(days));
        }
        self
    }
    fn pulled(mut self, days: i64) -> Self {
        self.last_pulled_at_ms = Some(ago(days));
        self
    }
    fn immutable(mut self, tag: &str) -> Self {
        for t in self.tags.iter_mut().filter(|t| t.name == tag) {
            t.immutable = true;
        }
        self
    }
    fn listed_by(mut self, index: &str) -> Self {
        self.listed_by.push(index.to_owned());
        self
    }
    fn subject(mut self, subject: &str) -> Self {
        self.subject = Some(subject.to_owned());
        self
    }
    fn index(mut self) -> Self {
        self.is_index = true;
        self
    }
}

pub(crate) fn repo(name: &str, manifests: Vec<ManifestFacts>) -> RepositoryInventory {
    RepositoryInventory {
        name: name.to_owned(),
        manifests,
    }
}

pub(crate) fn parse(text: &str) -> Policy {
    match Policy::parse(text) {
        Ok(p) => p,
        Err(e) => panic!("policy should parse: {e}\n{text}"),
    }
}

/// Plans `policy` for project `team` at [`NOW`].
pub(crate) fn run(policy: &str, repos: &[RepositoryInventory]) -> Plan {
    plan(&parse(policy), "team", repos, NOW)
}

/// Deleted tag names, as `tag` (sorted by the plan's order).
pub(crate) fn deleted_tags(p: &Plan) -> Vec<&str> {
    p.deletions
        .iter()
        .filter_map(|d| match d {
            Deletion::Tag { tag, .. } => Some(tag.as_str()),
            Deletion::Manifest { .. } => None,
        })
        .collect()
}

/// Deleted manifest digests (sorted by the plan's order).
pub(crate) fn deleted_manifests(p: &Plan) -> Vec<&str> {
    p.deletions
        .iter()
        .filter_map(|d| match d {
            Deletion::Manifest { digest, .. } => Some(digest.as_str()),
            Deletion::Tag { .. } => None,
        })
        .collect()
}

pub(crate) fn deletion_reason<'p>(p: &'p Plan, key: &str) -> &'p str {
    p.deletions
        .iter()
        .find(|d| match d {
            Deletion::Tag { tag, .. } => tag == key,
            Deletion::Manifest { digest, .. } => digest == key,
        })
        .map(Deletion::reason)
        .unwrap_or_else(|| panic!("{key} is not deleted: {p:#?}"))
}

pub(crate) fn kept_reason<'p>(p: &'p Plan, key: &str) -> &'p str {
    p.kept
        .iter()
        .find(|k| match k {
            Kept::Tag { tag, .. } => tag == key,
            Kept::Manifest { digest, .. } => digest == key,
        })
        .map(Kept::reason)
        .unwrap_or_else(|| panic!("{key} is not reported as kept: {p:#?}"))
}
