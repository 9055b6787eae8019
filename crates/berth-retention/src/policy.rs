//! Policy documents: [`Policy`] (either format), and Berth's own format ([`BerthPolicy`]).

use std::fmt;

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::ecr::EcrPolicy;
use crate::error::PolicyError;
use crate::schedule::Schedule;

/// A parsed, validated retention policy: Berth's own format or an Amazon ECR lifecycle
/// policy, with the original text kept for showing back.
///
/// Serializes (and [`Policy::to_json`] renders) to a canonical JSON document of the same
/// format, which [`Policy::parse`] accepts again.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    source_format: SourceFormat,
    source: String,
    rules: PolicyRules,
}

/// Which format a policy was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// Berth's own format, written as TOML.
    BerthToml,
    /// Berth's own format, written as JSON.
    BerthJson,
    /// An Amazon ECR lifecycle policy JSON document.
    EcrJson,
}

/// The rules of a policy, by format.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyRules {
    /// Berth's own rules.
    Berth(BerthPolicy),
    /// An Amazon ECR lifecycle policy.
    Ecr(EcrPolicy),
}

impl Policy {
    /// Parses a policy document, recognising its format by shape:
    ///
    /// - text whose first non-blank character is `{` is JSON; otherwise it is TOML (only
    ///   Berth's format is accepted as TOML);
    /// - a JSON document is an **ECR lifecycle policy** when it is an object with a `rules`
    ///   array one of whose entries has a `rulePriority`, `selection` or `action` key (ECR's
    ///   rule keys); otherwise it is **Berth's format**.
    ///
    /// # Errors
    /// [`PolicyError::Syntax`] for text that is not JSON/TOML; [`PolicyError::Document`] or
    /// [`PolicyError::Rule`] for a document that breaks the format's rules (unknown keys,
    /// missing or conflicting actions, non-positive counts, bad globs or cron, ECR validation
    /// errors); the message names the rule and field.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let (value, json) = if text.trim_start().starts_with('{') {
            let v: Value = serde_json::from_str(text).map_err(|e| PolicyError::Syntax {
                format: "JSON",
                message: e.to_string(),
            })?;
            (v, true)
        } else {
            let t: toml::Table = toml::from_str(text).map_err(|e| PolicyError::Syntax {
                format: "TOML",
                message: e.to_string().trim_end().to_owned(),
            })?;
            let v = serde_json::to_value(t).map_err(|e| PolicyError::Syntax {
                format: "TOML",
                message: e.to_string(),
            })?;
            (v, false)
        };
        let (source_format, rules) = if json && looks_like_ecr(&value) {
            (SourceFormat::EcrJson, PolicyRules::Ecr(EcrPolicy::from_value(&value)?))
        } else {
            let format = if json {
                SourceFormat::BerthJson
            } else {
                SourceFormat::BerthToml
            };
            (format, PolicyRules::Berth(BerthPolicy::from_value(&value)?))
        };
        Ok(Self {
            source_format,
            source: text.to_owned(),
            rules,
        })
    }

    /// The format the policy was written in.
    pub fn source_format(&self) -> SourceFormat {
        self.source_format
    }

    /// The original text given to [`Policy::parse`].
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parsed rules.
    pub fn rules(&self) -> &PolicyRules {
        &self.rules
    }

    /// The policy's own cron schedule: Berth's optional `schedule` key; always `None` for an
    /// ECR document, which has none (Berth stores a [`Schedule`] beside it).
    pub fn schedule(&self) -> Option<&Schedule> {
        match &self.rules {
            PolicyRules::Berth(b) => b.schedule.as_ref(),
            PolicyRules::Ecr(_) => None,
        }
    }

    /// The next scheduled run strictly after `after_ms` (Unix ms, UTC), from
    /// [`Policy::schedule`]; `None` when the policy has no schedule.
    pub fn next_run_after(&self, after_ms: i64) -> Option<i64> {
        self.schedule()?.next_after(after_ms)
    }

    /// The canonical JSON form of the policy (Berth's format or an ECR document, as written),
    /// e.g. for storing or showing; [`Policy::parse`] accepts it again.
    pub fn to_json(&self) -> String {
        self.to_json_value().to_string()
    }

    /// [`Policy::to_json`] as a JSON value.
    pub fn to_json_value(&self) -> Value {
        match &self.rules {
            PolicyRules::Berth(b) => b.to_json_value(),
            PolicyRules::Ecr(e) => e.to_json_value(),
        }
    }
}

impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json_value().serialize(s)
    }
}

fn looks_like_ecr(v: &Value) -> bool {
    v.get("rules").and_then(Value::as_array).is_some_and(|rules| {
        rules.iter().any(|r| {
            r.as_object().is_some_and(|o| {
                o.contains_key("rulePriority") || o.contains_key("selection") || o.contains_key("action")
            })
        })
    })
}

/// A policy in Berth's own format.
///
/// ```toml
/// schedule = "0 3 * * *"        # optional: 5-field cron, UTC
///
/// [[rules]]
/// description = "main builds"  # optional, shown in reasons
/// repositories = "**"           # optional glob relative to the project, default "**"
/// tags = "main-*"               # optional tag glob, default "*"
/// keep_most_recent = 10         # exactly one action key, see [`Action`]
/// ```
///
/// The same document as JSON: `{"schedule": "0 3 * * *", "rules": [{"tags": "main-*",
/// "keep_most_recent": 10}]}`. Unknown keys are errors. `rules` must hold at least one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct BerthPolicy {
    /// The optional `schedule` key.
    pub schedule: Option<Schedule>,
    /// The rules, in document order (their numbering in reasons is 1-based).
    pub rules: Vec<Rule>,
}

/// One rule of a [`BerthPolicy`].
#[derive(Debug, Clone)]
pub struct Rule {
    description: Option<String>,
    repositories: String,
    tags: String,
    action: Action,
    repo_matcher: GlobMatcher,
    tag_matcher: GlobMatcher,
}

impl PartialEq for Rule {
    fn eq(&self, o: &Self) -> bool {
        self.description == o.description
            && self.repositories == o.repositories
            && self.tags == o.tags
            && self.action == o.action
    }
}

/// The one action of a Berth rule: its key in the document and what it does.
///
/// All counts are positive integers (at most 2³²−1); "N days" is `N * 86_400_000` ms. Counting
/// actions count per repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `keep_most_recent = N`: keep the N matching tags with the latest tag push time
    /// (ties: tag name ascending).
    KeepMostRecent(u32),
    /// `keep_pulled_within_days = N`: keep matching tags pulled in the last N days (the tag's
    /// or its manifest's last pull, whichever is later: a pull by digest counts too).
    KeepPulledWithinDays(u32),
    /// `keep_pushed_within_days = N`: keep matching tags whose tag push time is in the last
    /// N days.
    KeepPushedWithinDays(u32),
    /// `keep_newest_per_minor = N`: among matching tags that parse as semantic versions (an
    /// optional leading `v`), keep the N newest of each `major.minor` by semver precedence
    /// (ties: later tag push time, then name). Tags that are not semantic versions are outside
    /// this rule's scope.
    KeepNewestPerMinor(u32),
    /// `expire_after_days = N`: matching tags pushed more than N days ago are deleted, unless
    /// kept or retained.
    ExpireAfterDays(u32),
    /// `always_retain = true`: matching tags are never deleted by this policy.
    AlwaysRetain,
    /// `delete_untagged_after_days = N`: untagged manifests of matching repositories pushed
    /// more than N days ago are deleted (the rule's `tags` is ignored).
    DeleteUntaggedAfterDays(u32),
}

impl Action {
    /// The document key of this action, e.g. `keep_most_recent`.
    pub fn key(&self) -> &'static str {
        match self {
            Action::KeepMostRecent(_) => "keep_most_recent",
            Action::KeepPulledWithinDays(_) => "keep_pulled_within_days",
            Action::KeepPushedWithinDays(_) => "keep_pushed_within_days",
            Action::KeepNewestPerMinor(_) => "keep_newest_per_minor",
            Action::ExpireAfterDays(_) => "expire_after_days",
            Action::AlwaysRetain => "always_retain",
            Action::DeleteUntaggedAfterDays(_) => "delete_untagged_after_days",
        }
    }

    /// Whether this is one of the `keep_*` actions.
    pub fn is_keep(&self) -> bool {
        matches!(
            self,
            Action::KeepMostRecent(_)
                | Action::KeepPulledWithinDays(_)
                | Action::KeepPushedWithinDays(_)
                | Action::KeepNewestPerMinor(_)
        )
    }
}

