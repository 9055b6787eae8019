//! Reading what a handler left of a request body before the response goes out.
//!
//! Some answers come before the body has been read: an out-of-order chunk (`416`), an
//! oversized manifest (`413`), an unknown upload session (`404`), an invalid name or digest.
//! If the connection were then closed with request bytes still unread, the kernel would reset
//! it, and a client still sending its body would see a broken pipe instead of the error
//! response it needs to resume (distribution-spec §Pushing a blob in chunks: "To get the
//! current status after a 416 error…"). So [`track`] remembers a body that was dropped
//! unfinished and [`finish`] reads and discards the rest of it (up to [`DRAIN_LIMIT`] bytes
//! and [`DRAIN_TIME`]) before the response is sent, the way web servers linger on close.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures::{Stream, StreamExt};

/// Most bytes read and discarded after a response is decided. Past this the connection is
/// closed instead.
pub const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;
/// Longest time spent reading and discarding.
pub const DRAIN_TIME: Duration = Duration::from_secs(30);

/// The part of a request body the handler did not read, if it dropped it unfinished.
#[derive(Clone)]
pub struct Leftover {
    slot: Arc<Mutex<Option<BodyDataStream>>>,
    started: Arc<AtomicBool>,
    expects_continue: bool,
}

/// Replaces the request body with one that hands itself back to the returned [`Leftover`] when
/// dropped before its end. A request without a body (most `GET`, `HEAD` and `DELETE`s) is
/// returned as it is, with no [`Leftover`]: nothing is added to its path.
pub fn track(request: Request) -> (Request, Option<Leftover>) {
    if request.body().is_end_stream() {
        return (request, None);
    }
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
    let (parts, body) = request.into_parts();
    let leftover = Leftover {
        slot: Arc::default(),
        started: Arc::default(),
        expects_continue,
    };
    let tracked = Tracked {
        inner: Some(body.into_data_stream()),
        leftover: leftover.clone(),
    };
    (Request::from_parts(parts, Body::from_stream(tracked)), Some(leftover))
}

/// Reads and discards what the handler left of the body, so that the client gets `response`
/// rather than a reset connection. Gives up (and marks the response `Connection: close`) past
/// [`DRAIN_LIMIT`] or [`DRAIN_TIME`]. A client that sent `Expect: 100-continue` and whose body
/// was never read has not sent it: nothing is read then.
pub async fn finish(leftover: Leftover, response: &mut Response) {
    let Some(mut rest) = leftover.slot.lock().unwrap_or_else(PoisonError::into_inner).take() else {
        return;
    };
    if leftover.expects_continue && !leftover.started.load(Ordering::Relaxed) {
        return;
    }
    let drained = tokio::time::timeout(DRAIN_TIME, async {
        let mut discarded = 0u64;
        while let Some(item) = rest.next().await {
            match item {
                Ok(bytes) => {
                    discarded += bytes.len() as u64;
                    if discarded > DRAIN_LIMIT {
                        return false;
                    }
                }
                // The client went away: nothing left to protect.
                Err(_) => return true,
            }
        }
        true
    })
    .await
    .unwrap_or(false);
    if !drained {
        tracing::debug!("request body left unread; closing the connection after the response");
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

struct Tracked {
    inner: Option<BodyDataStream>,
    leftover: Leftover,
}

impl Stream for Tracked {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        this.leftover.started.store(true, Ordering::Relaxed);
        let item = Pin::new(inner).poll_next(cx);
        if matches!(item, Poll::Ready(None | Some(Err(_)))) {
            // Finished, or failed (the client is gone): nothing to hand back.
            this.inner = None;
        }
        item
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take()
            && !inner.is_end_stream()
        {
            *self.leftover.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(inner);
        }
    }
}
