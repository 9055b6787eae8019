//! Background jobs run on exactly one replica: several `berth serve` processes on one data
//! directory (one metadata database) share the job leases; when the holder dies, another
//! replica takes its jobs over; a replica that stops cleanly hands them over at once.

mod common;

use std::path::Path;
use std::time::Duration;

use berth_testkit::BerthProcess;
use serde_json::Value;

/// Starts a replica named `id` over `data_dir` with its own lease time.
fn start_replica(data_dir: &Path, config_dir: &Path, id: &str, lease_ttl: &str) -> BerthProcess {
    let config = config_dir.join(format!("{id}.toml"));
    std::fs::write(
        &config,
        format!("[cluster]\nreplica_id = \"{id}\"\nlease_ttl = \"{lease_ttl}\"\n"),
    )
    .expect("write replica config");
    let config = config.to_str().expect("utf-8 path").to_owned();
    BerthProcess::start_in(common::berth_binary(), data_dir, &["--config", &config]).expect("start replica")
}

/// The holder of each job as `replica` reports it: `[(job, holder)]`.
async fn holders(replica: &BerthProcess) -> Vec<(String, String)> {
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let response = client
        .get(format!("{}/api/v1/system/jobs", replica.base_url()))
        .send()
        .await
        .expect("GET /api/v1/system/jobs");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON body");
    body["jobs"]
        .as_array()
        .expect("jobs array")
        .iter()
        .map(|job| {
            (
                job["job"].as_str().expect("job").to_owned(),
                job["holder"].as_str().expect("holder").to_owned(),
            )
        })
        .collect()
}

/// `[(gc, id), (retention, id)]`.
fn all_held_by(id: &str) -> Vec<(String, String)> {
    vec![
        ("gc".to_owned(), id.to_owned()),
        ("retention".to_owned(), id.to_owned()),
    ]
}

/// Waits (up to a generous limit, polling) until `replica` reports every job held by `id`.
async fn wait_until_held_by(replica: &BerthProcess, id: &str, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let now_held = holders(replica).await;
        if now_held == all_held_by(id) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "jobs not all held by {id} after {limit:?}: {now_held:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn jobs_stay_with_one_replica_and_move_when_it_dies_or_stops() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data_dir = temp.path().join("data");
    let mut first = start_replica(&data_dir, temp.path(), "first", "3s");
    wait_until_held_by(&first, "first", Duration::from_secs(30)).await;

    // A second replica renews nothing it does not hold: the first keeps the jobs while alive,
    // through several renewals (3 s lease, renewed every second; the second asks as often).
    let mut second = start_replica(&data_dir, temp.path(), "second", "3s");
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(holders(&second).await, all_held_by("first"));
    }

    // The holder dies without releasing: its leases expire and the second takes them over.
    first.kill_hard().expect("kill -9 the first replica");
    wait_until_held_by(&second, "second", Duration::from_secs(60)).await;

    // A clean stop releases at once: a replica with a one-hour lease asks at start and then
    // only every 20 minutes, so it gets the jobs soon only if the second released them.
    second
        .terminate(Duration::from_secs(30))
        .expect("stop the second replica");
    let third = start_replica(&data_dir, temp.path(), "third", "1h");
    wait_until_held_by(&third, "third", Duration::from_secs(20)).await;
}

#[tokio::test]
async fn only_administrators_see_the_job_leases() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data_dir = temp.path().join("data");
    let config = temp.path().join("basic.toml");
    std::fs::write(&config, "[auth]\nmode = \"basic\"\n").expect("write config");
    let replica = BerthProcess::start_in(
        common::berth_binary(),
        &data_dir,
        &["--config", config.to_str().expect("utf-8 path")],
    )
    .expect("start berth");
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let anonymous = client
        .get(format!("{}/api/v1/system/jobs", replica.base_url()))
        .send()
        .await
        .expect("GET");
    assert_eq!(anonymous.status(), 401);
}