const ACTION_KEYS: &str = "keep_most_recent, keep_pulled_within_days, keep_pushed_within_days, keep_newest_per_minor, expire_after_days, always_retain, delete_untagged_after_days";

impl Rule {
    /// The optional `description`.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The repository glob (relative to the project; `*` stays within one path segment, `**`
    /// crosses segments). Default `**`.
    pub fn repositories(&self) -> &str {
        &self.repositories
    }

    /// The tag glob (`*`, `?`, `[...]`, `{a,b}`). Default `*`.
    pub fn tags(&self) -> &str {
        &self.tags
    }

    /// The rule's action.
    pub fn action(&self) -> Action {
        self.action
    }

    /// Whether the repository name relative to the project matches [`Rule::repositories`].
    pub fn matches_repository(&self, relative_name: &str) -> bool {
        self.repo_matcher.is_match(relative_name)
    }

    /// Whether a tag matches [`Rule::tags`].
    pub fn matches_tag(&self, tag: &str) -> bool {
        self.tag_matcher.is_match(tag)
    }

    /// A one-line English summary used in reasons, e.g. `keep the 10 most recently pushed
    /// tags matching "main-*"`.
    pub fn summary(&self) -> String {
        let t = &self.tags;
        let mut s = match self.action {
            Action::KeepMostRecent(n) => {
                format!("keep the {n} most recently pushed tags matching \"{t}\"")
            }
            Action::KeepPulledWithinDays(n) => {
                format!("keep tags matching \"{t}\" pulled in the last {n} days")
            }
            Action::KeepPushedWithinDays(n) => {
                format!("keep tags matching \"{t}\" pushed in the last {n} days")
            }
            Action::KeepNewestPerMinor(n) => {
                format!("keep the newest {n} versions per minor among tags matching \"{t}\"")
            }
            Action::ExpireAfterDays(n) => {
                format!("delete tags matching \"{t}\" pushed more than {n} days ago")
            }
            Action::AlwaysRetain => format!("always retain tags matching \"{t}\""),
            Action::DeleteUntaggedAfterDays(n) => {
                format!("delete untagged manifests pushed more than {n} days ago")
            }
        };
        if self.repositories != "**" {
            s.push_str(&format!(" in repositories matching \"{}\"", self.repositories));
        }
        s
    }

    fn to_raw(&self) -> RawRule {
        let mut raw = RawRule {
            description: self.description.clone(),
            repositories: Some(self.repositories.clone()),
            tags: Some(self.tags.clone()),
            ..RawRule::default()
        };
        let n = |n: u32| Some(Value::from(n));
        match self.action {
            Action::KeepMostRecent(v) => raw.keep_most_recent = n(v),
            Action::KeepPulledWithinDays(v) => raw.keep_pulled_within_days = n(v),
            Action::KeepPushedWithinDays(v) => raw.keep_pushed_within_days = n(v),
            Action::KeepNewestPerMinor(v) => raw.keep_newest_per_minor = n(v),
            Action::ExpireAfterDays(v) => raw.expire_after_days = n(v),
            Action::AlwaysRetain => raw.always_retain = Some(Value::Bool(true)),
            Action::DeleteUntaggedAfterDays(v) => raw.delete_untagged_after_days = n(v),
        }
        raw
    }
}

/// `rule 3 "description"` (the label used in reasons).
pub(crate) struct RuleLabel<'a>(pub usize, pub &'a Rule);

impl fmt::Display for RuleLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {}", self.0 + 1)?;
        if let Some(d) = &self.1.description {
            write!(f, " \"{d}\"")?;
        }
        write!(f, " ({})", self.1.summary())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    schedule: Option<String>,
    rules: Option<Vec<Value>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repositories: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_most_recent: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_pulled_within_days: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_pushed_within_days: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_newest_per_minor: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expire_after_days: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    always_retain: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delete_untagged_after_days: Option<Value>,
}

/// A positive integer that fits in u32, or a message naming `field`.
pub(crate) fn positive_count(field: &str, v: &Value) -> Result<u32, String> {
    match v.as_i64() {
        Some(n) if n > 0 => u32::try_from(n).map_err(|_| format!("{field} must be at most {} (got {n})", u32::MAX)),
        Some(n) => Err(format!("{field} must be a positive integer (got {n})")),
        None => match v.as_u64() {
            Some(n) => Err(format!("{field} must be at most {} (got {n})", u32::MAX)),
            None => Err(format!("{field} must be a positive integer (got {v})")),
        },
    }
}

