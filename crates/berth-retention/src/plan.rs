//! Planning: which tags and manifests a policy deletes, and why the rest stay.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::ecr::{EcrCount, EcrPolicy, EcrRuleLabel};
use crate::inventory::{ManifestFacts, RepositoryInventory, age_days, older_than, relative_repository_name, within};
use crate::policy::{Action, BerthPolicy, Policy, PolicyRules, RuleLabel};

/// The outcome of [`plan`]: what to delete and, for a dry-run report, what stays and why.
///
/// Both lists are sorted by repository, then tags before manifests, then tag name or digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// What retention deletes. Every tag retention removes is listed as a
    /// [`Deletion::Tag`], including the tags of a manifest that is deleted too; a
    /// [`Deletion::Manifest`] names the tags it carried. Executing tag deletions before
    /// manifest deletions (the order of this list within a repository) is always valid.
    pub deletions: Vec<Deletion>,
    /// What stays, with the reason (see the crate documentation for which items are listed).
    pub kept: Vec<Kept>,
}

/// One deletion of a [`Plan`]. Serializes with `"kind": "tag"` or `"kind": "manifest"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Deletion {
    /// Remove a tag (the manifest it points at may stay).
    Tag {
        /// Full repository name.
        repository: String,
        /// The tag.
        tag: String,
        /// The digest the tag points at.
        digest: String,
        /// Why, naming the rule(s), e.g. `not kept by rule 1 (keep the 10 most recently
        /// pushed tags matching "main-*")`.
        reason: String,
    },
    /// Delete a manifest from the repository (with any tags it still has).
    Manifest {
        /// Full repository name.
        repository: String,
        /// The manifest's digest.
        digest: String,
        /// The tags pointing at it when planned (sorted; each also listed as a
        /// [`Deletion::Tag`]); empty for an untagged manifest.
        tags: Vec<String>,
        /// Why, e.g. `all its tags were deleted by retention`, `referrer of deleted
        /// sha256:…`, `expired by ECR rule 1 (…)`.
        reason: String,
    },
}

/// One item that stays, with the reason. Serializes with `"kind": "tag"` or
/// `"kind": "manifest"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kept {
    /// A tag that stays.
    Tag {
        /// Full repository name.
        repository: String,
        /// The tag.
        tag: String,
        /// The digest it points at.
        digest: String,
        /// Why it stays, e.g. `immutable tag`, `kept by rule 1 (…)`, `no rule applies to this
        /// tag`.
        reason: String,
    },
    /// A manifest that stays.
    Manifest {
        /// Full repository name.
        repository: String,
        /// The manifest's digest.
        digest: String,
        /// Why it stays.
        reason: String,
    },
}

impl Deletion {
    /// The full repository name.
    pub fn repository(&self) -> &str {
        match self {
            Deletion::Tag { repository, .. } | Deletion::Manifest { repository, .. } => repository,
        }
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        match self {
            Deletion::Tag { reason, .. } | Deletion::Manifest { reason, .. } => reason,
        }
    }

    fn sort_key(&self) -> (&str, u8, &str) {
        match self {
            Deletion::Tag { repository, tag, .. } => (repository, 0, tag),
            Deletion::Manifest { repository, digest, .. } => (repository, 1, digest),
        }
    }
}

impl Kept {
    /// The full repository name.
    pub fn repository(&self) -> &str {
        match self {
            Kept::Tag { repository, .. } | Kept::Manifest { repository, .. } => repository,
        }
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        match self {
            Kept::Tag { reason, .. } | Kept::Manifest { reason, .. } => reason,
        }
    }

    fn sort_key(&self) -> (&str, u8, &str) {
        match self {
            Kept::Tag { repository, tag, .. } => (repository, 0, tag),
            Kept::Manifest { repository, digest, .. } => (repository, 1, digest),
        }
    }
}

