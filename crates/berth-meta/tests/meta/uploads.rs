//! Upload sessions.

use berth_meta::{HashState, MetaStore, UploadSession};
use berth_types::{RepositoryName, UploadId};

use crate::common::engine_tests;
use crate::common::{blob, digest, repo};

fn session(repository: &RepositoryName, offset: u64, updated_at_ms: i64) -> UploadSession {
    UploadSession {
        id: UploadId::generate(),
        repository: repository.clone(),
        offset,
        hash_state: None,
        storage_state: None,
        created_at_ms: updated_at_ms,
        updated_at_ms,
    }
}

fn state(version: i64, fill: u8) -> HashState {
    HashState {
        version,
        bytes: vec![fill; 104],
    }
}

engine_tests! {
    async fn sessions_belong_to_their_repository(t) {
        let app = repo("app");
        let created = UploadSession {
            hash_state: Some(state(1, 7)),
            ..session(&app, 5, 1000)
        };
        t.store.create_upload(&created).await?;
        assert_eq!(t.store.get_upload(&app, &created.id).await?, Some(created.clone()));
        assert_eq!(t.store.get_upload(&repo("other"), &created.id).await?, None);
        assert_eq!(t.store.get_upload(&app, &UploadId::generate()).await?, None);
        // The same id cannot be created twice.
        assert!(t.store.create_upload(&created).await.is_err());
        Ok(())
    }
}

engine_tests! {
    async fn update_upload_is_conditional_on_the_offset(t) {
        let app = repo("app");
        let created = session(&app, 0, 1000);
        t.store.create_upload(&created).await?;

        // Wrong expected offset: nothing changes.
        assert!(!t.store.update_upload(&created.id, 10, 20, Some(&state(1, 1)), None).await?);
        assert_eq!(t.store.get_upload(&app, &created.id).await?, Some(created.clone()));

        assert!(t.store.update_upload(&created.id, 0, 10, Some(&state(1, 1)), None).await?);
        let updated = t.store.get_upload(&app, &created.id).await?.expect("session exists");
        assert_eq!(updated.offset, 10);
        assert_eq!(updated.hash_state, Some(state(1, 1)));
        assert_eq!(updated.created_at_ms, 1000);
        assert!(
            updated.updated_at_ms > 1000,
            "updated_at is bumped: {}",
            updated.updated_at_ms
        );

        // A replay of the same update now fails.
        assert!(!t.store.update_upload(&created.id, 0, 10, Some(&state(1, 1)), None).await?);
        // No hash state clears the stored one.
        assert!(t.store.update_upload(&created.id, 10, 25, None, None).await?);
        let updated = t.store.get_upload(&app, &created.id).await?.expect("session exists");
        assert_eq!((updated.offset, updated.hash_state), (25, None));
        // Unknown session.
        assert!(!t.store.update_upload(&UploadId::generate(), 0, 1, None, None).await?);
        Ok(())
    }
}

engine_tests! {
    async fn concurrent_updates_from_the_same_offset_have_one_winner(t) {
        let app = repo("app");
        let created = session(&app, 0, 0);
        t.store.create_upload(&created).await?;
        let mut tasks = Vec::new();
        for n in 0..8u8 {
            let store: MetaStore = t.store.clone();
            let id = created.id.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .update_upload(&id, 0, 100 + u64::from(n), Some(&state(1, n)), None)
                    .await
            }));
        }
        let mut winners = Vec::new();
        for (n, task) in tasks.into_iter().enumerate() {
            if task.await?? {
                winners.push(n);
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        let stored = t.store.get_upload(&app, &created.id).await?.expect("session exists");
        assert_eq!(stored.offset, 100 + winners[0] as u64);
        Ok(())
    }
}

