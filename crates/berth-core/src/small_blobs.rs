//! Small blobs kept in the database: a closing request (`PUT` with body, or single `POST`) whose
//! body declares at most [`MAX_INLINE_BLOB_BYTES`] is read into memory, verified, and committed
//! with its record in one durable transaction instead of a file (see `docs/ARCHITECTURE.md`).
//! Anything else is handed back, untouched, to the general upload path.

use berth_blob::ByteStream;
use berth_meta::{BlobRecord, MetaError, UploadSession};
use berth_types::{Digest, RepositoryName};
use futures::StreamExt;

use crate::uploads::Chunk;
use crate::{Registry, RegistryError};

impl Registry {
    /// Commits a small blob received whole in the closing request (already verified against
    /// `digest`) into the database: one durable write, no file.
    pub(crate) async fn commit_inline(
        &self,
        session: &UploadSession,
        repository: &RepositoryName,
        digest: &Digest,
        content: Vec<u8>,
    ) -> Result<BlobRecord, RegistryError> {
        // The storage quota is checked in the write's transaction: nothing is moved into place
        // before it, so no earlier check is needed.
        // Garbage collection must not delete the blob between the look-up and the record.
        let _digest_guard = self.digest_locks.lock(digest).await;
        let finished = if let Some(existing) = self.meta.find_blob(digest).await?
            && self.blob_present(&existing).await?
        {
            self.meta
                .complete_upload(&session.id, repository, &existing)
                .await
                .map(|()| existing)
        } else {
            let record = BlobRecord {
                digest: digest.clone(),
                size: content.len() as u64,
                storage_key: berth_meta::INLINE_STORAGE_KEY.to_owned(),
            };
            self.meta
                .complete_upload_inline(&session.id, repository, &record, content)
                .await
                .map(|()| record)
        };
        let record = match finished {
            Ok(record) => record,
            Err(refused @ MetaError::QuotaExceeded(_)) => {
                return Err(self.end_refused_upload(session, refused.into()).await);
            }
            Err(error) => return Err(error.into()),
        };
        // An earlier attempt (a PUT refused for its digest) may have created storage. On object
        // storage, removing it costs a listing: done only when an attempt left a state (a bare
        // marker object left otherwise is removed by the purge of upload data without session).
        if self.blobs.content_addressed() || session.storage_state.is_some() {
            let state = session.storage_state.clone().map(berth_blob::UploadState);
            self.blobs.delete_upload(&session.id, state.as_ref()).await?;
        }
        Ok(record)
    }
}

/// Largest blob kept in the database instead of the blob store: 64 KiB (config blobs, small
/// layers, signatures and attestations).
const MAX_INLINE_BLOB_BYTES: u64 = 64 << 10;

/// What [`collect_small_body`] found.
pub(crate) enum SmallBody {
    /// The whole body, exactly its declared length (at most [`MAX_INLINE_BLOB_BYTES`]).
    Whole(Vec<u8>),
    /// Not a small, well-formed body: the chunk to append instead, with what was already read
    /// put back in front of the rest.
    Other(Chunk),
}

/// Reads a closing chunk into memory when it declares at most [`MAX_INLINE_BLOB_BYTES`] and
/// delivers exactly that. Never reads more than one body frame past the declared length.
pub(crate) async fn collect_small_body(chunk: Chunk) -> SmallBody {
    let declared = match chunk.range {
        Some((start, end)) if start == 0 => Some(end - start + 1),
        Some(_) => None,
        None => chunk.length,
    };
    let Some(declared) = declared.filter(|&length| length <= MAX_INLINE_BLOB_BYTES) else {
        return SmallBody::Other(chunk);
    };
    let Chunk {
        mut body,
        range,
        length,
    } = chunk;
    let mut frames = Vec::new();
    let mut total = 0u64;
    let mut failure = None;
    let mut ended = false;
    // Read until the body ends or goes past the declared length (one frame at most).
    while !ended && failure.is_none() && total <= declared {
        match body.next().await {
            Some(Ok(frame)) => {
                total += frame.len() as u64;
                frames.push(frame);
            }
            Some(Err(error)) => failure = Some(error),
            None => ended = true,
        }
    }
    if ended && failure.is_none() && total == declared {
        let mut content = Vec::with_capacity(frames.iter().map(bytes::Bytes::len).sum());
        for frame in &frames {
            content.extend_from_slice(frame);
        }
        return SmallBody::Whole(content);
    }
    let rest = (!ended && failure.is_none()).then_some(body);
    let mut replayed = replay(frames, failure, rest);
    replayed.range = range;
    replayed.length = length;
    SmallBody::Other(replayed)
}

/// A chunk whose body yields `frames`, then `failure` if any, then `rest` if any.
pub(crate) fn replay(frames: Vec<bytes::Bytes>, failure: Option<std::io::Error>, rest: Option<ByteStream>) -> Chunk {
    let length = frames.iter().map(|frame| frame.len() as u64).sum();
    let head = futures::stream::iter(frames.into_iter().map(Ok).chain(failure.map(Err)));
    let body: ByteStream = match rest {
        Some(rest) => Box::pin(head.chain(rest)),
        None => Box::pin(head),
    };
    Chunk {
        body,
        range: None,
        length: Some(length),
    }
}
