//! Retention policies (issue 5 §4): a project's policy (Berth's own rules or an Amazon ECR
//! lifecycle policy, `berth_retention`), run on demand (`berth retention run`, dry run
//! included) and on its cron schedule. Deletions go through the registry's delete paths, so
//! immutability rules are checked again in each deletion's transaction and every tag deletion
//! is recorded in the tag's history.
//!
//! Who may do what: anyone who may see the project reads its policy; its maintainers and
//! owners set, remove and run it.

use std::collections::BTreeMap;

use berth_auth::{ImmutabilityRule, ProjectName, Role};
use berth_meta::{DeleteManifestOutcome, ProjectInventory, RetentionPolicyRecord};
use berth_retention::{Deletion, ManifestFacts, Plan, Policy, RepositoryInventory, Schedule, TagFacts};
use berth_types::{Digest, RepositoryName, Tag};

use super::{Change, Management, ManagementError, Operator};
use crate::manifests::project_immutability_rules;
use crate::now_ms;

/// Longest retention policy document, in bytes (an ECR lifecycle policy has at most 30 KiB).
const MAX_POLICY_BYTES: usize = 64 << 10;

/// A deletion of a run that did not happen, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionFailure {
    /// The planned deletion.
    pub deletion: Deletion,
    /// What the registry answered (an immutability rule added since, an index listing the
    /// manifest, a tag already gone…).
    pub error: String,
}

/// What a retention run planned and, unless a dry run, did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRun {
    /// Whether nothing was deleted.
    pub dry_run: bool,
    /// The time the policy was evaluated at (unix ms).
    pub at_ms: i64,
    /// What the policy deletes and keeps, with reasons.
    pub plan: Plan,
    /// Planned deletions that failed (none in a dry run).
    pub failures: Vec<RetentionFailure>,
}

impl Management {
    /// Sets `project`'s retention policy from `document` (Berth TOML or JSON, or an ECR
    /// lifecycle policy, recognised by shape), run on `schedule` (cron, 5 fields, UTC) or else
    /// on the document's own `schedule`, or only on demand. Maintainers and owners. Errors:
    /// `Invalid` naming what does not parse; `NotFound`; `Denied`.
    pub async fn set_retention_policy(
        &self,
        operator: &Operator,
        project: &ProjectName,
        document: &str,
        schedule: Option<&str>,
    ) -> Result<(RetentionPolicyRecord, Policy), ManagementError> {
        let result = async {
            self.require_role(operator, project, Role::Maintainer, "managing retention policies")
                .await?;
            if document.len() > MAX_POLICY_BYTES {
                return Err(ManagementError::Invalid(format!(
                    "a retention policy has at most {MAX_POLICY_BYTES} bytes"
                )));
            }
            let policy = Policy::parse(document).map_err(|error| ManagementError::Invalid(error.to_string()))?;
            let schedule = match schedule {
                Some(text) => Some(Schedule::parse(text).map_err(|error| ManagementError::Invalid(error.to_string()))?),
                None => policy.schedule().cloned(),
            };
            if let Some(schedule) = &schedule
                && schedule.next_after(now_ms()).is_none()
            {
                return Err(ManagementError::Invalid(format!(
                    "schedule {:?} never fires",
                    schedule.as_str()
                )));
            }
            let schedule = schedule.map(|schedule| schedule.as_str().to_owned());
            let record = self
                .meta
                .set_retention_policy(project, document, schedule.as_deref())
                .await?;
            Ok((record, policy))
        }
        .await;
        let change = Change::new("policy.retention.set", Some(project), String::new());
        self.audited(operator, change, result).await
    }

    /// `project`'s retention policy (anyone who may see the project). Errors: `NotFound` when
    /// the project has none.
    pub async fn retention_policy(
        &self,
        operator: &Operator,
        project: &ProjectName,
    ) -> Result<(RetentionPolicyRecord, Policy), ManagementError> {
        self.role_in(operator, project).await?;
        let record = self
            .meta
            .retention_policy(project)
            .await?
            .ok_or_else(|| ManagementError::NotFound(format!("project {project} has no retention policy")))?;
        let policy = Policy::parse(&record.document).map_err(|error| {
            ManagementError::Internal(format!("the stored retention policy does not parse: {error}"))
        })?;
        Ok((record, policy))
    }

    /// Removes `project`'s retention policy. Maintainers and owners.
    pub async fn remove_retention_policy(
        &self,
        operator: &Operator,
        project: &ProjectName,
    ) -> Result<(), ManagementError> {
        let result = async {
            self.require_role(operator, project, Role::Maintainer, "managing retention policies")
                .await?;
            if self.meta.remove_retention_policy(project).await? {
                Ok(())
            } else {
                Err(ManagementError::NotFound(format!(
                    "project {project} has no retention policy"
                )))
            }
        }
        .await;
        let change = Change::new("policy.retention.remove", Some(project), String::new());
        self.audited(operator, change, result).await
    }