/// Plans retention for one project: applies `policy` to each of `repositories` separately at
/// time `now_ms` (Unix milliseconds) and returns what to delete and what stays.
///
/// `project` is the project's name (e.g. `team`); repository globs match names relative to it
/// (see [`relative_repository_name`]). Repositories that are not the project's are ignored.
/// Pure and deterministic: the same inputs give the same plan, whatever the input order.
pub fn plan(policy: &Policy, project: &str, repositories: &[RepositoryInventory], now_ms: i64) -> Plan {
    let mut out = Plan::default();
    let mut repos: Vec<&RepositoryInventory> = repositories.iter().collect();
    repos.sort_by(|a, b| a.name.cmp(&b.name));
    for inv in repos {
        let Some(relative) = relative_repository_name(project, &inv.name) else {
            continue;
        };
        let repo = Repo::new(inv);
        match policy.rules() {
            PolicyRules::Berth(b) => plan_berth(b, relative, &repo, now_ms, &mut out),
            PolicyRules::Ecr(e) => plan_ecr(e, &repo, now_ms, &mut out),
        }
    }
    out.deletions.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    out.kept.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    out
}

/// One repository's manifests, sorted by digest, with a digest index.
struct Repo<'a> {
    name: &'a str,
    manifests: Vec<&'a ManifestFacts>,
    by_digest: HashMap<&'a str, usize>,
}

impl<'a> Repo<'a> {
    fn new(inv: &'a RepositoryInventory) -> Self {
        let mut manifests: Vec<&ManifestFacts> = inv.manifests.iter().collect();
        manifests.sort_by(|a, b| a.digest.cmp(&b.digest));
        let by_digest = manifests
            .iter()
            .enumerate()
            .map(|(i, m)| (m.digest.as_str(), i))
            .collect();
        Self {
            name: &inv.name,
            manifests,
            by_digest,
        }
    }

    /// An index listing manifest `m` that stays (is not in `deleted`); an index digest not in
    /// the inventory is assumed to stay.
    fn staying_index<'m>(&self, m: &'m ManifestFacts, deleted: &[Option<String>]) -> Option<&'m str> {
        m.listed_by
            .iter()
            .find(|d| match self.by_digest.get(d.as_str()) {
                Some(&i) => deleted[i].is_none(),
                None => true,
            })
            .map(String::as_str)
    }

    /// The subject of a referrer, if it is in this repository: (digest, index).
    fn subject_in_repo<'m>(&self, m: &'m ManifestFacts) -> Option<(&'m str, usize)> {
        let s = m.subject.as_deref()?;
        self.by_digest.get(s).map(|&i| (s, i))
    }

    fn delete_manifest(&self, mi: usize, reason: String, out: &mut Plan) {
        let m = self.manifests[mi];
        let mut tags: Vec<String> = m.tags.iter().map(|t| t.name.clone()).collect();
        tags.sort();
        out.deletions.push(Deletion::Manifest {
            repository: self.name.to_owned(),
            digest: m.digest.clone(),
            tags,
            reason,
        });
    }

    fn keep_manifest(&self, mi: usize, reason: String, out: &mut Plan) {
        out.kept.push(Kept::Manifest {
            repository: self.name.to_owned(),
            digest: self.manifests[mi].digest.clone(),
            reason,
        });
    }
}

fn immutable_tags(m: &ManifestFacts) -> String {
    let names: Vec<&str> = m.tags.iter().filter(|t| t.immutable).map(|t| t.name.as_str()).collect();
    names.join(", ")
}

/// A tag of a repository: (manifest index, tag index).
type TagRef = (usize, usize);

/// What the Berth rules say about one tag.
#[derive(Default)]
struct TagVerdict {
    retained: Vec<usize>,
    kept: Vec<usize>,
    keep_scope: Vec<usize>,
    expired: Vec<usize>,
    expire_scope: Vec<usize>,
}

fn labels(policy: &BerthPolicy, rules: &[usize]) -> String {
    let l: Vec<String> = rules
        .iter()
        .map(|&r| RuleLabel(r, &policy.rules[r]).to_string())
        .collect();
    l.join("; ")
}

