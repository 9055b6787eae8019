//! Errors of policy and schedule parsing.

use thiserror::Error;

/// Why a policy document was refused by [`Policy::parse`](crate::Policy::parse).
///
/// Every message names the offending rule and field, e.g.
/// `rule 2: countNumber must be a positive integer (got 0)`. Rules are numbered from 1 in
/// document order; for an ECR document the rule's `rulePriority` is named too when known:
/// `rule 2 (rulePriority 10): ...`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The text is neither valid JSON (when it starts with `{`) nor valid TOML.
    #[error("the policy is not valid {format}: {message}")]
    Syntax {
        /// `"JSON"` or `"TOML"`: the syntax the text was read as.
        format: &'static str,
        /// The parser's message, with its line and column.
        message: String,
    },
    /// A document-level field is wrong (`rules` missing or empty, an unknown top-level key, a
    /// bad `schedule`).
    #[error("{field}: {message}")]
    Document {
        /// The top-level field, e.g. `schedule` or `rules`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// One rule is wrong.
    #[error("rule {rule}{}: {message}", priority.map(|p| format!(" (rulePriority {p})")).unwrap_or_default())]
    Rule {
        /// 1-based position of the rule in the document's `rules` list.
        rule: usize,
        /// The rule's `rulePriority` (ECR documents only, when it could be read).
        priority: Option<i64>,
        /// What is wrong, naming the field.
        message: String,
    },
}

/// Why a cron expression was refused by [`Schedule::parse`](crate::Schedule::parse).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid cron schedule {expression:?}: {message}")]
pub struct ScheduleError {
    /// The expression as given.
    pub expression: String,
    /// What is wrong with it.
    pub message: String,
}
