//! ECR documents and outcomes from the Amazon ECR User Guide, "Examples of lifecycle
//! policies" (<https://docs.aws.amazon.com/AmazonECR/latest/userguide/lifecycle_policy_examples.html>).

use super::*;
use crate::{PolicyError, wildcard_match};

fn r(manifests: Vec<ManifestFacts>) -> Vec<RepositoryInventory> {
    vec![repo("team/app", manifests)]
}

fn expired(p: &Plan) -> Vec<&str> {
    deleted_manifests(p)
}

/// "Filtering on image age": expire untagged images older than 14 days.
const EXAMPLE_AGE: &str = r#"{
    "rules": [
        {
            "rulePriority": 1,
            "description": "Expire images older than 14 days",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 14
            },
            "action": {
                "type": "expire"
            }
        }
    ]
}"#;

/// "Filtering on image count": keep only one untagged image, expire all others.
const EXAMPLE_COUNT: &str = r#"{
    "rules": [
        {
            "rulePriority": 1,
            "description": "Keep only one untagged image, expire all others",
            "selection": {
                "tagStatus": "untagged",
                "countType": "imageCountMoreThan",
                "countNumber": 1
            },
            "action": {
                "type": "expire"
            }
        }
    ]
}"#;

fn two_prefix_rules(first: &str, second: &str) -> String {
    format!(
        r#"{{"rules": [
        {{"rulePriority": 1, "description": "Rule 1",
          "selection": {{"tagStatus": "tagged", "tagPrefixList": ["{first}"], "countType": "imageCountMoreThan", "countNumber": 1}},
          "action": {{"type": "expire"}}}},
        {{"rulePriority": 2, "description": "Rule 2",
          "selection": {{"tagStatus": "tagged", "tagPrefixList": ["{second}"], "countType": "imageCountMoreThan", "countNumber": 1}},
          "action": {{"type": "expire"}}}}
    ]}}"#
    )
}

/// "Filtering on all images", Example B: all rule types in one policy.
pub(crate) const EXAMPLE_ALL_B: &str = r#"{
    "rules": [
        {
            "rulePriority": 1,
            "description": "Rule 1",
            "selection": {
                "tagStatus": "tagged",
                "tagPrefixList": ["alpha"],
                "countType": "imageCountMoreThan",
                "countNumber": 1
            },
            "action": {
                "type": "expire"
            }
        },
        {
            "rulePriority": 2,
            "description": "Rule 2",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 1
            },
            "action": {
                "type": "expire"
            }
        },
        {
            "rulePriority": 3,
            "description": "Rule 3",
            "selection": {
                "tagStatus": "any",
                "countType": "imageCountMoreThan",
                "countNumber": 1
            },
            "action": {
                "type": "expire"
            }
        }
    ]
}"#;

#[test]
fn doc_example_filtering_on_image_age() {
    let repos = r(vec![
        m("sha256:old-untagged", 15, &[]),
        m("sha256:edge-untagged", 14, &[]),
        m("sha256:old-tagged", 100, &["v1"]),
    ]);
    let p = run(EXAMPLE_AGE, &repos);
    assert_eq!(expired(&p), ["sha256:old-untagged"]);
    assert_eq!(
        deletion_reason(&p, "sha256:old-untagged"),
        "expired by ECR rule 1 \"Expire images older than 14 days\" (expire untagged images pushed more than 14 days ago): pushed 15 days ago"
    );
    assert_eq!(kept_reason(&p, "sha256:old-tagged"), "not selected by any ECR rule");
    assert!(kept_reason(&p, "sha256:edge-untagged").contains("which keeps it: pushed 14 days ago"));
}

#[test]
fn doc_example_filtering_on_image_count() {
    let repos = r(vec![
        m("sha256:u1", 3, &[]),
        m("sha256:u2", 2, &[]),
        m("sha256:u3", 1, &[]),
        m("sha256:t", 9, &["v1"]),
    ]);
    let p = run(EXAMPLE_COUNT, &repos);
    assert_eq!(expired(&p), ["sha256:u1", "sha256:u2"]);
    assert!(deletion_reason(&p, "sha256:u1").ends_with("not among the newest 1 of its selection (number 3)"));
}

