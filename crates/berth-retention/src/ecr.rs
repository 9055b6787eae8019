//! Amazon ECR lifecycle policies, accepted unchanged.
//!
//! Sources (Amazon ECR User Guide):
//! - "Lifecycle policy evaluation rules", <https://docs.aws.amazon.com/AmazonECR/latest/userguide/LifecyclePolicies.html>
//! - "Lifecycle policy properties", <https://docs.aws.amazon.com/AmazonECR/latest/userguide/lifecycle_policy_parameters.html>
//! - "Examples of lifecycle policies", <https://docs.aws.amazon.com/AmazonECR/latest/userguide/lifecycle_policy_examples.html>
//! - AWS CDK `aws_ecr.LifecycleRule` ("Both tagPrefixList and tagPatternList cannot be
//!   specified together in a rule"), <https://docs.aws.amazon.com/cdk/api/v2/docs/aws-cdk-lib.aws_ecr.LifecycleRule.html>
//!
//! See the crate documentation for how a document is evaluated.

use std::collections::BTreeSet;
use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::PolicyError;
use crate::policy::positive_count;

/// An Amazon ECR lifecycle policy: `{"rules": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrPolicy {
    rules: Vec<EcrRule>,
}

impl EcrPolicy {
    /// The rules, sorted by ascending `rulePriority` (the order in which ECR applies them).
    pub fn rules(&self) -> &[EcrRule] {
        &self.rules
    }
}

/// One rule of an ECR lifecycle policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrRule {
    /// `rulePriority`: a unique positive integer; lower is applied first.
    pub rule_priority: u32,
    /// `description`, optional.
    pub description: Option<String>,
    /// `selection.tagStatus`.
    pub tag_status: TagStatus,
    /// `selection.tagPrefixList` (empty when absent): an image is selected only if *every*
    /// prefix is the beginning of at least one of its tags.
    pub tag_prefix_list: Vec<String>,
    /// `selection.tagPatternList` (empty when absent): an image is selected only if *every*
    /// pattern matches at least one of its tags; `*` matches any run of characters (at most
    /// four per pattern), everything else is literal and the whole tag must match.
    pub tag_pattern_list: Vec<String>,
    /// `selection.countType` with its `countNumber` (and `countUnit` `days`).
    pub count: EcrCount,
}

/// `selection.tagStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagStatus {
    /// `tagged`: images with at least one tag, filtered by the prefix or pattern list.
    Tagged,
    /// `untagged`: images without tags.
    Untagged,
    /// `any`: every image.
    Any,
}

impl TagStatus {
    fn as_str(self) -> &'static str {
        match self {
            TagStatus::Tagged => "tagged",
            TagStatus::Untagged => "untagged",
            TagStatus::Any => "any",
        }
    }
}

/// `selection.countType` and `countNumber`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcrCount {
    /// `imageCountMoreThan`: of the rule's selection, sorted newest first by push time, every
    /// image after the first N is expired.
    ImageCountMoreThan(u32),
    /// `sinceImagePushed` with `countUnit` `days`: selected images pushed more than N days ago
    /// are expired.
    SinceImagePushedDays(u32),
}

impl EcrRule {
    /// Whether an image with these tags is in this rule's selection (its "tagging
    /// requirements").
    pub fn selects(&self, tags: &[&str]) -> bool {
        match self.tag_status {
            TagStatus::Any => true,
            TagStatus::Untagged => tags.is_empty(),
            TagStatus::Tagged => {
                !tags.is_empty()
                    && self
                        .tag_prefix_list
                        .iter()
                        .all(|p| tags.iter().any(|t| t.starts_with(p.as_str())))
                    && self
                        .tag_pattern_list
                        .iter()
                        .all(|p| tags.iter().any(|t| wildcard_match(p, t)))
            }
        }
    }

