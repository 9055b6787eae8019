//! Users, projects and project members.

use berth_auth::{AccountName, ProjectName, Role};
use berth_meta::{MemberRecord, MetaError, NewUser};

use crate::common::TestStore;

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

#[tokio::test]
async fn users_are_created_once_found_changed_and_deleted() -> anyhow::Result<()> {
    let t = TestStore::new().await?;
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

#[tokio::test]
async fn importing_users_keeps_existing_ones_unchanged() -> anyhow::Result<()> {
    let t = TestStore::new().await?;
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

#[tokio::test]
async fn projects_and_members() -> anyhow::Result<()> {
    let t = TestStore::new().await?;
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
