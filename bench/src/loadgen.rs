//! The request-rate load generator, on hyper 1: N keep-alive connections, each a loop of one
//! request at a time, for a warm-up then a measured window; exact latency percentiles.
//!
//! Not wrk: Debian's wrk 4.1.0 never completes a `HEAD` whose response carries a non-zero
//! `Content-Length` (its HTTP parser waits for a body that never comes: 0 requests in 2 s
//! against registry:2's `HEAD /v2/`), so it cannot measure `manifest_head_tag`. One load
//! generator for all rate workloads keeps them comparable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::figures::Latency;
use crate::servers::Server;

/// What to send and for how long.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// GET or HEAD.
    pub method: Method,
    /// Path and query, e.g. `/v2/_catalog?n=100`.
    pub path: String,
    /// Extra request headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Concurrent connections (each with one request in flight).
    pub connections: usize,
    /// Unmeasured warm-up.
    pub warmup: Duration,
    /// Measured window.
    pub duration: Duration,
    /// Every response body must have exactly this length (0 for HEAD); others count as errors.
    pub expect_body_len: usize,
}

/// The outcome of one run against one server.
#[derive(Clone, Debug)]
pub struct LoadResult {
    /// Requests completed with the expected status and body inside the window.
    pub ok: u64,
    /// Failed requests inside the window: transport errors, non-2xx, wrong body length.
    pub errors: u64,
    /// Requests still in flight when the window closed.
    pub abandoned: u64,
    /// The first failure, described.
    pub first_error: Option<String>,
    /// The measured window, in seconds.
    pub seconds: f64,
    /// Server CPU seconds used during the window.
    pub cpu_seconds: f64,
    /// Latency of the successful requests.
    pub latency: Latency,
}

impl LoadResult {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds
    }

    /// Server CPU microseconds per successful request (None when none succeeded).
    pub fn cpu_us_per_request(&self) -> Option<f64> {
        (self.ok > 0).then(|| self.cpu_seconds * 1e6 / self.ok as f64)
    }
}

#[derive(Default)]
struct WorkerStats {
    ok: u64,
    errors: u64,
    abandoned: u64,
    first_error: Option<String>,
    latencies_us: Vec<u32>,
}

impl WorkerStats {
    fn error(&mut self, counted: bool, message: String) {
        if counted {
            self.errors += 1;
        }
        if self.first_error.is_none() {
            self.first_error = Some(message);
        }
    }
}

/// Runs `spec` against `server` and samples the server's CPU time over the measured window.
pub async fn run(server: &Server, spec: &LoadSpec) -> Result<LoadResult> {
    let spec = Arc::new(spec.clone());
    let begin = Instant::now();
    let start = begin + spec.warmup;
    let end = start + spec.duration;
    let workers: Vec<_> = (0..spec.connections)
        .map(|_| tokio::spawn(worker(server.addr, spec.clone(), start, end)))
        .collect();
    tokio::time::sleep_until(start).await;
    let cpu0 = server.cpu_seconds()?;
    tokio::time::sleep_until(end).await;
    let cpu1 = server.cpu_seconds()?;
    let mut total = WorkerStats::default();
    for w in workers {
        let s = w.await?;
        total.ok += s.ok;
        total.errors += s.errors;
        total.abandoned += s.abandoned;
        if total.first_error.is_none() {
            total.first_error = s.first_error;
        }
        total.latencies_us.extend(s.latencies_us);
    }
    total.latencies_us.sort_unstable();
    Ok(LoadResult {
        ok: total.ok,
        errors: total.errors,
        abandoned: total.abandoned,
        first_error: total.first_error,
        seconds: spec.duration.as_secs_f64(),
        cpu_seconds: cpu1 - cpu0,
        latency: latency(&total.latencies_us),
    })
}

/// Percentiles of sorted microsecond latencies (nearest rank).
fn latency(sorted: &[u32]) -> Latency {
    let pct = |p: f64| -> f64 {
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        f64::from(sorted[rank - 1])
    };
    Latency {
        p50_us: pct(0.50),
        p90_us: pct(0.90),
        p99_us: pct(0.99),
        max_us: sorted.last().map_or(f64::NAN, |&m| f64::from(m)),
    }
}

/// One connection's loop; reconnects after a transport error. Requests that complete before
/// `start` are warm-up and not counted; the one in flight at `end` is abandoned.
async fn worker(addr: SocketAddr, spec: Arc<LoadSpec>, start: Instant, end: Instant) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let host = HeaderValue::from_str(&addr.to_string()).ok();
    'connect: while Instant::now() < end {
        let stream = match tokio::time::timeout_at(end, TcpStream::connect(addr)).await {
            Err(_) => break,
            Ok(Err(e)) => {
                stats.error(Instant::now() >= start, format!("connect: {e}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(e) => {
                stats.error(Instant::now() >= start, format!("handshake: {e}"));
                continue;
            }
        };
        let driver = tokio::spawn(conn);
        loop {
            if Instant::now() >= end {
                driver.abort();
                break 'connect;
            }
            let mut builder = Request::builder().method(spec.method.clone()).uri(spec.path.as_str());
            if let Some(host) = &host {
                builder = builder.header(http::header::HOST, host.clone());
            }
            for (name, value) in &spec.headers {
                builder = builder.header(name, value);
            }
            let req = match builder.body(Empty::<Bytes>::new()) {
                Ok(r) => r,
                Err(e) => {
                    stats.error(true, format!("building request: {e}"));
                    driver.abort();
                    break 'connect;
                }
            };
            let sent = Instant::now();
            let exchange = async {
                sender.ready().await?;
                let resp = sender.send_request(req).await?;
                let status = resp.status();
                let mut body = resp.into_body();
                let mut len = 0usize;
                while let Some(frame) = body.frame().await {
                    if let Ok(data) = frame?.into_data() {
                        len += data.len();
                    }
                }
                Ok::<_, hyper::Error>((status, len))
            };
            match tokio::time::timeout_at(end, exchange).await {
                Err(_) => {
                    stats.abandoned += 1;
                    driver.abort();
                    break 'connect;
                }
                Ok(Err(e)) => {
                    stats.error(Instant::now() >= start, format!("request: {e}"));
                    driver.abort();
                    continue 'connect;
                }
                Ok(Ok((status, len))) => {
                    let done = Instant::now();
                    if done < start {
                        continue;
                    }
                    if !status.is_success() {
                        stats.error(true, format!("status {status}"));
                    } else if len != spec.expect_body_len {
                        stats.error(true, format!("body of {len} bytes, expected {}", spec.expect_body_len));
                    } else {
                        stats.ok += 1;
                        let us = (done - sent).as_micros().min(u128::from(u32::MAX)) as u32;
                        stats.latencies_us.push(us);
                    }
                }
            }
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        let l = latency(&v);
        assert_eq!((l.p50_us, l.p90_us, l.p99_us, l.max_us), (50.0, 90.0, 99.0, 100.0));
        let one = latency(&[7]);
        assert_eq!(one.p99_us, 7.0);
        assert!(latency(&[]).p50_us.is_nan());
    }
}