engine_tests! {
    async fn delete_upload_removes_the_session(t) {
        let app = repo("app");
        let created = session(&app, 3, 0);
        t.store.create_upload(&created).await?;
        assert!(t.store.upload_exists(&created.id).await?);
        t.store.delete_upload(&created.id).await?;
        assert!(!t.store.upload_exists(&created.id).await?);
        assert_eq!(t.store.get_upload(&app, &created.id).await?, None);
        assert!(!t.store.update_upload(&created.id, 3, 4, None, None).await?);
        // Deleting again is not an error.
        t.store.delete_upload(&created.id).await?;
        Ok(())
    }
}

engine_tests! {
    async fn complete_upload_turns_the_session_into_a_linked_blob(t) {
        let app = repo("app");
        let created = session(&app, 1001, 0);
        let unrelated = session(&app, 0, 0);
        t.store.create_upload(&created).await?;
        t.store.create_upload(&unrelated).await?;

        t.store.complete_upload(&created.id, &app, &blob(1)).await?;
        assert_eq!(t.store.get_upload(&app, &created.id).await?, None);
        assert_eq!(t.store.get_upload(&app, &unrelated.id).await?, Some(unrelated));
        assert_eq!(t.store.blob_in_repository(&app, &digest(1)).await?, Some(blob(1)));
        assert_eq!(t.store.list_repositories(None, 10).await?, vec![app.clone()]);
        Ok(())
    }
}

engine_tests! {
    async fn complete_upload_keeps_an_existing_blob_record(t) {
        let (app, other) = (repo("app"), repo("other"));
        t.store.link_blob(&other, &blob(1)).await?;
        let created = session(&app, 1001, 0);
        t.store.create_upload(&created).await?;
        let second_copy = berth_meta::BlobRecord {
            storage_key: "uploads/second-copy".to_owned(),
            ..blob(1)
        };
        t.store.complete_upload(&created.id, &app, &second_copy).await?;
        assert_eq!(t.store.blob_in_repository(&app, &digest(1)).await?, Some(blob(1)));
        assert_eq!(t.store.get_upload(&app, &created.id).await?, None);
        Ok(())
    }
}

engine_tests! {
    async fn complete_upload_does_not_consume_another_repositorys_session(t) {
        let (app, other) = (repo("app"), repo("other"));
        let created = session(&other, 0, 0);
        t.store.create_upload(&created).await?;
        t.store.complete_upload(&created.id, &app, &blob(1)).await?;
        assert_eq!(t.store.get_upload(&other, &created.id).await?, Some(created));
        Ok(())
    }
}

engine_tests! {
    async fn stale_sessions_are_listed_by_update_time(t) {
        let app = repo("app");
        let old = session(&app, 0, 100);
        let older = session(&app, 0, 50);
        let recent = session(&app, 0, 300);
        for s in [&old, &older, &recent] {
            t.store.create_upload(s).await?;
        }
        assert_eq!(
            t.store.list_uploads_updated_before(250).await?,
            vec![older.id.clone(), old.id.clone()]
        );
        // Strictly before.
        assert_eq!(t.store.list_uploads_updated_before(100).await?, vec![older.id.clone()]);
        assert!(t.store.list_uploads_updated_before(50).await?.is_empty());
        // An update makes a session recent.
        assert!(t.store.update_upload(&older.id, 0, 1, None, None).await?);
        assert_eq!(t.store.list_uploads_updated_before(250).await?, vec![old.id]);
        Ok(())
    }
}

