//! Berth's retention-policy engine: pure functions, no I/O.
//!
//! [`Policy::parse`] reads a policy document (Berth's own format as TOML or JSON, or an
//! Amazon ECR lifecycle policy unchanged); [`plan()`] applies it to an inventory of one
//! project's repositories ([`RepositoryInventory`]) at a time `now_ms` and returns a [`Plan`]:
//! the tags and manifests to delete, each with a reason, and what stays and why.
//! [`Schedule`] computes the next scheduled run of a cron expression (UTC).
//!
//! Times are Unix milliseconds; a day is [`DAY_MS`] = 86 400 000 ms. "Pushed more than N days
//! ago" means `now_ms - pushed_at_ms > N * DAY_MS`; "in the last N days" means
//! `now_ms - t <= N * DAY_MS`. Each repository is planned on its own (counts such as "the 10
//! most recent" are per repository). Repository globs match the name relative to the project
//! ([`relative_repository_name`]); repositories outside the project are ignored.
//!
//! # Berth's format ([`BerthPolicy`], [`Rule`], [`Action`])
//!
//! ```toml
//! schedule = "0 3 * * *"      # optional cron (5 fields, UTC)
//! [[rules]]
//! repositories = "**"          # glob relative to the project, default "**"
//! tags = "main-*"              # tag glob, default "*"
//! keep_most_recent = 10        # exactly one action key
//! ```
//!
//! Semantics, per repository:
//!
//! 1. A tag that is `immutable`, or matches an `always_retain` rule, is never deleted.
//! 2. A tag kept by any `keep_*` rule is never deleted.
//! 3. A tag in the scope (repository and tag glob match) of at least one `keep_*` rule but
//!    kept by none is deleted; the reason names every such rule. (For
//!    `keep_newest_per_minor`, only tags that parse as semantic versions are in scope.)
//! 4. Otherwise, a tag matched by an `expire_after_days = N` rule and pushed (tag push time)
//!    more than N days ago is deleted.
//! 5. Tags in the scope of no rule are left alone.
//! 6. Manifests (computed to a fixed point, since deleting an index or a subject can affect
//!    others). A manifest is never deleted while it has an immutable tag or any tag that
//!    stays. Otherwise, in this order:
//!    - a referrer whose `subject` (in the same repository) is deleted is deleted too
//!      ("referrer of deleted sha256:…"), recursively;
//!    - a manifest listed by an index that stays is kept ([`ManifestFacts::listed_by`]; an
//!      index not in the inventory counts as staying);
//!    - a manifest that had tags and lost all of them is deleted ("all its tags were deleted
//!      by retention");
//!    - an untagged referrer whose subject is in the repository (and stays) is kept;
//!    - an untagged manifest pushed more than N days ago is deleted by a matching
//!      `delete_untagged_after_days = N` rule.
//!
//!    Deleting an index does not delete its children (garbage collection does that later),
//!    but they are no longer protected by it, so an untagged rule can delete them in the same
//!    plan.
//!
//! Rankings (`keep_most_recent`, `keep_newest_per_minor`) rank every tag in the rule's scope,
//! protected ones (immutable, retained) included: a protected tag can take one of the N
//! places.
//!
//! Kept items reported ([`Plan::kept`]): every tag of every planned repository, with its
//! reason, and every manifest that stays without a tag that stays (untagged, index children,
//! referrers, manifests whose tags were all deleted but are listed by an index) or that stays
//! although its subject is deleted.
//!
//! # Amazon ECR lifecycle policies ([`EcrPolicy`])
//!
//! Evaluated as the ECR User Guide documents ("Lifecycle policy evaluation rules",
//! <https://docs.aws.amazon.com/AmazonECR/latest/userguide/LifecyclePolicies.html>, and the
//! worked examples in "Examples of lifecycle policies",
//! <https://docs.aws.amazon.com/AmazonECR/latest/userguide/lifecycle_policy_examples.html>),
//! applied to each repository of the project separately:
//!
//! - An ECR *image* is a manifest of the repository with all its tags; expiring it deletes the
//!   manifest and its tags. Manifests listed by an index of the repository, and referrers
//!   (`subject` set), are not images of their own: they are never selected; referrers are
//!   deleted with their subject.
//! - A rule *selects* an image by `tagStatus`: `untagged` = no tags, `any` = every image,
//!   `tagged` = at least one tag and, for **every** entry of `tagPrefixList` /
//!   `tagPatternList`, **some** tag of the image matching it (ALL entries must match, not
//!   necessarily the same tag: "an image is successfully matched if all of the tags in the
//!   tagPrefixList value are matched against any of the image's tags"; "if you specify
//!   multiple tags, only the images with all specified tags are selected").
//! - Every rule is evaluated over its whole selection ("all rules are evaluated at the same
//!   time"): `imageCountMoreThan N` sorts it newest first by push time (`pushed_at_ms`,
//!   ECR's `pushed_at_time`; ties by digest) and marks all after the first N;
//!   `sinceImagePushed N days` marks those pushed more than N days ago.
//! - An image is then decided by the rule with the lowest `rulePriority` that selects it (it
//!   *claims* the image): the image is expired if and only if that rule marked it. A
//!   lower-priority rule never expires it, even when the claiming rule keeps it ("an image
//!   that matches the tagging requirements of a rule cannot be expired by a rule with a lower
//!   priority"). Images claimed by a higher-priority rule still count in a lower-priority
//!   rule's `imageCountMoreThan` ranking ("rules … can still identify them as if they haven't
//!   been expired"); this is what the documented example "Filtering on all images, Example B"
//!   requires (image D expired by the `any` rule).
//! - Berth never expires an image that has an immutable tag (kept, with a reason); such an
//!   image still counts in `imageCountMoreThan` rankings.
//!
//! Kept items reported ([`Plan::kept`]) for an ECR policy are manifests only: every image,
//! with the rule that claimed it (or "not selected by any ECR rule"), and every index child
//! and referrer that stays. The tags of an expired image are listed as [`Deletion::Tag`]s.
//!
//! Validation follows "Lifecycle policy properties"
//! (<https://docs.aws.amazon.com/AmazonECR/latest/userguide/lifecycle_policy_parameters.html>):
//! unique positive `rulePriority`; `tagStatus` `tagged` needs exactly one non-empty
//! `tagPrefixList` or `tagPatternList` (not both, as the AWS CDK's `LifecycleRule` documents),
//! `untagged`/`any` take neither; at most four `*` per pattern; the `any` rule has the highest
//! `rulePriority`; only one `untagged` rule; no two rules with the same set of prefixes
//! (patterns); `countType` `imageCountMoreThan` (no `countUnit`) or `sinceImagePushed` (with
//! `countUnit` `days`); `countNumber` a positive integer; `action.type` `expire`. Archive
//! storage (`sinceImagePulled`, `sinceImageTransitioned`, `transition`, `storageClass`
//! other than `standard`) is refused as unsupported. Unknown keys are errors.

mod ecr;
mod error;
mod inventory;
mod plan;
mod policy;
mod schedule;

#[cfg(test)]
mod tests;

pub use ecr::{EcrCount, EcrPolicy, EcrRule, TagStatus, wildcard_match};
pub use error::{PolicyError, ScheduleError};
pub use inventory::{DAY_MS, ManifestFacts, RepositoryInventory, TagFacts, relative_repository_name};
pub use plan::{Deletion, Kept, Plan, plan};
pub use policy::{Action, BerthPolicy, Policy, PolicyRules, Rule, SourceFormat};
pub use schedule::Schedule;