    /// Runs `project`'s retention policy now: plans it against every repository of the project
    /// and, unless `dry_run`, deletes what the plan lists (tags first, then manifests; a
    /// deletion that fails is reported, the others go on). Maintainers and owners. A real run
    /// is recorded in the audit log with its counts.
    pub async fn run_retention(
        &self,
        operator: &Operator,
        project: &ProjectName,
        dry_run: bool,
    ) -> Result<RetentionRun, ManagementError> {
        let result = async {
            self.require_role(operator, project, Role::Maintainer, "running retention policies")
                .await?;
            let (_, policy) = self.retention_policy(operator, project).await?;
            self.apply_retention(operator, project, &policy, dry_run).await
        }
        .await;
        if dry_run {
            return result;
        }
        let detail = match &result {
            Ok(run) => format!(
                "{} deletions planned, {} failed",
                run.plan.deletions.len(),
                run.failures.len()
            ),
            Err(error) => error.to_string(),
        };
        let change = Change::new("retention.run", Some(project), detail);
        self.audited(operator, change, result).await
    }

    /// Runs every scheduled retention policy whose next run (after its last run, or after it
    /// was set) is due, as the scheduler. Returns the projects it ran for. A failing run is
    /// logged and the others go on.
    pub async fn run_due_retention_policies(&self) -> Result<Vec<ProjectName>, ManagementError> {
        let now = now_ms();
        let mut ran = Vec::new();
        for record in self.meta.scheduled_retention_policies().await? {
            let Some(schedule) = record.schedule.as_deref().and_then(|text| Schedule::parse(text).ok()) else {
                continue;
            };
            let since = record.last_run_at_ms.unwrap_or(record.updated_at_ms);
            if schedule.next_after(since).is_none_or(|next| next > now) {
                continue;
            }
            match self.run_retention(&Operator::scheduler(), &record.project, false).await {
                Ok(run) => tracing::info!(
                    project = %record.project,
                    deletions = run.plan.deletions.len(),
                    failures = run.failures.len(),
                    "scheduled retention run done"
                ),
                Err(error) => tracing::warn!(project = %record.project, %error, "scheduled retention run failed"),
            }
            ran.push(record.project);
        }
        Ok(ran)
    }

    /// Plans `policy` for `project` now and, unless `dry_run`, carries the plan out.
    async fn apply_retention(
        &self,
        operator: &Operator,
        project: &ProjectName,
        policy: &Policy,
        dry_run: bool,
    ) -> Result<RetentionRun, ManagementError> {
        let at_ms = now_ms();
        let inventory = self.meta.project_inventory(project).await?;
        let rules = project_immutability_rules(&self.meta, project)
            .await
            .map_err(|error| ManagementError::Internal(error.to_string()))?;
        let repositories = repository_inventories(inventory, |repository, tag| {
            rules.iter().any(|rule| rule.protects(repository, tag))
        });
        let plan = berth_retention::plan(policy, project.as_str(), &repositories, at_ms);
        let failures = if dry_run {
            Vec::new()
        } else {
            let deleted_by = format!("retention:{}", operator.actor());
            let carried_out = self.carry_out(&plan, &rules, &deleted_by).await;
            crate::metrics::record_retention_run(&plan, carried_out.as_deref().ok());
            let failures = carried_out?;
            self.meta.mark_retention_run(project, at_ms).await?;
            failures
        };
        Ok(RetentionRun {
            dry_run,
            at_ms,
            plan,
            failures,
        })
    }
}