engine_tests! {
    async fn storage_state_is_saved_with_the_offset(t) {
        let app = repo("app");
        let created = session(&app, 0, 1000);
        t.store.create_upload(&created).await?;
        let first = br#"{"staged":10}"#.as_slice();
        assert!(t.store.update_upload(&created.id, 0, 10, None, Some(first)).await?);
        let updated = t.store.get_upload(&app, &created.id).await?.expect("session");
        assert_eq!(updated.storage_state.as_deref(), Some(first));
        // A refused (stale) update leaves both the offset and the state.
        assert!(!t.store.update_upload(&created.id, 0, 99, None, Some(b"other")).await?);
        let second = br#"{"multipart":"m","parts":[{"id":"e","size":5242880}],"staged":3}"#.as_slice();
        assert!(
            t.store
                .update_upload(&created.id, 10, 5_242_883, None, Some(second))
                .await?
        );
        let updated = t.store.get_upload(&app, &created.id).await?.expect("session");
        assert_eq!(
            (updated.offset, updated.storage_state.as_deref()),
            (5_242_883, Some(second))
        );
        Ok(())
    }
}

engine_tests! {
    /// Object-storage keys are unrecorded when neither a blob record names them nor the upload
    /// that wrote them still has a session.
    async fn unrecorded_storage_keys_skip_recorded_keys_and_live_uploads(t) {
        let app = repo("app");
        let live = session(&app, 0, 1000);
        t.store.create_upload(&live).await?;
        let committed = session(&app, 0, 1000);
        t.store.create_upload(&committed).await?;
        let recorded = berth_meta::BlobRecord {
            storage_key: format!("blobs/{}", committed.id),
            ..blob(7)
        };
        t.store.complete_upload(&committed.id, &app, &recorded).await?;
        let crashed = UploadId::generate();
        let candidates = vec![
            (format!("blobs/{}", live.id), live.id.clone()),
            (recorded.storage_key.clone(), committed.id.clone()),
            (format!("blobs/{crashed}"), crashed.clone()),
        ];
        assert_eq!(
            t.store.unrecorded_storage_keys(&candidates).await?,
            vec![format!("blobs/{crashed}")]
        );
        Ok(())
    }
}

engine_tests! {
    /// A duplicate upload links the recorded blob only while its record stands: garbage
    /// collection (on any replica) may have deleted it, and re-creating it would name bytes that
    /// are being deleted.
    async fn a_duplicate_links_the_recorded_blob_only_while_its_record_stands(t) {
        let (app, other) = (repo("app"), repo("other"));
        t.store.link_blob(&other, &blob(1)).await?;
        let first = session(&app, 1001, 0);
        t.store.create_upload(&first).await?;
        assert!(t.store.complete_upload_with_recorded_blob(&first.id, &app, &blob(1)).await?);
        assert_eq!(t.store.blob_in_repository(&app, &digest(1)).await?, Some(blob(1)));
        assert_eq!(t.store.get_upload(&app, &first.id).await?, None);

        // The record goes (as garbage collection deletes it: links first, then the record).
        let raw = t.any().await?;
        sqlx::query("DELETE FROM repository_blobs WHERE blob_digest = $1")
            .bind(digest(1).as_str())
            .execute(&raw)
            .await?;
        sqlx::query("DELETE FROM blobs WHERE digest = $1")
            .bind(digest(1).as_str())
            .execute(&raw)
            .await?;
        raw.close().await;
        let second = session(&app, 1001, 0);
        t.store.create_upload(&second).await?;
        assert!(!t.store.complete_upload_with_recorded_blob(&second.id, &app, &blob(1)).await?);
        // Nothing was written: no record, no link, and the session stays for the real commit.
        assert_eq!(t.store.find_blob(&digest(1)).await?, None);
        assert!(t.store.get_upload(&app, &second.id).await?.is_some());
        Ok(())
    }
}

engine_tests! {
    async fn open_sessions_are_counted(t) {
        assert_eq!(t.store.count_uploads().await?, 0);
        let (app, other) = (repo("app"), repo("other"));
        let first = session(&app, 0, 1000);
        t.store.create_upload(&first).await?;
        t.store.create_upload(&session(&other, 0, 1000)).await?;
        assert_eq!(t.store.count_uploads().await?, 2);
        t.store.delete_upload(&first.id).await?;
        assert_eq!(t.store.count_uploads().await?, 1);
        Ok(())
    }
}
