//! Blob records and repository links.

use berth_meta::{BlobRecord, UnlinkBlobOutcome};

use crate::common::engine_tests;
use crate::common::{blob, digest, image, link_all, repo};

engine_tests! {
    async fn linked_blobs_are_found_globally_and_per_repository(t) {
        let (app, other) = (repo("app"), repo("other"));
        assert_eq!(t.store.find_blob(&digest(1)).await?, None);
        assert_eq!(t.store.blob_in_repository(&app, &digest(1)).await?, None);

        t.store.link_blob(&app, &blob(1)).await?;
        assert_eq!(t.store.find_blob(&digest(1)).await?, Some(blob(1)));
        assert_eq!(t.store.blob_in_repository(&app, &digest(1)).await?, Some(blob(1)));
        // Known globally, but not linked in `other`.
        assert_eq!(t.store.blob_in_repository(&other, &digest(1)).await?, None);
        assert_eq!(t.store.blob_in_repository(&app, &digest(2)).await?, None);
        Ok(())
    }
}

engine_tests! {
    async fn link_blob_is_idempotent_and_keeps_the_first_record(t) {
        let (app, other) = (repo("app"), repo("other"));
        t.store.link_blob(&app, &blob(1)).await?;
        t.store.link_blob(&app, &blob(1)).await?;

        // The same digest committed again elsewhere, with another storage key (and a wrong size):
        // the existing record wins, and the new repository is linked to it.
        let duplicate = BlobRecord {
            storage_key: "elsewhere".to_owned(),
            size: 1,
            ..blob(1)
        };
        t.store.link_blob(&other, &duplicate).await?;
        assert_eq!(t.store.find_blob(&digest(1)).await?, Some(blob(1)));
        assert_eq!(t.store.blob_in_repository(&other, &digest(1)).await?, Some(blob(1)));
        assert_eq!(t.store.list_repositories(None, 10).await?, vec![app, other]);
        Ok(())
    }
}

engine_tests! {
    async fn mount_links_a_blob_only_from_a_source_that_has_it(t) {
        let (source, target, empty) = (repo("source"), repo("target"), repo("empty"));
        link_all(&t.store, &source, &[1]).await?;
        link_all(&t.store, &repo("elsewhere"), &[2]).await?;

        // Known globally but not in the source: nothing is written, not even the target repository.
        assert_eq!(t.store.mount_blob(&target, &source, &digest(2)).await?, None);
        assert_eq!(t.store.mount_blob(&target, &empty, &digest(1)).await?, None);
        assert_eq!(t.store.blob_in_repository(&target, &digest(2)).await?, None);
        assert!(!t.store.list_repositories(None, 10).await?.contains(&target));

        // In the source: linked into a new target, idempotently.
        assert_eq!(t.store.mount_blob(&target, &source, &digest(1)).await?, Some(blob(1)));
        assert_eq!(t.store.mount_blob(&target, &source, &digest(1)).await?, Some(blob(1)));
        assert_eq!(t.store.blob_in_repository(&target, &digest(1)).await?, Some(blob(1)));
        assert!(t.store.list_repositories(None, 10).await?.contains(&target));

        // The source unlinks it: the target keeps its own link, a third repository cannot mount it.
        assert_eq!(
            t.store.unlink_blob(&source, &digest(1)).await?,
            UnlinkBlobOutcome::Unlinked
        );
        assert_eq!(t.store.blob_in_repository(&target, &digest(1)).await?, Some(blob(1)));
        assert_eq!(t.store.mount_blob(&repo("third"), &source, &digest(1)).await?, None);
        // Nor does the target, from a source without it, though the target has it itself.
        assert_eq!(t.store.mount_blob(&target, &source, &digest(1)).await?, None);
        Ok(())
    }
}

engine_tests! {
    async fn unlink_blob_removes_only_the_link(t) {
        let (app, other) = (repo("app"), repo("other"));
        link_all(&t.store, &app, &[1]).await?;
        link_all(&t.store, &other, &[1]).await?;

        assert_eq!(
            t.store.unlink_blob(&repo("nowhere"), &digest(1)).await?,
            UnlinkBlobOutcome::NotLinked
        );
        assert_eq!(
            t.store.unlink_blob(&app, &digest(2)).await?,
            UnlinkBlobOutcome::NotLinked
        );
        assert_eq!(
            t.store.unlink_blob(&app, &digest(1)).await?,
            UnlinkBlobOutcome::Unlinked
        );
        assert_eq!(
            t.store.unlink_blob(&app, &digest(1)).await?,
            UnlinkBlobOutcome::NotLinked
        );

        assert_eq!(t.store.blob_in_repository(&app, &digest(1)).await?, None);
        assert_eq!(t.store.blob_in_repository(&other, &digest(1)).await?, Some(blob(1)));
        assert_eq!(t.store.find_blob(&digest(1)).await?, Some(blob(1)));
        // The repository stays.
        assert!(t.store.repository_exists(&app).await?);
        Ok(())
    }
}

engine_tests! {
    async fn unlink_blob_is_refused_while_a_manifest_references_it(t) {
        let (app, other) = (repo("app"), repo("other"));
        link_all(&t.store, &app, &[1, 2]).await?;
        link_all(&t.store, &other, &[1]).await?;
        t.store.put_manifest(&image(&app, 20, &[1, 2])).await?;
        t.store.put_manifest(&image(&app, 21, &[1])).await?;

        assert_eq!(
            t.store.unlink_blob(&app, &digest(1)).await?,
            UnlinkBlobOutcome::ReferencedBy(digest(20).to_string()) // the smallest referencing digest
        );
        assert_eq!(t.store.blob_in_repository(&app, &digest(1)).await?, Some(blob(1)));
        // A manifest in another repository does not hold this repository's link.
        assert_eq!(
            t.store.unlink_blob(&other, &digest(1)).await?,
            UnlinkBlobOutcome::Unlinked
        );

        t.store.delete_manifest(&app, &digest(20), "tester", &[]).await?;
        assert_eq!(
            t.store.unlink_blob(&app, &digest(1)).await?,
            UnlinkBlobOutcome::ReferencedBy(digest(21).to_string())
        );
        assert_eq!(
            t.store.unlink_blob(&app, &digest(2)).await?,
            UnlinkBlobOutcome::Unlinked
        );
        t.store.delete_manifest(&app, &digest(21), "tester", &[]).await?;
        assert_eq!(
            t.store.unlink_blob(&app, &digest(1)).await?,
            UnlinkBlobOutcome::Unlinked
        );
        Ok(())
    }
}
