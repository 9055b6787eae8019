use super::*;

fn r(manifests: Vec<ManifestFacts>) -> Vec<RepositoryInventory> {
    vec![repo("team/api", manifests)]
}

#[test]
fn keep_most_recent_alone() {
    let repos = r(vec![
        m("sha256:1", 5, &["main-1"]),
        m("sha256:2", 4, &["main-2"]),
        m("sha256:3", 3, &["main-3"]),
        m("sha256:4", 2, &["main-4"]),
        m("sha256:5", 1, &["main-5", "latest"]),
        m("sha256:6", 9, &["dev"]),
    ]);
    let p = run("[[rules]]\ntags = \"main-*\"\nkeep_most_recent = 2\n", &repos);
    assert_eq!(deleted_tags(&p), ["main-1", "main-2", "main-3"]);
    assert_eq!(deleted_manifests(&p), ["sha256:1", "sha256:2", "sha256:3"]);
    assert_eq!(
        deletion_reason(&p, "main-1"),
        "not kept by rule 1 (keep the 2 most recently pushed tags matching \"main-*\")"
    );
    assert_eq!(
        deletion_reason(&p, "sha256:1"),
        "all its tags were deleted by retention"
    );
    assert!(kept_reason(&p, "main-5").starts_with("kept by rule 1"));
    assert_eq!(kept_reason(&p, "dev"), "no rule applies to this tag");
    assert_eq!(kept_reason(&p, "latest"), "no rule applies to this tag");
    // the manifest deletion lists its tags
    assert!(p.deletions.contains(&Deletion::Manifest {
        repository: "team/api".into(),
        digest: "sha256:2".into(),
        tags: vec!["main-2".into()],
        reason: "all its tags were deleted by retention".into(),
    }));
}

#[test]
fn keep_most_recent_uses_the_tag_push_time() {
    // the manifest is old but main-old was re-pointed at it yesterday
    let repos = r(vec![
        m("sha256:1", 50, &["main-old"]).tag_pushed("main-old", 1),
        m("sha256:2", 3, &["main-new"]),
    ]);
    let p = run("[[rules]]\ntags = \"main-*\"\nkeep_most_recent = 1\n", &repos);
    assert_eq!(deleted_tags(&p), ["main-new"]);
}

#[test]
fn keep_most_recent_with_always_retain() {
    let repos = r(vec![
        m("sha256:1", 300, &["release-1"]),
        m("sha256:2", 200, &["build-1"]),
        m("sha256:3", 100, &["build-2", "release-2"]),
        m("sha256:4", 1, &["build-3"]),
    ]);
    let policy = "[[rules]]\nkeep_most_recent = 1\n[[rules]]\ntags = \"release-*\"\nalways_retain = true\n";
    let p = run(policy, &repos);
    assert_eq!(deleted_tags(&p), ["build-1", "build-2"]);
    // sha256:3 keeps release-2, so only its build tag goes
    assert_eq!(deleted_manifests(&p), ["sha256:2"]);
    assert_eq!(
        kept_reason(&p, "release-1"),
        "retained by rule 2 (always retain tags matching \"release-*\")"
    );
    assert!(kept_reason(&p, "build-3").starts_with("kept by rule 1"));
}

#[test]
fn keep_newest_per_minor() {
    let mut ms = Vec::new();
    // v1.2.0..v1.2.5, pushed in reverse order so push time disagrees with semver order
    for (i, v) in ["v1.2.0", "v1.2.1", "v1.2.2", "v1.2.3", "v1.2.4", "v1.2.5"]
        .iter()
        .enumerate()
    {
        ms.push(m(&format!("sha256:12{i}"), 10 + i as i64, &[v]));
    }
    ms.push(m("sha256:130", 5, &["1.3.0"]));
    ms.push(m("sha256:131", 4, &["1.3.1"]));
    ms.push(m("sha256:132", 3, &["1.3.2-rc.1"]));
    // same precedence: the later-pushed one wins the single slot of 1.4
    ms.push(m("sha256:140", 2, &["v1.4.0"]));
    ms.push(m("sha256:141", 1, &["1.4.0"]));
    ms.push(m("sha256:900", 1, &["latest", "1.2", "main"]));
    let policy = "[[rules]]\nkeep_newest_per_minor = 2\n[[rules]]\ntags = \"1.4*\"\nkeep_newest_per_minor = 1\n[[rules]]\ntags = \"v1.4*\"\nkeep_newest_per_minor = 1\n";
    let p = run(policy, &[repo("team/api", ms)]);
    let mut deleted = deleted_tags(&p);
    deleted.sort();
    assert_eq!(deleted, ["1.3.0", "v1.2.0", "v1.2.1", "v1.2.2", "v1.2.3"]);
    for kept in ["v1.2.5", "v1.2.4", "1.3.2-rc.1", "1.3.1", "1.4.0", "v1.4.0"] {
        assert!(kept_reason(&p, kept).starts_with("kept by rule 1"), "{kept}");
    }
    // non-semver tags are outside the rule's scope
    for other in ["latest", "1.2", "main"] {
        assert_eq!(kept_reason(&p, other), "no rule applies to this tag", "{other}");
    }

    // with one slot for 1.4 and both tags in scope, the later-pushed 1.4.0 wins
    let ms = vec![m("sha256:140", 2, &["v1.4.0"]), m("sha256:141", 1, &["1.4.0"])];
    let p = run("[[rules]]\nkeep_newest_per_minor = 1\n", &[repo("team/api", ms)]);
    assert_eq!(deleted_tags(&p), ["v1.4.0"]);
}