/// A semantic version tag (optional leading `v`).
fn semver_of(tag: &str) -> Option<semver::Version> {
    semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

fn plan_berth(policy: &BerthPolicy, relative: &str, repo: &Repo<'_>, now: i64, out: &mut Plan) {
    let ms = &repo.manifests;
    // every tag of the repository as (manifest index, tag index)
    let tags: Vec<(usize, usize)> = ms
        .iter()
        .enumerate()
        .flat_map(|(mi, m)| (0..m.tags.len()).map(move |ti| (mi, ti)))
        .collect();
    let tag_of = |&(mi, ti): &(usize, usize)| &ms[mi].tags[ti];
    let mut verdicts: HashMap<(usize, usize), TagVerdict> = HashMap::new();
    let mut untagged_rules: Vec<(usize, u32)> = Vec::new();

    for (r, rule) in policy.rules.iter().enumerate() {
        if !rule.matches_repository(relative) {
            continue;
        }
        if let Action::DeleteUntaggedAfterDays(n) = rule.action() {
            untagged_rules.push((r, n));
            continue;
        }
        let mut scope: Vec<(usize, usize)> = tags
            .iter()
            .copied()
            .filter(|t| rule.matches_tag(&tag_of(t).name))
            .collect();
        let kept: Vec<(usize, usize)> = match rule.action() {
            Action::AlwaysRetain => {
                for t in &scope {
                    verdicts.entry(*t).or_default().retained.push(r);
                }
                continue;
            }
            Action::ExpireAfterDays(n) => {
                for t in &scope {
                    let v = verdicts.entry(*t).or_default();
                    v.expire_scope.push(r);
                    if older_than(now, tag_of(t).pushed_at_ms, n) {
                        v.expired.push(r);
                    }
                }
                continue;
            }
            Action::DeleteUntaggedAfterDays(_) => continue,
            Action::KeepMostRecent(n) => {
                scope.sort_by(|a, b| {
                    let (ta, tb) = (tag_of(a), tag_of(b));
                    (Reverse(ta.pushed_at_ms), &ta.name).cmp(&(Reverse(tb.pushed_at_ms), &tb.name))
                });
                scope.iter().copied().take(n as usize).collect()
            }
            Action::KeepPushedWithinDays(n) => scope
                .iter()
                .copied()
                .filter(|t| within(now, tag_of(t).pushed_at_ms, n))
                .collect(),
            Action::KeepPulledWithinDays(n) => scope
                .iter()
                .copied()
                .filter(|t| {
                    let pulled = tag_of(t).last_pulled_at_ms.max(ms[t.0].last_pulled_at_ms);
                    pulled.is_some_and(|p| within(now, p, n))
                })
                .collect(),
            Action::KeepNewestPerMinor(n) => {
                // tags that are not semantic versions are outside this rule's scope
                let mut groups: BTreeMap<(u64, u64), Vec<(TagRef, semver::Version)>> = BTreeMap::new();
                scope.retain(|t| match semver_of(&tag_of(t).name) {
                    Some(v) => {
                        groups.entry((v.major, v.minor)).or_default().push((*t, v));
                        true
                    }
                    None => false,
                });
                let mut kept = Vec::new();
                for group in groups.values_mut() {
                    group.sort_by(|(a, va), (b, vb)| {
                        vb.cmp_precedence(va)
                            .then(tag_of(b).pushed_at_ms.cmp(&tag_of(a).pushed_at_ms))
                            .then(tag_of(a).name.cmp(&tag_of(b).name))
                    });
                    kept.extend(group.iter().take(n as usize).map(|(t, _)| *t));
                }
                kept
            }
        };
        for t in &scope {
            verdicts.entry(*t).or_default().keep_scope.push(r);
        }
        for t in kept {
            verdicts.entry(t).or_default().kept.push(r);
        }
    }

    // tag decisions
    let mut tag_deleted: HashMap<(usize, usize), String> = HashMap::new();
    for t in &tags {
        let facts = tag_of(t);
        let age = age_days(now, facts.pushed_at_ms);
        let empty = TagVerdict::default();
        let v = verdicts.get(t).unwrap_or(&empty);
        let kept_reason = if facts.immutable {
            Some("immutable tag (protected by an immutability rule)".to_owned())
        } else if !v.retained.is_empty() {
            Some(format!("retained by {}", labels(policy, &v.retained)))
        } else if !v.kept.is_empty() {
            Some(format!("kept by {}", labels(policy, &v.kept)))
        } else if !v.keep_scope.is_empty() {
            tag_deleted.insert(*t, format!("not kept by {}", labels(policy, &v.keep_scope)));
            None
        } else if !v.expired.is_empty() {
            tag_deleted.insert(*t, format!("pushed {age} days ago: {}", labels(policy, &v.expired)));
            None
        } else if !v.expire_scope.is_empty() {
            Some(format!(
                "pushed {age} days ago, not yet expired by {}",
                labels(policy, &v.expire_scope)
            ))
        } else {
            Some("no rule applies to this tag".to_owned())
        };
        if let Some(reason) = kept_reason {
            out.kept.push(Kept::Tag {
                repository: repo.name.to_owned(),
                tag: facts.name.clone(),
                digest: ms[t.0].digest.clone(),
                reason,
            });
        }
    }
    for (t, reason) in &tag_deleted {
        out.deletions.push(Deletion::Tag {
            repository: repo.name.to_owned(),
            tag: tag_of(t).name.clone(),
            digest: ms[t.0].digest.clone(),
            reason: reason.clone(),
        });
    }
    let has_surviving_tag = |mi: usize| (0..ms[mi].tags.len()).any(|ti| !tag_deleted.contains_key(&(mi, ti)));

    // manifest decisions, to a fixed point: deleting an index unprotects its children, deleting
    // a subject deletes its referrers
    let mut deleted: Vec<Option<String>> = vec![None; ms.len()];
    loop {
        let mut changed = false;
        for mi in 0..ms.len() {
            let m = ms[mi];
            if deleted[mi].is_some() || m.has_immutable_tag() || has_surviving_tag(mi) {
                continue;
            }
            let reason = if let Some((s, _)) = repo.subject_in_repo(m).filter(|(_, si)| deleted[*si].is_some()) {
                Some(format!("referrer of deleted {s}"))
            } else if repo.staying_index(m, &deleted).is_some() {
                None
            } else if !m.tags.is_empty() {
                Some("all its tags were deleted by retention".to_owned())
            } else if repo.subject_in_repo(m).is_some() {
                None // a referrer whose subject stays
            } else {
                untagged_rules
                    .iter()
                    .find(|(_, n)| older_than(now, m.pushed_at_ms, *n))
                    .map(|(r, _)| {
                        format!(
                            "untagged, pushed {} days ago: {}",
                            age_days(now, m.pushed_at_ms),
                            labels(policy, &[*r])
                        )
                    })
            };
            if let Some(reason) = reason {
                deleted[mi] = Some(reason);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    for (mi, m) in ms.iter().enumerate() {
        if let Some(reason) = &deleted[mi] {
            repo.delete_manifest(mi, reason.clone(), out);
            continue;
        }
        let deleted_subject = repo
            .subject_in_repo(m)
            .filter(|(_, si)| deleted[*si].is_some())
            .map(|(s, _)| s);
        let reason = if m.has_immutable_tag() {
            deleted_subject.map(|s| {
                format!(
                    "referrer of deleted {s}, but it has immutable tag(s) {}",
                    immutable_tags(m)
                )
            })
        } else if has_surviving_tag(mi) {
            deleted_subject.map(|s| format!("referrer of deleted {s}, but some of its tags are kept"))
        } else if let Some(index) = repo.staying_index(m, &deleted) {
            Some(if m.tags.is_empty() {
                format!("listed by index {index}, which stays")
            } else {
                format!("all its tags were deleted, but it is listed by index {index}, which stays")
            })
        } else if let Some((s, _)) = repo.subject_in_repo(m) {
            Some(format!("referrer of {s}, which stays"))
        } else if let Some((r, n)) = untagged_rules.first() {
            Some(format!(
                "untagged, pushed {} days ago; {} deletes it after {n} days",
                age_days(now, m.pushed_at_ms),
                labels(policy, &[*r])
            ))
        } else {
            Some("untagged; no rule deletes untagged manifests in this repository".to_owned())
        };
        if let Some(reason) = reason {
            repo.keep_manifest(mi, reason, out);
        }
    }
}

fn plan_ecr(policy: &EcrPolicy, repo: &Repo<'_>, now: i64, out: &mut Plan) {
    let ms = &repo.manifests;
    // ECR images: top-level manifests (not an index's child, not a referrer)
    let is_image: Vec<bool> = ms
        .iter()
        .map(|m| m.listed_by.is_empty() && m.subject.is_none())
        .collect();
    let images: Vec<usize> = (0..ms.len()).filter(|&mi| is_image[mi]).collect();
    let tag_names = |mi: usize| -> Vec<&str> { ms[mi].tags.iter().map(|t| t.name.as_str()).collect() };

    // Every rule identifies its whole selection and marks images as if no other rule existed
    // ("all rules are evaluated at the same time"); each image is then decided by the
    // highest-priority rule that selects it.
    let mut claimant: HashMap<usize, usize> = HashMap::new();
    let mut marked: Vec<HashMap<usize, String>> = Vec::new();
    let mut unmarked: Vec<HashMap<usize, String>> = Vec::new();
    for (r, rule) in policy.rules().iter().enumerate() {
        let mut selection: Vec<usize> = images
            .iter()
            .copied()
            .filter(|&mi| rule.selects(&tag_names(mi)))
            .collect();
        for &mi in &selection {
            claimant.entry(mi).or_insert(r);
        }
        let mut mark = HashMap::new();
        let mut keep = HashMap::new();
        match rule.count {
            EcrCount::ImageCountMoreThan(n) => {
                selection.sort_by(|&a, &b| {
                    (Reverse(ms[a].pushed_at_ms), &ms[a].digest).cmp(&(Reverse(ms[b].pushed_at_ms), &ms[b].digest))
                });
                for (rank, &mi) in selection.iter().enumerate() {
                    if rank < n as usize {
                        keep.insert(mi, format!("among the newest {n} of its selection"));
                    } else {
                        mark.insert(
                            mi,
                            format!("not among the newest {n} of its selection (number {})", rank + 1),
                        );
                    }
                }
            }
            EcrCount::SinceImagePushedDays(n) => {
                for &mi in &selection {
                    let age = age_days(now, ms[mi].pushed_at_ms);
                    if older_than(now, ms[mi].pushed_at_ms, n) {
                        mark.insert(mi, format!("pushed {age} days ago"));
                    } else {
                        keep.insert(mi, format!("pushed {age} days ago, not more than {n}"));
                    }
                }
            }
        }
        marked.push(mark);
        unmarked.push(keep);
    }

    let mut deleted: Vec<Option<String>> = vec![None; ms.len()];
    let rules = policy.rules();
    for &mi in &images {
        let m = ms[mi];
        let Some(&r) = claimant.get(&mi) else {
            repo.keep_manifest(mi, "not selected by any ECR rule".to_owned(), out);
            continue;
        };
        let label = EcrRuleLabel(&rules[r]);
        if let Some(why) = marked[r].get(&mi) {
            if m.has_immutable_tag() {
                repo.keep_manifest(
                    mi,
                    format!(
                        "has immutable tag(s) {}; {label} would expire it: {why}",
                        immutable_tags(m)
                    ),
                    out,
                );
            } else {
                deleted[mi] = Some(format!("expired by {label}: {why}"));
            }
        } else {
            let why = unmarked[r].get(&mi).map(String::as_str).unwrap_or_default();
            repo.keep_manifest(mi, format!("selected by {label}, which keeps it: {why}"), out);
        }
    }

    // referrers go with their subject, recursively (never one with an immutable tag)
    loop {
        let mut changed = false;
        for mi in 0..ms.len() {
            if deleted[mi].is_some() || ms[mi].has_immutable_tag() {
                continue;
            }
            if let Some((s, _)) = repo.subject_in_repo(ms[mi]).filter(|(_, si)| deleted[*si].is_some()) {
                deleted[mi] = Some(format!("referrer of deleted {s}"));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    for (mi, m) in ms.iter().enumerate() {
        if let Some(reason) = &deleted[mi] {
            for t in &m.tags {
                out.deletions.push(Deletion::Tag {
                    repository: repo.name.to_owned(),
                    tag: t.name.clone(),
                    digest: m.digest.clone(),
                    reason: format!("its manifest is deleted: {reason}"),
                });
            }
            repo.delete_manifest(mi, reason.clone(), out);
            continue;
        }
        if is_image[mi] {
            continue; // already reported
        }
        let reason = if let Some((s, si)) = repo.subject_in_repo(m) {
            if deleted[si].is_some() {
                format!(
                    "referrer of deleted {s}, but it has immutable tag(s) {}",
                    immutable_tags(m)
                )
            } else {
                format!("referrer of {s}, which stays (not an image of its own)")
            }
        } else if let Some(s) = &m.subject {
            format!("referrer of {s}, which is not in the repository (not an image of its own)")
        } else {
            let index = m.listed_by.first().map(String::as_str).unwrap_or_default();
            format!(
                "listed by index {index} (not an image of its own; garbage collection removes it once unreferenced)"
            )
        };
        repo.keep_manifest(mi, reason, out);
    }
}