/// "Filtering on multiple rules", examples A and B: an image is decided by the
/// highest-priority rule whose tagging requirements it matches.
#[test]
fn doc_example_multiple_rules() {
    let repos = r(vec![
        m("sha256:A", 10, &["beta-1", "prod-1"]),
        m("sha256:B", 9, &["beta-2", "prod-2"]),
        m("sha256:C", 8, &["beta-3"]),
    ]);
    // Example A: prod first. Rule 2 would mark A and B, but B is claimed by rule 1, which
    // keeps it. Result: A is expired.
    let p = run(&two_prefix_rules("prod", "beta"), &repos);
    assert_eq!(expired(&p), ["sha256:A"]);
    assert!(kept_reason(&p, "sha256:B").starts_with("selected by ECR rule 1 \"Rule 1\""));
    // all of an expired image's tags go with it
    assert_eq!(deleted_tags(&p), ["beta-1", "prod-1"]);
    // Example B: beta first. Result: A and B are expired.
    let p = run(&two_prefix_rules("beta", "prod"), &repos);
    assert_eq!(expired(&p), ["sha256:A", "sha256:B"]);
}

/// "Filtering on multiple tags in a single rule", examples A and B: every prefix of the list
/// must match some tag of the image.
#[test]
fn doc_example_multiple_tags_in_a_rule() {
    let repos = r(vec![
        m("sha256:A", 12, &["alpha-1"]),
        m("sha256:B", 11, &["beta-1"]),
        m("sha256:C", 10, &["alpha-2", "beta-2"]),
        m("sha256:D", 4, &["alpha-3"]),
        m("sha256:E", 3, &["beta-3"]),
        m("sha256:F", 2, &["alpha-4", "beta-4"]),
    ]);
    let policy = r#"{"rules": [{"rulePriority": 1, "description": "Rule 1",
        "selection": {"tagStatus": "tagged", "tagPrefixList": ["alpha", "beta"],
                      "countType": "sinceImagePushed", "countNumber": 5, "countUnit": "days"},
        "action": {"type": "expire"}}]}"#;
    let p = run(policy, &repos);
    assert_eq!(expired(&p), ["sha256:C"]);

    let repos = r(vec![
        m("sha256:A", 10, &["alpha-1", "beta-1", "gamma-1"]),
        m("sha256:B", 9, &["alpha-2", "beta-2"]),
        m("sha256:C", 8, &["alpha-3", "beta-3", "gamma-2"]),
    ]);
    let policy = r#"{"rules": [{"rulePriority": 1, "description": "Rule 1",
        "selection": {"tagStatus": "tagged", "tagPrefixList": ["alpha", "beta"],
                      "countType": "imageCountMoreThan", "countNumber": 1},
        "action": {"type": "expire"}}]}"#;
    let p = run(policy, &repos);
    assert_eq!(expired(&p), ["sha256:A", "sha256:B"]);
}

/// "Filtering on all images", examples A and B.
#[test]
fn doc_example_all_images() {
    let repos = r(vec![
        m("sha256:A", 4, &["alpha-1"]),
        m("sha256:B", 3, &["beta-1"]),
        m("sha256:C", 2, &[]),
        m("sha256:D", 1, &["alpha-2"]),
    ]);
    let policy = r#"{"rules": [{"rulePriority": 1, "description": "Rule 1",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
        "action": {"type": "expire"}}]}"#;
    let p = run(policy, &repos);
    assert_eq!(expired(&p), ["sha256:A", "sha256:B", "sha256:C"]);

    // Example B. D and E are both "1 day ago"; E is the newer of the two (the documented
    // outcome keeps E), and is not more than 1 day old.
    let repos = r(vec![
        m("sha256:A", 4, &["alpha-1", "beta-1"]),
        m("sha256:B", 3, &[]),
        m("sha256:C", 2, &["alpha-2"]),
        m("sha256:D", 1, &["git hash"]),
        m("sha256:E", 1, &[]).at_ms(ago(1) + 60_000),
    ]);
    let p = run(EXAMPLE_ALL_B, &repos);
    // Rule 3 ranks all five images (including those claimed by rules 1 and 2) and keeps only
    // E; of its marks only D is its own. Result: A, B and D are expired.
    assert_eq!(expired(&p), ["sha256:A", "sha256:B", "sha256:D"]);
    assert!(deletion_reason(&p, "sha256:D").starts_with("expired by ECR rule 3 \"Rule 3\""));
    assert!(deletion_reason(&p, "sha256:B").starts_with("expired by ECR rule 2 \"Rule 2\""));
    assert!(kept_reason(&p, "sha256:C").starts_with("selected by ECR rule 1"));
    assert!(kept_reason(&p, "sha256:E").starts_with("selected by ECR rule 2"));
}