#[test]
fn expire_after_days_alone() {
    let repos = r(vec![
        m("sha256:1", 31, &["pr-1"]),
        m("sha256:2", 30, &["pr-2"]), // exactly 30 days: not "more than"
        m("sha256:3", 1, &["pr-3"]),
        m("sha256:4", 400, &["main"]),
    ]);
    let p = run("[[rules]]\ntags = \"pr-*\"\nexpire_after_days = 30\n", &repos);
    assert_eq!(deleted_tags(&p), ["pr-1"]);
    assert_eq!(
        deletion_reason(&p, "pr-1"),
        "pushed 31 days ago: rule 1 (delete tags matching \"pr-*\" pushed more than 30 days ago)"
    );
    assert!(kept_reason(&p, "pr-2").starts_with("pushed 30 days ago, not yet expired by rule 1"));
    assert_eq!(kept_reason(&p, "main"), "no rule applies to this tag");
}

#[test]
fn keep_pulled_within_days_beats_expire_after_days() {
    let repos = r(vec![
        m("sha256:1", 90, &["old-pulled"]).tag_pulled("old-pulled", 2),
        m("sha256:2", 90, &["old-unpulled"]).tag_pulled("old-unpulled", 60),
        m("sha256:3", 90, &["old-digest-pulled"]).pulled(1),
        m("sha256:4", 2, &["young-unpulled"]),
        m("sha256:5", 90, &["edge"]).tag_pulled("edge", 7),
    ]);
    let policy = "[[rules]]\nexpire_after_days = 30\n[[rules]]\nkeep_pulled_within_days = 7\n";
    let p = run(policy, &repos);
    // a tag in the scope of a keep rule and not kept by it goes, young or old
    assert_eq!(deleted_tags(&p), ["old-unpulled", "young-unpulled"]);
    assert_eq!(
        deletion_reason(&p, "old-unpulled"),
        "not kept by rule 2 (keep tags matching \"*\" pulled in the last 7 days)"
    );
    assert!(kept_reason(&p, "old-pulled").starts_with("kept by rule 2"));
    assert!(kept_reason(&p, "old-digest-pulled").starts_with("kept by rule 2"));
    assert!(kept_reason(&p, "edge").starts_with("kept by rule 2"));

    // keep rule narrower than the expire rule: expire applies outside the keep scope
    let policy = "[[rules]]\nexpire_after_days = 30\n[[rules]]\ntags = \"old-*\"\nkeep_pulled_within_days = 7\n";
    let p = run(policy, &repos);
    assert_eq!(deleted_tags(&p), ["edge", "old-unpulled"]);
    assert!(deletion_reason(&p, "edge").starts_with("pushed 90 days ago: rule 1"));
}

#[test]
fn keep_pushed_within_days() {
    let repos = r(vec![
        m("sha256:1", 7, &["a"]),
        m("sha256:2", 8, &["b"]),
        m("sha256:3", 0, &["c"]),
    ]);
    let p = run("[[rules]]\nkeep_pushed_within_days = 7\n", &repos);
    assert_eq!(deleted_tags(&p), ["b"]);
}