    /// A one-line English summary used in reasons.
    pub fn summary(&self) -> String {
        let what = match self.tag_status {
            TagStatus::Any => "all images".to_owned(),
            TagStatus::Untagged => "untagged images".to_owned(),
            TagStatus::Tagged if !self.tag_prefix_list.is_empty() => {
                format!("images with tags starting with {}", quoted_list(&self.tag_prefix_list))
            }
            TagStatus::Tagged => format!("images with tags matching {}", quoted_list(&self.tag_pattern_list)),
        };
        match self.count {
            EcrCount::ImageCountMoreThan(n) => format!("keep the newest {n} of {what}"),
            EcrCount::SinceImagePushedDays(n) => {
                format!("expire {what} pushed more than {n} days ago")
            }
        }
    }

    fn to_json_value(&self) -> Value {
        let mut sel = Map::new();
        sel.insert("tagStatus".into(), Value::from(self.tag_status.as_str()));
        if !self.tag_prefix_list.is_empty() {
            sel.insert("tagPrefixList".into(), json!(self.tag_prefix_list));
        }
        if !self.tag_pattern_list.is_empty() {
            sel.insert("tagPatternList".into(), json!(self.tag_pattern_list));
        }
        match self.count {
            EcrCount::ImageCountMoreThan(n) => {
                sel.insert("countType".into(), Value::from("imageCountMoreThan"));
                sel.insert("countNumber".into(), Value::from(n));
            }
            EcrCount::SinceImagePushedDays(n) => {
                sel.insert("countType".into(), Value::from("sinceImagePushed"));
                sel.insert("countUnit".into(), Value::from("days"));
                sel.insert("countNumber".into(), Value::from(n));
            }
        }
        let mut rule = Map::new();
        rule.insert("rulePriority".into(), Value::from(self.rule_priority));
        if let Some(d) = &self.description {
            rule.insert("description".into(), Value::from(d.as_str()));
        }
        rule.insert("selection".into(), Value::Object(sel));
        rule.insert("action".into(), json!({"type": "expire"}));
        Value::Object(rule)
    }
}

fn quoted_list(items: &[String]) -> String {
    let q: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    if q.len() == 1 {
        q.join("")
    } else {
        format!("all of {}", q.join(", "))
    }
}

/// `rule with rulePriority 3 "description" (summary)`: the label used in reasons.
pub(crate) struct EcrRuleLabel<'a>(pub &'a EcrRule);

impl fmt::Display for EcrRuleLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ECR rule {}", self.0.rule_priority)?;
        if let Some(d) = &self.0.description {
            write!(f, " \"{d}\"")?;
        }
        write!(f, " ({})", self.0.summary())
    }
}