fn compile_glob(field: &str, pattern: &str) -> Result<GlobMatcher, String> {
    if pattern.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("{field}: invalid glob \"{pattern}\": {}", e.kind()))
}

impl BerthPolicy {
    fn from_value(value: &Value) -> Result<Self, PolicyError> {
        let doc_err = |field: &str, message: String| PolicyError::Document {
            field: field.to_owned(),
            message,
        };
        if !value.is_object() {
            return Err(doc_err(
                "policy",
                "the document must be a table/object with a `rules` list".to_owned(),
            ));
        }
        let raw: RawDocument = serde_json::from_value(value.clone())
            .map_err(|e| doc_err("policy", format!("{e} (a Berth policy has `schedule` and `rules`)")))?;
        let schedule = raw
            .schedule
            .as_deref()
            .map(Schedule::parse)
            .transpose()
            .map_err(|e| doc_err("schedule", e.to_string()))?;
        let raw_rules = raw.rules.unwrap_or_default();
        if raw_rules.is_empty() {
            return Err(doc_err(
                "rules",
                "a policy needs at least one rule ([[rules]] in TOML)".to_owned(),
            ));
        }
        let rules = raw_rules
            .iter()
            .enumerate()
            .map(|(i, v)| {
                Rule::from_value(v).map_err(|message| PolicyError::Rule {
                    rule: i + 1,
                    priority: None,
                    message,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { schedule, rules })
    }

    fn to_json_value(&self) -> Value {
        let mut doc = serde_json::Map::new();
        if let Some(s) = &self.schedule {
            doc.insert("schedule".to_owned(), Value::from(s.as_str()));
        }
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|r| serde_json::to_value(r.to_raw()).unwrap_or(Value::Null))
            .collect();
        doc.insert("rules".to_owned(), Value::Array(rules));
        Value::Object(doc)
    }
}

impl Rule {
    fn from_value(v: &Value) -> Result<Self, String> {
        if !v.is_object() {
            return Err(format!("a rule must be a table/object, got {v}"));
        }
        let raw: RawRule = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        let mut actions: Vec<Action> = Vec::new();
        let mut keys: Vec<&str> = Vec::new();
        let counted = [
            (
                &raw.keep_most_recent,
                "keep_most_recent",
                Action::KeepMostRecent as fn(u32) -> Action,
            ),
            (
                &raw.keep_pulled_within_days,
                "keep_pulled_within_days",
                Action::KeepPulledWithinDays,
            ),
            (
                &raw.keep_pushed_within_days,
                "keep_pushed_within_days",
                Action::KeepPushedWithinDays,
            ),
            (
                &raw.keep_newest_per_minor,
                "keep_newest_per_minor",
                Action::KeepNewestPerMinor,
            ),
            (&raw.expire_after_days, "expire_after_days", Action::ExpireAfterDays),
            (
                &raw.delete_untagged_after_days,
                "delete_untagged_after_days",
                Action::DeleteUntaggedAfterDays,
            ),
        ];
        for (value, key, make) in counted {
            if let Some(value) = value {
                keys.push(key);
                actions.push(make(positive_count(key, value)?));
            }
        }
        if let Some(v) = &raw.always_retain {
            keys.push("always_retain");
            match v {
                Value::Bool(true) => actions.push(Action::AlwaysRetain),
                other => {
                    return Err(format!(
                        "always_retain must be true (got {other}); remove the rule instead"
                    ));
                }
            }
        }
        let action = match actions.as_slice() {
            [a] => *a,
            [] => return Err(format!("no action: set exactly one of {ACTION_KEYS}")),
            _ => {
                let set = match keys.as_slice() {
                    [a, b] => format!("{a} and {b} are both set"),
                    _ => format!("{} are all set", keys.join(", ")),
                };
                return Err(format!("{set}; a rule takes exactly one action key"));
            }
        };
        let repositories = raw.repositories.unwrap_or_else(|| "**".to_owned());
        let tags = raw.tags.unwrap_or_else(|| "*".to_owned());
        let repo_matcher = compile_glob("repositories", &repositories)?;
        let tag_matcher = compile_glob("tags", &tags)?;
        Ok(Self {
            description: raw.description,
            repositories,
            tags,
            action,
            repo_matcher,
            tag_matcher,
        })
    }
}