#[test]
fn immutable_tags_are_never_deleted() {
    let repos = r(vec![
        m("sha256:1", 300, &["v1", "build-1"]).immutable("v1"),
        m("sha256:2", 200, &["v2"]).immutable("v2"),
        m("sha256:3", 1, &["build-3"]),
    ]);
    for policy in [
        "[[rules]]\nkeep_most_recent = 1\n",
        "[[rules]]\nexpire_after_days = 10\n",
        "[[rules]]\nkeep_most_recent = 1\n[[rules]]\nexpire_after_days = 10\n[[rules]]\ndelete_untagged_after_days = 1\n",
    ] {
        let p = run(policy, &repos);
        assert_eq!(deleted_tags(&p), ["build-1"], "{policy}");
        assert!(deleted_manifests(&p).is_empty(), "{policy}");
        assert_eq!(
            kept_reason(&p, "v1"),
            "immutable tag (protected by an immutability rule)"
        );
    }
}

#[test]
fn manifest_goes_only_when_all_its_tags_go() {
    let repos = r(vec![
        m("sha256:1", 100, &["main-1", "stable"]),
        m("sha256:2", 100, &["main-2", "main-3"]),
        m("sha256:3", 1, &["main-4"]),
    ]);
    let p = run("[[rules]]\ntags = \"main-*\"\nkeep_most_recent = 1\n", &repos);
    assert_eq!(deleted_tags(&p), ["main-1", "main-2", "main-3"]);
    assert_eq!(deleted_manifests(&p), ["sha256:2"]);
    assert!(p.deletions.contains(&Deletion::Manifest {
        repository: "team/api".into(),
        digest: "sha256:2".into(),
        tags: vec!["main-2".into(), "main-3".into()],
        reason: "all its tags were deleted by retention".into(),
    }));
}

#[test]
fn referrers_go_with_their_subject_recursively() {
    let repos = r(vec![
        m("sha256:a", 100, &["old"]),
        m("sha256:b", 1, &["new"]),
        m("sha256:sig-a", 100, &[]).subject("sha256:a"),
        m("sha256:sbom-of-sig-a", 100, &[]).subject("sha256:sig-a"),
        m("sha256:sig-b", 100, &[]).subject("sha256:b"),
        m("sha256:locked-sig", 100, &["pinned"])
            .subject("sha256:a")
            .immutable("pinned"),
        m("sha256:orphan-sig", 100, &[]).subject("sha256:gone"),
    ]);
    let p = run("[[rules]]\nkeep_most_recent = 1\n", &repos);
    assert_eq!(deleted_tags(&p), ["old"]);
    assert_eq!(
        deleted_manifests(&p),
        ["sha256:a", "sha256:sbom-of-sig-a", "sha256:sig-a"]
    );
    assert_eq!(deletion_reason(&p, "sha256:sig-a"), "referrer of deleted sha256:a");
    assert_eq!(
        deletion_reason(&p, "sha256:sbom-of-sig-a"),
        "referrer of deleted sha256:sig-a"
    );
    assert_eq!(kept_reason(&p, "sha256:sig-b"), "referrer of sha256:b, which stays");
    assert_eq!(
        kept_reason(&p, "sha256:locked-sig"),
        "referrer of deleted sha256:a, but it has immutable tag(s) pinned"
    );
    // the pinned tag is in the keep rule's scope but immutable
    assert_eq!(
        kept_reason(&p, "pinned"),
        "immutable tag (protected by an immutability rule)"
    );

    // with an untagged rule: a referrer of a staying subject stays; one whose subject is not
    // in the repository is an ordinary untagged manifest
    let p = run(
        "[[rules]]\nkeep_most_recent = 1\n[[rules]]\ndelete_untagged_after_days = 7\n",
        &repos,
    );
    assert_eq!(
        deleted_manifests(&p),
        ["sha256:a", "sha256:orphan-sig", "sha256:sbom-of-sig-a", "sha256:sig-a"]
    );
    assert!(deletion_reason(&p, "sha256:orphan-sig").starts_with("untagged, pushed 100 days ago: rule 2"));
    assert_eq!(kept_reason(&p, "sha256:sig-b"), "referrer of sha256:b, which stays");
}