/// A claiming rule that keeps an image protects it from a later `any` rule.
#[test]
fn prod_rule_then_any_rule() {
    let repos = r(vec![
        m("sha256:p1", 90, &["prod-1"]),
        m("sha256:p2", 60, &["prod-2"]),
        m("sha256:p3", 30, &["prod-3"]),
        m("sha256:d1", 40, &["dev-1"]),
        m("sha256:d2", 5, &["dev-2"]),
        m("sha256:u1", 20, &[]),
    ]);
    let policy = r#"{"rules": [
        {"rulePriority": 10, "description": "keep 2 prod",
         "selection": {"tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "imageCountMoreThan", "countNumber": 2},
         "action": {"type": "expire"}},
        {"rulePriority": 20, "description": "everything else: 14 days",
         "selection": {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14},
         "action": {"type": "expire"}}
    ]}"#;
    let p = run(policy, &repos);
    assert_eq!(expired(&p), ["sha256:d1", "sha256:p1", "sha256:u1"]);
    assert_eq!(
        kept_reason(&p, "sha256:p2"),
        "selected by ECR rule 10 \"keep 2 prod\" (keep the newest 2 of images with tags starting with \"prod\"), which keeps it: among the newest 2 of its selection"
    );
}

#[test]
fn tag_pattern_list_requires_every_pattern() {
    let repos = r(vec![
        m("sha256:both", 30, &["prod-1", "x-stable"]),
        m("sha256:one", 30, &["prod-2"]),
        m("sha256:exact", 30, &["latest"]),
        m("sha256:prefix-only", 30, &["latest-2"]),
    ]);
    let policy = r#"{"rules": [
        {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPatternList": ["prod*", "*-stable"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7}, "action": {"type": "expire"}},
        {"rulePriority": 2, "selection": {"tagStatus": "tagged", "tagPatternList": ["latest"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7}, "action": {"type": "expire"}}
    ]}"#;
    let p = run(policy, &repos);
    assert_eq!(expired(&p), ["sha256:both", "sha256:exact"]);
}

#[test]
fn wildcard_matching() {
    let cases = [
        ("prod*", "prod", true),
        ("prod*", "prod-1", true),
        ("prod*", "xprod", false),
        ("*prod", "my-prod", true),
        ("*test*1*2*3", "a-test-1-2-3", true),
        ("*test*1*2*3", "a-test-1-2-3-4", false),
        ("test*1*2*3*", "test123", true),
        ("a*a", "a", false),
        ("a*a", "aa", true),
        ("latest", "latest", true),
        ("latest", "latest2", false),
        ("*", "", true),
        ("v?", "v1", false), // only `*` is special
        ("v?", "v?", true),
    ];
    for (pattern, tag, want) in cases {
        assert_eq!(wildcard_match(pattern, tag), want, "{pattern} {tag}");
    }
}

#[test]
fn immutable_images_are_never_expired() {
    let repos = r(vec![
        m("sha256:old", 100, &["v1", "build-1"]).immutable("v1"),
        m("sha256:new", 1, &["build-2"]),
    ]);
    let p = run(
        r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]}"#,
        &repos,
    );
    assert!(p.deletions.is_empty(), "{p:#?}");
    assert!(kept_reason(&p, "sha256:old").starts_with("has immutable tag(s) v1; ECR rule 1"));
}

