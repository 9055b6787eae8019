use super::*;
use crate::{Action, PolicyError, PolicyRules, SourceFormat};

fn berth_rules(p: &Policy) -> Vec<(String, String, Action)> {
    match p.rules() {
        PolicyRules::Berth(b) => b
            .rules
            .iter()
            .map(|r| (r.repositories().to_owned(), r.tags().to_owned(), r.action()))
            .collect(),
        PolicyRules::Ecr(_) => panic!("expected a Berth policy"),
    }
}

const TOML_POLICY: &str = r#"
schedule = "0 3 * * *"

[[rules]]
tags = "main-*"
keep_most_recent = 10

[[rules]]
repositories = "api/*"
tags = "v*"
keep_newest_per_minor = 3

[[rules]]
tags = "release-*"
always_retain = true

[[rules]]
keep_pulled_within_days = 30

[[rules]]
keep_pushed_within_days = 7

[[rules]]
tags = "pr-*"
expire_after_days = 14

[[rules]]
description = "untagged cleanup"
delete_untagged_after_days = 2
"#;

const JSON_POLICY: &str = r#"{
  "schedule": "0 3 * * *",
  "rules": [
    {"tags": "main-*", "keep_most_recent": 10},
    {"repositories": "api/*", "tags": "v*", "keep_newest_per_minor": 3},
    {"tags": "release-*", "always_retain": true},
    {"keep_pulled_within_days": 30},
    {"keep_pushed_within_days": 7},
    {"tags": "pr-*", "expire_after_days": 14},
    {"description": "untagged cleanup", "delete_untagged_after_days": 2}
  ]
}"#;

#[test]
fn toml_and_json_forms_parse_to_the_same_rules() {
    let t = parse(TOML_POLICY);
    let j = parse(JSON_POLICY);
    assert_eq!(t.source_format(), SourceFormat::BerthToml);
    assert_eq!(j.source_format(), SourceFormat::BerthJson);
    assert_eq!(t.rules(), j.rules());
    assert_eq!(t.source(), TOML_POLICY);
    let want = vec![
        ("**".into(), "main-*".into(), Action::KeepMostRecent(10)),
        ("api/*".into(), "v*".into(), Action::KeepNewestPerMinor(3)),
        ("**".into(), "release-*".into(), Action::AlwaysRetain),
        ("**".into(), "*".into(), Action::KeepPulledWithinDays(30)),
        ("**".into(), "*".into(), Action::KeepPushedWithinDays(7)),
        ("**".into(), "pr-*".into(), Action::ExpireAfterDays(14)),
        ("**".into(), "*".into(), Action::DeleteUntaggedAfterDays(2)),
    ];
    assert_eq!(berth_rules(&t), want);
    assert_eq!(t.schedule().map(|s| s.as_str()), Some("0 3 * * *"));
}

#[test]
fn to_json_round_trips() {
    for text in [TOML_POLICY, JSON_POLICY, super::ecr_plan::EXAMPLE_ALL_B] {
        let p = parse(text);
        let again = parse(&p.to_json());
        assert_eq!(again.rules(), p.rules(), "{}", p.to_json());
        assert_eq!(again.schedule(), p.schedule());
        let via_serde = serde_json::to_value(&p).expect("serializes");
        assert_eq!(via_serde, p.to_json_value());
    }
    let ecr = parse(super::ecr_plan::EXAMPLE_ALL_B);
    assert_eq!(ecr.source_format(), SourceFormat::EcrJson);
    assert_eq!(parse(&ecr.to_json()).source_format(), SourceFormat::EcrJson);
    let berth = parse(TOML_POLICY);
    assert_eq!(parse(&berth.to_json()).source_format(), SourceFormat::BerthJson);
}

#[test]
fn shape_detection() {
    let cases = [
        (r#"{"rules":[{"keep_most_recent":1}]}"#, SourceFormat::BerthJson),
        ("  \n{\"rules\":[{\"keep_most_recent\":1}]}", SourceFormat::BerthJson),
        ("[[rules]]\nkeep_most_recent = 1\n", SourceFormat::BerthToml),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}"#,
            SourceFormat::EcrJson,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse(text).source_format(), want, "{text}");
    }
    // an ECR-shaped rule without rulePriority is still read as ECR, and says what is missing
    let e = Policy::parse(
        r#"{"rules":[{"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}"#,
    )
    .expect_err("missing rulePriority");
    assert_eq!(e.to_string(), "rule 1: rulePriority is required");
}