#[test]
fn index_children() {
    let repos = r(vec![
        // an old multi-arch image whose tag goes
        m("sha256:idx-old", 100, &["app-1"]).index(),
        m("sha256:old-amd64", 100, &[]).listed_by("sha256:idx-old"),
        m("sha256:old-arm64", 100, &[]).listed_by("sha256:idx-old"),
        // a current one that stays
        m("sha256:idx-new", 50, &["app-2"]).index(),
        m("sha256:new-amd64", 50, &["app-2-amd64"]).listed_by("sha256:idx-new"),
        m("sha256:new-arm64", 50, &[]).listed_by("sha256:idx-new"),
        // a child listed by an index that is not in the inventory: assumed to stay
        m("sha256:foreign-child", 50, &[]).listed_by("sha256:elsewhere"),
    ]);
    // without an untagged rule, deleting an index leaves its children to garbage collection
    let p = run(
        "[[rules]]\ntags = \"app-?\"\nkeep_most_recent = 1\n[[rules]]\ntags = \"*-amd64\"\nexpire_after_days = 7\n",
        &repos,
    );
    assert_eq!(deleted_tags(&p), ["app-1", "app-2-amd64"]);
    assert_eq!(deleted_manifests(&p), ["sha256:idx-old"]);
    assert_eq!(
        kept_reason(&p, "sha256:old-amd64"),
        "untagged; no rule deletes untagged manifests in this repository"
    );
    assert_eq!(
        kept_reason(&p, "sha256:new-arm64"),
        "listed by index sha256:idx-new, which stays"
    );
    assert_eq!(
        kept_reason(&p, "sha256:new-amd64"),
        "all its tags were deleted, but it is listed by index sha256:idx-new, which stays"
    );

    // with one, the children of the deleted index are no longer protected
    let p = run(
        "[[rules]]\ntags = \"app-?\"\nkeep_most_recent = 1\n[[rules]]\ndelete_untagged_after_days = 7\n",
        &repos,
    );
    assert_eq!(
        deleted_manifests(&p),
        ["sha256:idx-old", "sha256:old-amd64", "sha256:old-arm64"]
    );
    assert_eq!(
        kept_reason(&p, "sha256:new-arm64"),
        "listed by index sha256:idx-new, which stays"
    );
    assert_eq!(
        kept_reason(&p, "sha256:foreign-child"),
        "listed by index sha256:elsewhere, which stays"
    );
}

#[test]
fn delete_untagged_after_days() {
    let repos = vec![
        repo(
            "team/api/server",
            vec![
                m("sha256:old", 8, &[]),
                m("sha256:edge", 7, &[]),
                m("sha256:young", 1, &[]),
                m("sha256:tagged", 100, &["x"]),
            ],
        ),
        repo("team/api/server/nested", vec![m("sha256:deep", 100, &[])]),
        repo("team/web", vec![m("sha256:web", 100, &[])]),
    ];
    // tags is ignored for the untagged rule
    let p = run(
        "[[rules]]\nrepositories = \"api/*\"\ntags = \"nothing\"\ndelete_untagged_after_days = 7\n",
        &repos,
    );
    assert_eq!(deleted_manifests(&p), ["sha256:old"]);
    assert!(deleted_tags(&p).is_empty());
    assert_eq!(
        deletion_reason(&p, "sha256:old"),
        "untagged, pushed 8 days ago: rule 1 (delete untagged manifests pushed more than 7 days ago in repositories matching \"api/*\")"
    );
    assert!(kept_reason(&p, "sha256:edge").starts_with("untagged, pushed 7 days ago; rule 1"));
    assert_eq!(kept_reason(&p, "x"), "no rule applies to this tag");
    assert_eq!(
        kept_reason(&p, "sha256:deep"),
        "untagged; no rule deletes untagged manifests in this repository"
    );

    // `**` crosses segments
    let p = run(
        "[[rules]]\nrepositories = \"api/**\"\ndelete_untagged_after_days = 7\n",
        &repos,
    );
    assert_eq!(deleted_manifests(&p), ["sha256:old", "sha256:deep"]);
    let p = run("[[rules]]\ndelete_untagged_after_days = 7\n", &repos);
    assert_eq!(deleted_manifests(&p), ["sha256:old", "sha256:deep", "sha256:web"]);
}

