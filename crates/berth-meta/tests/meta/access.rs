//! Users, projects and project members.

use berth_auth::{AccountName, ProjectName, Role};
use berth_meta::{MemberRecord, MetaError, NewUser};

use crate::common::engine_tests;

fn user(name: &str) -> AccountName {
    AccountName::parse(name).expect("test user name")
}

fn project(name: &str) -> ProjectName {
    ProjectName::parse(name).expect("test project name")
}

fn new_user(name: &str, admin: bool) -> NewUser {
    NewUser {
        name: user(name),
        password_hash: format!("hash-of-{name}"),
        admin,
    }
}

engine_tests! {
    async fn users_are_created_once_found_changed_and_deleted(t) {
        let alice = t.store.create_user(&new_user("alice", true)).await?;
        assert!(alice.admin && !alice.disabled);
        t.store.create_user(&new_user("bob", false)).await?;
        let taken = t.store.create_user(&new_user("alice", false)).await;
        assert!(
            matches!(&taken, Err(MetaError::Conflict { what }) if what.contains("alice")),
            "{taken:?}"
        );

        assert_eq!(t.store.find_user(&user("alice")).await?, Some(alice.clone()));
        assert_eq!(t.store.find_user(&user("carol")).await?, None);
        let names: Vec<String> = t
            .store
            .list_users()
            .await?
            .into_iter()
            .map(|u| u.name.to_string())
            .collect();
        assert_eq!(names, ["alice", "bob"]);

        assert!(t.store.set_user_password_hash(&user("bob"), "new-hash".into()).await?);
        assert!(t.store.set_user_disabled(&user("bob"), true).await?);
        assert!(t.store.set_user_admin(&user("bob"), true).await?);
        let (bob, hash) = t.store.user_with_password_hash(&user("bob")).await?.expect("bob");
        assert_eq!(hash, "new-hash");
        assert!(bob.disabled && bob.admin);
        assert!(!t.store.set_user_disabled(&user("carol"), true).await?);
        assert!(!t.store.set_user_password_hash(&user("carol"), "x".into()).await?);

        assert!(t.store.delete_user(&user("bob")).await?);
        assert!(!t.store.delete_user(&user("bob")).await?);
        assert_eq!(t.store.find_user(&user("bob")).await?, None);

        // Everything survives a restart.
        let t = t.reopen().await?;
        assert_eq!(t.store.find_user(&user("alice")).await?, Some(alice));
        Ok(())
    }
}

engine_tests! {
    async fn importing_users_keeps_existing_ones_unchanged(t) {
        t.store.create_user(&new_user("alice", false)).await?;
        let import = t
            .store
            .import_users(vec![
                new_user("alice", true),
                new_user("bob", false),
                new_user("carol", false),
            ])
            .await?;
        assert_eq!(import.created, [user("bob"), user("carol")]);
        assert_eq!(import.existing, [user("alice")]);
        let (alice, hash) = t.store.user_with_password_hash(&user("alice")).await?.expect("alice");
        assert_eq!(hash, "hash-of-alice");
        assert!(!alice.admin, "an import must not change an existing user");
        Ok(())
    }
}

engine_tests! {
    async fn projects_and_members(t) {
        let team = t.store.create_project(&project("team-a"), false).await?;
        assert!(!team.public);
        assert!(matches!(
            t.store.create_project(&project("team-a"), true).await,
            Err(MetaError::Conflict { .. })
        ));
        t.store.create_project(&project("public-b"), true).await?;
        let names: Vec<String> = t
            .store
            .list_projects()
            .await?
            .into_iter()
            .map(|p| p.name.to_string())
            .collect();
        assert_eq!(names, ["public-b", "team-a"]);
        assert!(t.store.set_project_public(&project("team-a"), true).await?);
        assert!(t.store.find_project(&project("team-a")).await?.expect("team-a").public);
        assert!(!t.store.set_project_public(&project("nope"), true).await?);

        t.store.create_user(&new_user("alice", false)).await?;
        t.store.create_user(&new_user("bob", false)).await?;
        t.store
            .set_member(&project("team-a"), &user("alice"), Role::Owner)
            .await?;
        t.store
            .set_member(&project("team-a"), &user("bob"), Role::Guest)
            .await?;
        // Setting again replaces the role.
        t.store
            .set_member(&project("team-a"), &user("bob"), Role::Developer)
            .await?;
        assert_eq!(
            t.store.list_members(&project("team-a")).await?,
            [
                MemberRecord {
                    user: user("alice"),
                    role: Role::Owner
                },
                MemberRecord {
                    user: user("bob"),
                    role: Role::Developer
                },
            ]
        );
        assert_eq!(
            t.store.member_role(&project("team-a"), &user("bob")).await?,
            Some(Role::Developer)
        );
        assert_eq!(t.store.member_role(&project("public-b"), &user("bob")).await?, None);

        let missing_project = t.store.set_member(&project("nope"), &user("bob"), Role::Guest).await;
        assert!(
            matches!(&missing_project, Err(MetaError::NotFound { what }) if what == "no project nope"),
            "{missing_project:?}"
        );
        let missing_user = t
            .store
            .set_member(&project("team-a"), &user("carol"), Role::Guest)
            .await;
        assert!(
            matches!(&missing_user, Err(MetaError::NotFound { what }) if what == "no user carol"),
            "{missing_user:?}"
        );

        assert!(t.store.remove_member(&project("team-a"), &user("alice")).await?);
        assert!(!t.store.remove_member(&project("team-a"), &user("alice")).await?);
        // Deleting a user removes their memberships.
        t.store.delete_user(&user("bob")).await?;
        assert_eq!(t.store.list_members(&project("team-a")).await?, []);
        Ok(())
    }
}

