//! Crate tests of `MetaStore` against a temporary SQLite file.

mod access;
mod blobs;
mod catalog;
mod common;
mod concurrency;
mod leases;
mod manifests;
mod quotas;
mod rate_limits;
mod statistics;
mod store;
mod tags;
mod transfer;
mod uploads;
mod webhooks;