#[test]
fn index_children_and_referrers_are_not_images() {
    let repos = r(vec![
        m("sha256:idx", 100, &["app-1"]).index(),
        m("sha256:child", 100, &["app-1-amd64"]).listed_by("sha256:idx"),
        m("sha256:child2", 100, &[]).listed_by("sha256:idx"),
        m("sha256:sig", 100, &[]).subject("sha256:idx"),
        m("sha256:att", 100, &[]).subject("sha256:sig"),
        m("sha256:pinned-sig", 100, &["keep"])
            .subject("sha256:idx")
            .immutable("keep"),
        m("sha256:new", 1, &["app-2"]),
        m("sha256:new-sig", 100, &[]).subject("sha256:new"),
    ]);
    let policy = r#"{"rules": [
        {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPrefixList": ["app"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
        {"rulePriority": 2, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}, "action": {"type": "expire"}}
    ]}"#;
    let p = run(policy, &repos);
    // the index expires with its tag; its referrers follow (recursively); the children are
    // neither counted as images nor expired (garbage collection takes them later)
    assert_eq!(expired(&p), ["sha256:att", "sha256:idx", "sha256:sig"]);
    assert_eq!(deleted_tags(&p), ["app-1"]);
    assert_eq!(deletion_reason(&p, "sha256:att"), "referrer of deleted sha256:sig");
    assert!(kept_reason(&p, "sha256:child").starts_with("listed by index sha256:idx"));
    assert_eq!(
        kept_reason(&p, "sha256:pinned-sig"),
        "referrer of deleted sha256:idx, but it has immutable tag(s) keep"
    );
    assert_eq!(
        kept_reason(&p, "sha256:new-sig"),
        "referrer of sha256:new, which stays (not an image of its own)"
    );
}

