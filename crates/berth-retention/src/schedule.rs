//! Cron schedules for the scheduled retention run (a small UTC wrapper over `croner`).

use std::fmt;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Serialize, Serializer};

use crate::error::ScheduleError;

/// A validated standard 5-field cron expression (`minute hour day-of-month month
/// day-of-week`), evaluated in UTC.
///
/// Accepted syntax is croner's with seconds and years disallowed: ranges, lists, steps,
/// month and weekday names, `L`, `#`, `W`, and the nicknames `@yearly`, `@monthly`,
/// `@weekly`, `@daily`, `@hourly`. Serializes as the expression string.
#[derive(Clone)]
pub struct Schedule {
    expression: String,
    cron: Box<Cron>,
}

impl Schedule {
    /// Parses and validates a cron expression such as `0 3 * * *` (03:00 UTC every day).
    ///
    /// # Errors
    /// [`ScheduleError`] when the expression is not 5 fields or a field is invalid (e.g.
    /// minute `61`).
    pub fn parse(expression: &str) -> Result<Self, ScheduleError> {
        let err = |message: String| ScheduleError {
            expression: expression.to_owned(),
            message,
        };
        let trimmed = expression.trim();
        if !trimmed.starts_with('@') && trimmed.split_whitespace().count() != 5 {
            return Err(err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), got {}",
                trimmed.split_whitespace().count()
            )));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(trimmed).map_err(|e| err(e.to_string()))?;
        Ok(Self {
            expression: trimmed.to_owned(),
            cron: Box::new(cron),
        })
    }

    /// The expression as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.expression
    }

    /// The first time strictly after `after_ms` (Unix milliseconds, UTC) at which the schedule
    /// fires, in Unix milliseconds; `None` if there is none (e.g. `0 0 30 2 *`) or `after_ms`
    /// is out of the representable date range.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let after: DateTime<Utc> = DateTime::from_timestamp_millis(after_ms)?;
        self.cron
            .find_next_occurrence(&after, false)
            .ok()
            .map(|t| t.timestamp_millis())
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schedule").field(&self.expression).finish()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
    }
}

impl Eq for Schedule {}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.expression)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-01-01T00:00:00Z
    const JAN1: i64 = 1_704_067_200_000;
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    #[test]
    fn next_after_table() {
        let cases = [
            ("0 3 * * *", JAN1, JAN1 + 3 * HOUR),
            ("0 3 * * *", JAN1 + 3 * HOUR - 1, JAN1 + 3 * HOUR),
            // strictly after: exactly at a firing time gives the next one
            ("0 3 * * *", JAN1 + 3 * HOUR, JAN1 + DAY + 3 * HOUR),
            ("0 3 * * *", JAN1 + 3 * HOUR + 500, JAN1 + DAY + 3 * HOUR),
            ("*/15 * * * *", JAN1 + 1, JAN1 + 15 * 60_000),
            // 2024-01-01 is a Monday; Sunday 2024-01-07 04:30
            ("30 4 * * SUN", JAN1, JAN1 + 6 * DAY + 4 * HOUR + 30 * 60_000),
            ("@daily", JAN1, JAN1 + DAY),
        ];
        for (expr, after, want) in cases {
            let s = Schedule::parse(expr).expect(expr);
            assert_eq!(s.next_after(after), Some(want), "{expr} after {after}");
        }
    }

    #[test]
    fn invalid_expressions() {
        for expr in [
            "",
            "0 3 * *",
            "0 0 3 * * *",
            "61 3 * * *",
            "0 25 * * *",
            "nonsense",
            "0 3 * * * 2024",
        ] {
            let e = Schedule::parse(expr).expect_err(expr);
            assert!(e.to_string().contains("invalid cron schedule"), "{e}");
        }
    }

    #[test]
    fn never_firing_schedule_has_no_next_run() {
        let s = Schedule::parse("0 0 30 2 *").expect("parses");
        assert_eq!(s.next_after(JAN1), None);
    }
}