engine_tests! {
    async fn robots_and_tokens_keep_their_rules_and_digests(t) {
        use berth_auth::{AccessRule, RobotName};
        use berth_meta::{NewRobot, NewToken};
        t.store.create_project(&project("team-a"), false).await?;
        t.store.create_user(&new_user("alice", false)).await?;
        let rules: Vec<AccessRule> = vec!["team-a/*:pull,push".parse()?, "team-a/db:delete".parse()?];
        let ci = RobotName::new(Some(project("team-a")), "ci")?;
        let robot = NewRobot {
            name: ci.clone(),
            description: "CI pushes".into(),
            rules: rules.clone(),
            secret_digest: "digest-1".into(),
            expires_at_ms: Some(123),
        };
        let created = t.store.create_robot(&robot).await?;
        assert_eq!(
            (created.rules.clone(), created.expires_at_ms, created.disabled),
            (rules.clone(), Some(123), false)
        );
        assert!(matches!(
            t.store.create_robot(&robot).await,
            Err(MetaError::Conflict { .. })
        ));
        let orphan = NewRobot {
            name: RobotName::new(Some(project("nope")), "ci")?,
            ..robot.clone()
        };
        assert!(matches!(
            t.store.create_robot(&orphan).await,
            Err(MetaError::NotFound { .. })
        ));
        let global = NewRobot {
            name: RobotName::new(None, "deployer")?,
            ..robot.clone()
        };
        t.store.create_robot(&global).await?;

        let (found, digest) = t.store.robot_with_secret_digest(&ci).await?.expect("robot");
        assert_eq!((found, digest.as_str()), (created, "digest-1"));
        let team_robots: Vec<String> = t
            .store
            .list_robots(Some(&project("team-a")))
            .await?
            .iter()
            .map(|r| r.name.login())
            .collect();
        assert_eq!(team_robots, ["robot$team-a+ci"]);
        assert_eq!(t.store.list_robots(None).await?.len(), 2);
        assert!(t.store.set_robot_disabled(&ci, true).await?);
        assert!(t.store.robot_with_secret_digest(&ci).await?.expect("robot").0.disabled);
        assert!(t.store.delete_robot(&ci).await?);
        assert!(!t.store.delete_robot(&ci).await?);
        assert_eq!(t.store.robot_with_secret_digest(&ci).await?, None);

        let token = NewToken {
            user: user("alice"),
            lookup: "0123456789abcdef".into(),
            secret_digest: "digest-2".into(),
            description: "laptop".into(),
            rules: rules.clone(),
            expires_at_ms: None,
        };
        t.store.create_token(&token).await?;
        let nobody = NewToken {
            user: user("nobody"),
            lookup: "fedcba9876543210".into(),
            ..token.clone()
        };
        assert!(matches!(
            t.store.create_token(&nobody).await,
            Err(MetaError::NotFound { .. })
        ));
        let (found, digest) = t
            .store
            .token_with_secret_digest("0123456789abcdef")
            .await?
            .expect("token");
        assert_eq!(
            (found.user.as_str(), found.rules.clone(), digest.as_str()),
            ("alice", rules, "digest-2")
        );
        assert_eq!(t.store.list_tokens(&user("alice")).await?.len(), 1);
        // A user's tokens go with the user.
        t.store.delete_user(&user("alice")).await?;
        assert_eq!(t.store.token_with_secret_digest("0123456789abcdef").await?, None);
        assert!(!t.store.delete_token("0123456789abcdef").await?);
        Ok(())
    }
}