#[test]
fn ecr_validation_errors() {
    let rule = |priority: &str, selection: &str| {
        format!(r#"{{"rulePriority": {priority}, "selection": {{{selection}}}, "action": {{"type": "expire"}}}}"#)
    };
    let doc = |rules: &[String]| format!(r#"{{"rules": [{}]}}"#, rules.join(","));
    let any = r#""tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5"#;
    let untagged = r#""tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 5"#;
    let prod =
        r#""tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "imageCountMoreThan", "countNumber": 5"#;
    let cases: Vec<(String, &str)> = vec![
        (
            doc(&[rule("1", r#""tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1"#)]),
            "rule 1 (rulePriority 1): tagStatus \"tagged\" requires a tagPrefixList or a tagPatternList",
        ),
        (
            doc(&[rule("1", r#""tagStatus": "untagged", "tagPrefixList": ["a"], "countType": "imageCountMoreThan", "countNumber": 1"#)]),
            "rule 1 (rulePriority 1): tagPrefixList and tagPatternList are only allowed with tagStatus \"tagged\"",
        ),
        (
            doc(&[rule("1", r#""tagStatus": "tagged", "tagPrefixList": ["a"], "tagPatternList": ["a*"], "countType": "imageCountMoreThan", "countNumber": 1"#)]),
            "rule 1 (rulePriority 1): tagPrefixList and tagPatternList cannot both be specified in a rule",
        ),
        (
            doc(&[rule("1", r#""tagStatus": "tagged", "tagPrefixList": [], "countType": "imageCountMoreThan", "countNumber": 1"#)]),
            "rule 1 (rulePriority 1): tagPrefixList must not be empty",
        ),
        (
            doc(&[rule("1", r#""tagStatus": "any", "countType": "imageCountMoreThan", "countUnit": "days", "countNumber": 1"#)]),
            "rule 1 (rulePriority 1): countUnit (\"days\") must not be specified when countType is imageCountMoreThan",
        ),
        (
            doc(&[rule("1", r#""tagStatus": "any", "countType": "sinceImagePushed", "countNumber": 1"#)]),
            "rule 1 (rulePriority 1): countUnit (\"days\") is required when countType is sinceImagePushed",
        ),
        (
            doc(&[rule("1", r#""tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "hours", "countNumber": 1"#)]),
            "rule 1 (rulePriority 1): countUnit must be \"days\" (got \"hours\")",
        ),
        (
            doc(&[rule("1", prod), rule("10", r#""tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 0"#)]),
            "rule 2 (rulePriority 10): countNumber must be a positive integer (got 0)",
        ),
        (
            doc(&[rule("1", r#""tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": -2"#)]),
            "rule 1 (rulePriority 1): countNumber must be a positive integer (got -2)",
        ),
        (
            doc(&[rule("1", r#""tagStatus": "any", "countType": "imageCountMoreThan""#)]),
            "rule 1 (rulePriority 1): countNumber is required",
        ),
        (doc(&[rule("1", prod), rule("1", any)]), "rule 2 (rulePriority 1): rulePriority 1 is also used by rule 1; priorities must be unique"),
        (
            doc(&[rule("3", any), rule("4", any)]),
            "rule 1 (rulePriority 3): a rule with tagStatus \"any\" must have the highest rulePriority (the highest is 4)",
        ),
        (
            doc(&[rule("5", any), rule("7", prod)]),
            "rule 1 (rulePriority 5): a rule with tagStatus \"any\" must have the highest rulePriority (the highest is 7)",
        ),
        (
            doc(&[rule("1", untagged), rule("2", untagged)]),
            "rule 2 (rulePriority 2): rule 1 also selects untagged images; only one rule may select untagged images",
        ),
        (
            doc(&[rule("1", prod), rule("2", prod)]),
            "rule 2 (rulePriority 2): rule 1 has the same tagPrefixList; each rule must have a unique set of tag prefixes",
        ),
        (
            doc(&[rule("1", r#""tagStatus": "tagged", "tagPatternList": ["a*b*c*d*e*f"], "countType": "imageCountMoreThan", "countNumber": 1"#)]),
            "rule 1 (rulePriority 1): tagPatternList entry \"a*b*c*d*e*f\" has 5 wildcards; at most 4 are allowed",
        ),
        (
            doc(&[rule("1", r#""tagStatus": "all", "countType": "imageCountMoreThan", "countNumber": 1"#)]),
            "rule 1 (rulePriority 1): tagStatus must be \"tagged\", \"untagged\" or \"any\" (got \"all\")",
        ),
        (
            doc(&[rule("1", r#""tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 1"#)]),
            "rule 1 (rulePriority 1): countType \"sinceImagePulled\" is not supported by Berth",
        ),
        (
            doc(&[rule("1", r#""tagStatus": "any", "tagPrefix": ["a"], "countType": "imageCountMoreThan", "countNumber": 1"#)]),
            "rule 1 (rulePriority 1): unknown field `tagPrefix`",
        ),
        (
            doc(&[rule("0", any)]),
            "rule 1 (rulePriority 0): rulePriority must be a positive integer (got 0)",
        ),
        (
            r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "delete"}}]}"#.to_owned(),
            "rule 1 (rulePriority 1): action.type must be \"expire\" (got \"delete\")",
        ),
        (
            r#"{"rules": [{"rulePriority": 1, "action": {"type": "expire"}}]}"#.to_owned(),
            "rule 1 (rulePriority 1): selection is required",
        ),
        (
            r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}], "schedule": "x"}"#.to_owned(),
            "schedule: unknown top-level field",
        ),
    ];
    for (text, want) in cases {
        let e = Policy::parse(&text).expect_err(&text);
        assert!(
            e.to_string().starts_with(want),
            "for {text}\n  got:  {e}\n  want: {want}…"
        );
        assert!(!matches!(e, PolicyError::Syntax { .. }), "{e}");
    }
}

#[test]
fn ecr_rules_are_applied_by_ascending_priority_whatever_their_order() {
    // the same document as two_prefix_rules("prod", "beta"), written with the rules swapped
    // and priorities 20 and 10
    let policy = r#"{"rules": [
        {"rulePriority": 20, "selection": {"tagStatus": "tagged", "tagPrefixList": ["beta"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
        {"rulePriority": 10, "selection": {"tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}
    ]}"#;
    let repos = r(vec![
        m("sha256:A", 10, &["beta-1", "prod-1"]),
        m("sha256:B", 9, &["beta-2", "prod-2"]),
        m("sha256:C", 8, &["beta-3"]),
    ]);
    let p = run(policy, &repos);
    assert_eq!(expired(&p), ["sha256:A"]);
}

/// "Filtering on image age" in the current guide: tagged images matching `prod*` older than
/// 14 days.
#[test]
fn doc_example_filtering_on_image_age_with_a_pattern() {
    let policy = r#"{ "rules": [ { "rulePriority": 1, "description": "Expire images older than 14 days", "selection": { "tagStatus": "tagged", "tagPatternList": ["prod*"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14 }, "action": { "type": "expire" } } ] }"#;
    let repos = r(vec![
        m("sha256:prod-old", 15, &["prod", "v1"]),
        m("sha256:prod-new", 3, &["prod2"]),
        m("sha256:dev-old", 30, &["dev"]),
        m("sha256:untagged-old", 30, &[]),
    ]);
    let p = run(policy, &repos);
    assert_eq!(expired(&p), ["sha256:prod-old"]);
    assert_eq!(deleted_tags(&p), ["prod", "v1"]);
}