impl Management {
    /// Carries out `plan`'s deletions: tags first, each only while it still points at the
    /// planned digest; then manifests, each only while no tag points at it (a tag pushed onto it
    /// since the plan keeps it), in passes so that an index goes before the children it lists.
    /// Immutability rules are checked again. Returns the deletions that did not happen.
    async fn carry_out(
        &self,
        plan: &Plan,
        rules: &[ImmutabilityRule],
        deleted_by: &str,
    ) -> Result<Vec<RetentionFailure>, ManagementError> {
        let mut failures = Vec::new();
        let mut manifests = Vec::new();
        for deletion in &plan.deletions {
            match deletion {
                Deletion::Tag {
                    repository,
                    tag,
                    digest,
                    ..
                } => {
                    let outcome = match (
                        RepositoryName::parse(repository),
                        Tag::parse(tag),
                        Digest::parse(digest),
                    ) {
                        (Ok(repository), Ok(tag), Ok(digest)) => {
                            self.delete_planned_tag(&repository, &tag, &digest, rules, deleted_by)
                                .await?
                        }
                        _ => Err("the name, tag or digest does not parse".to_owned()),
                    };
                    if let Err(error) = outcome {
                        failures.push(RetentionFailure {
                            deletion: deletion.clone(),
                            error,
                        });
                    }
                }
                Deletion::Manifest { repository, digest, .. } => {
                    match (RepositoryName::parse(repository), Digest::parse(digest)) {
                        (Ok(repository), Ok(digest)) => manifests.push((deletion, repository, digest)),
                        _ => failures.push(RetentionFailure {
                            deletion: deletion.clone(),
                            error: "the name or digest does not parse".to_owned(),
                        }),
                    }
                }
            }
        }
        // An index listed by another planned deletion waits for it: passes until none is left
        // or a pass deletes nothing.
        loop {
            let mut waiting = Vec::new();
            let before = manifests.len();
            for (deletion, repository, digest) in manifests {
                let outcome = self
                    .meta
                    .delete_untagged_manifest(&repository, &digest, deleted_by, rules)
                    .await?;
                let error = match outcome {
                    DeleteManifestOutcome::Deleted => continue,
                    DeleteManifestOutcome::ReferencedBy(_) => {
                        waiting.push((deletion, repository, digest));
                        continue;
                    }
                    DeleteManifestOutcome::NotFound => "already deleted".to_owned(),
                    DeleteManifestOutcome::ProtectedTag { tag, rule } => {
                        format!("tag {tag} is immutable (rule {rule})")
                    }
                    DeleteManifestOutcome::Tagged(tag) => format!("tag {tag} points at it now; kept"),
                };
                failures.push(RetentionFailure {
                    deletion: deletion.clone(),
                    error,
                });
            }
            if waiting.is_empty() || waiting.len() == before {
                failures.extend(waiting.into_iter().map(|(deletion, _, _)| RetentionFailure {
                    deletion: deletion.clone(),
                    error: "still listed by an index".to_owned(),
                }));
                return Ok(failures);
            }
            manifests = waiting;
        }
    }

    /// Deletes `tag` if it still points at `digest` and no immutability rule protects it;
    /// `Err` says why not.
    async fn delete_planned_tag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        digest: &Digest,
        rules: &[ImmutabilityRule],
        deleted_by: &str,
    ) -> Result<Result<(), String>, ManagementError> {
        if let Some(rule) = rules.iter().find(|rule| rule.protects(repository, tag)) {
            return Ok(Err(format!("tag {tag} is immutable (rule {rule})")));
        }
        Ok(if self.meta.delete_tag_at(repository, tag, digest, deleted_by).await? {
            Ok(())
        } else {
            Err(format!("tag {tag} no longer points at {digest}; kept"))
        })
    }
}

/// The inventory rows grouped per repository as the engine takes them; `immutable` says which
/// tags an immutability rule protects. Rows whose names no longer parse are skipped.
fn repository_inventories(
    inventory: ProjectInventory,
    immutable: impl Fn(&RepositoryName, &Tag) -> bool,
) -> Vec<RepositoryInventory> {
    let mut repositories: BTreeMap<String, BTreeMap<String, ManifestFacts>> = BTreeMap::new();
    for manifest in inventory.manifests {
        let is_index = berth_oci::manifest::ManifestKind::from_media_type(&manifest.media_type)
            .is_some_and(|kind| kind.is_index());
        repositories.entry(manifest.repository).or_default().insert(
            manifest.digest.clone(),
            ManifestFacts {
                digest: manifest.digest,
                pushed_at_ms: manifest.pushed_at_ms,
                last_pulled_at_ms: manifest.last_pulled_at_ms,
                tags: Vec::new(),
                listed_by: Vec::new(),
                subject: manifest.subject,
                is_index,
            },
        );
    }
    for tag in inventory.tags {
        let protected = match (RepositoryName::parse(&tag.repository), Tag::parse(&tag.tag)) {
            (Ok(repository), Ok(name)) => immutable(&repository, &name),
            _ => continue,
        };
        if let Some(manifest) = repositories
            .get_mut(&tag.repository)
            .and_then(|manifests| manifests.get_mut(&tag.digest))
        {
            manifest.tags.push(TagFacts {
                name: tag.tag,
                pushed_at_ms: tag.pushed_at_ms,
                last_pulled_at_ms: tag.last_pulled_at_ms,
                immutable: protected,
            });
        }
    }
    for reference in inventory.references {
        if let Some(child) = repositories
            .get_mut(&reference.repository)
            .and_then(|manifests| manifests.get_mut(&reference.child))
        {
            child.listed_by.push(reference.index);
        }
    }
    repositories
        .into_iter()
        .map(|(name, manifests)| RepositoryInventory {
            name,
            manifests: manifests.into_values().collect(),
        })
        .collect()
}