#[test]
fn repositories_are_matched_relative_to_the_project() {
    let repos = vec![
        repo("team/api", vec![m("sha256:1", 9, &["a"]), m("sha256:2", 1, &["b"])]),
        repo("team/web", vec![m("sha256:3", 9, &["a"]), m("sha256:4", 1, &["b"])]),
        repo("other/api", vec![m("sha256:5", 9, &["a"]), m("sha256:6", 1, &["b"])]),
    ];
    let p = run("[[rules]]\nrepositories = \"api\"\nkeep_most_recent = 1\n", &repos);
    assert_eq!(
        p.deletions.iter().map(|d| d.repository()).collect::<Vec<_>>(),
        ["team/api", "team/api"]
    );
    // repositories of other projects are not even reported
    assert!(p.kept.iter().all(|k| k.repository().starts_with("team/")));

    // the library project holds single-component names
    let repos = vec![
        repo("alpine", vec![m("sha256:1", 9, &["a"]), m("sha256:2", 1, &["b"])]),
        repo("team/alpine", vec![m("sha256:3", 9, &["a"]), m("sha256:4", 1, &["b"])]),
    ];
    let p = plan(
        &parse("[[rules]]\nrepositories = \"alpine\"\nkeep_most_recent = 1\n"),
        "library",
        &repos,
        NOW,
    );
    assert_eq!(deleted_manifests(&p), ["sha256:1"]);
    assert_eq!(p.deletions[0].repository(), "alpine");
}

#[test]
fn counts_are_per_repository() {
    let repos = vec![
        repo("team/a", vec![m("sha256:1", 9, &["x"]), m("sha256:2", 1, &["y"])]),
        repo("team/b", vec![m("sha256:3", 9, &["x"])]),
    ];
    let p = run("[[rules]]\nkeep_most_recent = 1\n", &repos);
    assert_eq!(deleted_manifests(&p), ["sha256:1"]);
}

#[test]
fn plans_are_deterministic_and_ordered() {
    let make = |reverse: bool| {
        let mut a = vec![
            m("sha256:1", 9, &["z", "a"]),
            m("sha256:2", 8, &["m"]),
            m("sha256:3", 7, &[]),
            m("sha256:4", 1, &["keep"]),
        ];
        let mut repos = vec![
            repo("team/b", a.clone()),
            repo("team/a", {
                a.reverse();
                a.clone()
            }),
        ];
        if reverse {
            repos.reverse();
            for r in &mut repos {
                r.manifests.reverse();
                for m in &mut r.manifests {
                    m.tags.reverse();
                }
            }
        }
        repos
    };
    let policy = "[[rules]]\nkeep_most_recent = 1\n[[rules]]\ndelete_untagged_after_days = 1\n";
    let p1 = run(policy, &make(false));
    let p2 = run(policy, &make(true));
    assert_eq!(p1, p2);
    let keys: Vec<(String, String)> = p1
        .deletions
        .iter()
        .map(|d| match d {
            Deletion::Tag { repository, tag, .. } => (repository.clone(), format!("tag {tag}")),
            Deletion::Manifest { repository, digest, .. } => (repository.clone(), format!("manifest {digest}")),
        })
        .collect();
    let want: Vec<(String, String)> = ["team/a", "team/b"]
        .iter()
        .flat_map(|r| {
            [
                "tag a",
                "tag m",
                "tag z",
                "manifest sha256:1",
                "manifest sha256:2",
                "manifest sha256:3",
            ]
            .iter()
            .map(move |k| ((*r).to_owned(), (*k).to_owned()))
        })
        .collect();
    assert_eq!(keys, want);
}

#[test]
fn protected_tags_take_places_in_rankings() {
    let repos = r(vec![
        m("sha256:1", 1, &["pinned"]).immutable("pinned"),
        m("sha256:2", 2, &["b"]),
        m("sha256:3", 3, &["c"]),
    ]);
    let p = run("[[rules]]\nkeep_most_recent = 2\n", &repos);
    assert_eq!(deleted_tags(&p), ["c"]);
}

#[test]
fn plan_serializes_with_a_kind() {
    let repos = r(vec![m("sha256:1", 9, &["a"]), m("sha256:2", 1, &["b"])]);
    let p = run("[[rules]]\nkeep_most_recent = 1\n", &repos);
    let v = serde_json::to_value(&p).expect("serializes");
    assert_eq!(
        v["deletions"],
        serde_json::json!([
            {"kind": "tag", "repository": "team/api", "tag": "a", "digest": "sha256:1",
             "reason": "not kept by rule 1 (keep the 1 most recently pushed tags matching \"*\")"},
            {"kind": "manifest", "repository": "team/api", "digest": "sha256:1", "tags": ["a"],
             "reason": "all its tags were deleted by retention"}
        ])
    );
    assert_eq!(v["kept"][0]["kind"], "tag");
}