#[test]
fn berth_errors_name_the_rule_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "[[rules]]\nkeep_mostrecent = 3\n",
            "rule 1: unknown field `keep_mostrecent`",
        ),
        (
            "[[rules]]\nkeep_most_recent = 3\n[[rules]]\ntags = \"x\"\nkeep_most_recent = 1\nexpire_after_days = 3\n",
            "rule 2: keep_most_recent and expire_after_days are both set; a rule takes exactly one action key",
        ),
        (
            "[[rules]]\ntags = \"x\"\n",
            "rule 1: no action: set exactly one of keep_most_recent",
        ),
        (
            "[[rules]]\nkeep_most_recent = 0\n",
            "rule 1: keep_most_recent must be a positive integer (got 0)",
        ),
        (
            "[[rules]]\nexpire_after_days = -3\n",
            "rule 1: expire_after_days must be a positive integer (got -3)",
        ),
        (
            r#"{"rules":[{"keep_pushed_within_days": 1.5}]}"#,
            "rule 1: keep_pushed_within_days must be a positive integer (got 1.5)",
        ),
        (
            r#"{"rules":[{"keep_most_recent": "3"}]}"#,
            "rule 1: keep_most_recent must be a positive integer (got \"3\")",
        ),
        (
            "[[rules]]\nkeep_most_recent = 99999999999\n",
            "rule 1: keep_most_recent must be at most 4294967295",
        ),
        (
            "[[rules]]\ntags = \"[abc\"\nkeep_most_recent = 1\n",
            "rule 1: tags: invalid glob \"[abc\"",
        ),
        (
            "[[rules]]\nrepositories = \"api/{a,b\"\nkeep_most_recent = 1\n",
            "rule 1: repositories: invalid glob \"api/{a,b\"",
        ),
        (
            "[[rules]]\ntags = \"\"\nkeep_most_recent = 1\n",
            "rule 1: tags must not be empty",
        ),
        (
            "[[rules]]\nalways_retain = false\n",
            "rule 1: always_retain must be true",
        ),
        (
            "schedule = \"0 3 * *\"\n[[rules]]\nkeep_most_recent = 1\n",
            "schedule: invalid cron schedule \"0 3 * *\": expected 5 fields",
        ),
        (
            "schedule = \"0 27 * * *\"\n[[rules]]\nkeep_most_recent = 1\n",
            "schedule: invalid cron schedule \"0 27 * * *\"",
        ),
        ("schedule = \"0 3 * * *\"\n", "rules: a policy needs at least one rule"),
        ("rule = []\n", "policy: unknown field `rule`"),
        (
            r#"{"rules": [], "schedule": "0 3 * * *"}"#,
            "rules: a policy needs at least one rule",
        ),
        (r#"{"rules": [3]}"#, "rule 1: a rule must be a table/object"),
        ("{\"rules\": [", "the policy is not valid JSON"),
        ("[[rules]\nkeep = 1", "the policy is not valid TOML"),
    ];
    for (text, want) in cases {
        let e = Policy::parse(text).expect_err(text);
        assert!(
            e.to_string().starts_with(want),
            "for {text:?}\n  got:  {e}\n  want: {want}…"
        );
    }
}

#[test]
fn rule_errors_carry_their_position() {
    let e = Policy::parse("[[rules]]\nkeep_most_recent = 1\n[[rules]]\n[[rules]]\nkeep_most_recent = 1\n")
        .expect_err("rule 2 has no action");
    assert!(
        matches!(
            e,
            PolicyError::Rule {
                rule: 2,
                priority: None,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn next_run_after() {
    let p = parse(TOML_POLICY);
    // NOW is midnight UTC: the next 03:00 is three hours later
    assert_eq!(p.next_run_after(NOW), Some(NOW + 3 * 3_600_000));
    assert_eq!(parse("[[rules]]\nkeep_most_recent = 1\n").next_run_after(NOW), None);
    assert_eq!(parse(super::ecr_plan::EXAMPLE_ALL_B).next_run_after(NOW), None);
}