/// ECR's tag pattern match: `*` matches any (possibly empty) run of characters, every other
/// character matches itself, and the pattern must cover the whole tag.
pub fn wildcard_match(pattern: &str, tag: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == tag;
    };
    if parts.len() == 1 {
        return pattern == tag;
    }
    let Some(mut rest) = tag.strip_prefix(first) else {
        return false;
    };
    for m in middle {
        match rest.find(m) {
            Some(i) => rest = &rest[i + m.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

const MAX_WILDCARDS: usize = 4;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    rule_priority: Option<Value>,
    description: Option<String>,
    selection: Option<RawSelection>,
    action: Option<RawAction>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSelection {
    tag_status: Option<String>,
    tag_prefix_list: Option<Vec<String>>,
    tag_pattern_list: Option<Vec<String>>,
    count_type: Option<String>,
    count_unit: Option<String>,
    count_number: Option<Value>,
    storage_class: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAction {
    #[serde(rename = "type")]
    kind: Option<String>,
    target_storage_class: Option<String>,
}

impl EcrPolicy {
    pub(crate) fn from_value(value: &Value) -> Result<Self, PolicyError> {
        let doc_err = |field: &str, message: &str| PolicyError::Document {
            field: field.to_owned(),
            message: message.to_owned(),
        };
        let obj = value
            .as_object()
            .ok_or_else(|| doc_err("policy", "an ECR lifecycle policy is a JSON object"))?;
        if let Some(k) = obj.keys().find(|k| *k != "rules") {
            return Err(doc_err(
                k,
                "unknown top-level field (an ECR lifecycle policy has only `rules`)",
            ));
        }
        let raw_rules = obj
            .get("rules")
            .and_then(Value::as_array)
            .ok_or_else(|| doc_err("rules", "must be a list of rules"))?;
        if raw_rules.is_empty() {
            return Err(doc_err("rules", "a lifecycle policy needs at least one rule"));
        }
        let mut rules = Vec::with_capacity(raw_rules.len());
        for (i, v) in raw_rules.iter().enumerate() {
            let priority = v.get("rulePriority").and_then(Value::as_i64);
            let rule = parse_rule(v).map_err(|message| PolicyError::Rule {
                rule: i + 1,
                priority,
                message,
            })?;
            rules.push((i, rule));
        }
        validate_rule_set(&rules)?;
        let mut rules: Vec<EcrRule> = rules.into_iter().map(|(_, r)| r).collect();
        rules.sort_by_key(|r| r.rule_priority);
        Ok(Self { rules })
    }

    pub(crate) fn to_json_value(&self) -> Value {
        let rules: Vec<Value> = self.rules.iter().map(EcrRule::to_json_value).collect();
        json!({ "rules": rules })
    }
}

fn parse_rule(v: &Value) -> Result<EcrRule, String> {
    if !v.is_object() {
        return Err(format!("a rule must be an object, got {v}"));
    }
    let raw: RawRule = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    let rule_priority = match &raw.rule_priority {
        None => return Err("rulePriority is required".to_owned()),
        Some(p) => positive_count("rulePriority", p)?,
    };
    let sel = raw.selection.ok_or_else(|| "selection is required".to_owned())?;
    let action = raw.action.ok_or_else(|| "action is required".to_owned())?;
    match action.kind.as_deref() {
        Some("expire") => {}
        Some("transition") => {
            return Err(
                "action.type \"transition\" (archive storage) is not supported by Berth; use \"expire\"".to_owned(),
            );
        }
        Some(other) => {
            return Err(format!("action.type must be \"expire\" (got \"{other}\")"));
        }
        None => return Err("action.type is required (\"expire\")".to_owned()),
    }
    if action.target_storage_class.is_some() {
        return Err("action.targetStorageClass is not supported by Berth".to_owned());
    }
    if let Some(sc) = &sel.storage_class
        && sc != "standard"
    {
        return Err(format!(
            "selection.storageClass \"{sc}\" is not supported by Berth (only \"standard\")"
        ));
    }
    let tag_status = match sel.tag_status.as_deref() {
        Some("tagged") => TagStatus::Tagged,
        Some("untagged") => TagStatus::Untagged,
        Some("any") => TagStatus::Any,
        Some(other) => {
            return Err(format!(
                "tagStatus must be \"tagged\", \"untagged\" or \"any\" (got \"{other}\")"
            ));
        }
        None => return Err("tagStatus is required".to_owned()),
    };
    let prefixes = sel.tag_prefix_list;
    let patterns = sel.tag_pattern_list;
    match tag_status {
        TagStatus::Tagged => match (&prefixes, &patterns) {
            (Some(_), Some(_)) => {
                return Err("tagPrefixList and tagPatternList cannot both be specified in a rule".to_owned());
            }
            (None, None) => {
                return Err("tagStatus \"tagged\" requires a tagPrefixList or a tagPatternList".to_owned());
            }
            (Some(l), None) | (None, Some(l)) if l.is_empty() => {
                return Err(format!(
                    "{} must not be empty",
                    if prefixes.is_some() {
                        "tagPrefixList"
                    } else {
                        "tagPatternList"
                    }
                ));
            }
            _ => {}
        },
        TagStatus::Untagged | TagStatus::Any => {
            if prefixes.is_some() || patterns.is_some() {
                return Err(format!(
                    "tagPrefixList and tagPatternList are only allowed with tagStatus \"tagged\" (tagStatus is \"{}\")",
                    tag_status.as_str()
                ));
            }
        }
    }
    let prefixes = prefixes.unwrap_or_default();
    let patterns = patterns.unwrap_or_default();
    if prefixes.iter().any(String::is_empty) {
        return Err("tagPrefixList entries must not be empty".to_owned());
    }
    for p in &patterns {
        if p.is_empty() {
            return Err("tagPatternList entries must not be empty".to_owned());
        }
        let n = p.matches('*').count();
        if n > MAX_WILDCARDS {
            return Err(format!(
                "tagPatternList entry \"{p}\" has {n} wildcards; at most {MAX_WILDCARDS} are allowed"
            ));
        }
    }
    let number = match &sel.count_number {
        None => return Err("countNumber is required".to_owned()),
        Some(n) => positive_count("countNumber", n)?,
    };
    let count = match sel.count_type.as_deref() {
        Some("imageCountMoreThan") => {
            if let Some(u) = &sel.count_unit {
                return Err(format!(
                    "countUnit (\"{u}\") must not be specified when countType is imageCountMoreThan"
                ));
            }
            EcrCount::ImageCountMoreThan(number)
        }
        Some("sinceImagePushed") => match sel.count_unit.as_deref() {
            Some("days") => EcrCount::SinceImagePushedDays(number),
            Some(u) => {
                return Err(format!("countUnit must be \"days\" (got \"{u}\")"));
            }
            None => {
                return Err("countUnit (\"days\") is required when countType is sinceImagePushed".to_owned());
            }
        },
        Some(t @ ("sinceImagePulled" | "sinceImageTransitioned")) => {
            return Err(format!("countType \"{t}\" is not supported by Berth"));
        }
        Some(other) => {
            return Err(format!(
                "countType must be \"imageCountMoreThan\" or \"sinceImagePushed\" (got \"{other}\")"
            ));
        }
        None => return Err("countType is required".to_owned()),
    };
    Ok(EcrRule {
        rule_priority,
        description: raw.description,
        tag_status,
        tag_prefix_list: prefixes,
        tag_pattern_list: patterns,
        count,
    })
}

/// Checks across rules: unique `rulePriority`, the `any` rule last, one `untagged` rule, a
/// unique set of tag prefixes (patterns) per rule.
fn validate_rule_set(rules: &[(usize, EcrRule)]) -> Result<(), PolicyError> {
    let err = |i: usize, r: &EcrRule, message: String| PolicyError::Rule {
        rule: i + 1,
        priority: Some(i64::from(r.rule_priority)),
        message,
    };
    for (n, (i, r)) in rules.iter().enumerate() {
        for (j, other) in &rules[..n] {
            if other.rule_priority == r.rule_priority {
                return Err(err(
                    *i,
                    r,
                    format!(
                        "rulePriority {} is also used by rule {}; priorities must be unique",
                        r.rule_priority,
                        j + 1
                    ),
                ));
            }
            if r.tag_status == TagStatus::Untagged && other.tag_status == TagStatus::Untagged {
                return Err(err(
                    *i,
                    r,
                    format!(
                        "rule {} also selects untagged images; only one rule may select untagged images",
                        j + 1
                    ),
                ));
            }
            let set = |l: &[String]| l.iter().cloned().collect::<BTreeSet<_>>();
            let same_prefixes = !r.tag_prefix_list.is_empty() && set(&r.tag_prefix_list) == set(&other.tag_prefix_list);
            let same_patterns =
                !r.tag_pattern_list.is_empty() && set(&r.tag_pattern_list) == set(&other.tag_pattern_list);
            if same_prefixes || same_patterns {
                return Err(err(
                    *i,
                    r,
                    format!(
                        "rule {} has the same {}; each rule must have a unique set of tag prefixes",
                        j + 1,
                        if same_prefixes {
                            "tagPrefixList"
                        } else {
                            "tagPatternList"
                        }
                    ),
                ));
            }
        }
    }
    let max = rules.iter().map(|(_, r)| r.rule_priority).max().unwrap_or(0);
    if let Some((i, r)) = rules
        .iter()
        .find(|(_, r)| r.tag_status == TagStatus::Any && r.rule_priority != max)
    {
        return Err(err(
            *i,
            r,
            format!("a rule with tagStatus \"any\" must have the highest rulePriority (the highest is {max})"),
        ));
    }
    Ok(())
}
