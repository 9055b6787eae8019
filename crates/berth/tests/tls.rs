//! HTTPS with `[server] tls_cert` / `tls_key`: served with rustls, reloaded when the files
//! change, and optional client-certificate authentication (`tls_client_ca`). Certificates are
//! made here with rcgen.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A certificate authority.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("self-signed CA");
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A certificate for `names` signed by `ca`: (certificate PEM, key PEM).
fn leaf(ca: &Ca, names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let params =
        CertificateParams::new(names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>()).expect("params");
    let cert = params.signed_by(&key, &ca.issuer).expect("signed");
    (cert.pem(), key.serialize_pem())
}

struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, config: &str) -> Server {
    let config_path = dir.join("berth.toml");
    std::fs::write(&config_path, config).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn berth");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let address = line
        .trim()
        .strip_prefix("berth listening on https://")
        .unwrap_or_else(|| panic!("berth did not report an https address: {line:?}"))
        .to_owned();
    Server { child, address }
}

fn client(roots: &[&str], identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10));
    for root in roots {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).expect("root"));
    }
    if let Some((cert, key)) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).expect("identity"));
    }
    builder.build().expect("client")
}

#[tokio::test]
async fn https_is_served_and_the_certificate_reloads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first_ca = ca("first CA");
    let (cert, key) = leaf(&first_ca, &["127.0.0.1", "localhost"]);
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, &cert).expect("cert");
    std::fs::write(&key_path, &key).expect("key");
    let server = start(
        dir.path(),
        &format!("[server]\ntls_cert = {:?}\ntls_key = {:?}\n", cert_path, key_path),
    );
    let url = format!("https://{}/v2/", server.address);

    let trusting_first = client(&[&first_ca.pem], None);
    let resp = trusting_first.get(&url).send().await.expect("https request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["docker-distribution-api-version"], "registry/2.0");
    // Plain HTTP on the TLS port gets no registry answer.
    let plain = reqwest::Client::builder().no_proxy().build().expect("client");
    let answer = plain.get(format!("http://{}/v2/", server.address)).send().await;
    assert!(
        answer.map(|resp| resp.status() != 200).unwrap_or(true),
        "plain HTTP was served"
    );

    // A new certificate from another CA: after the reload, clients trusting the new CA connect.
    let second_ca = ca("second CA");
    let (cert, key) = leaf(&second_ca, &["127.0.0.1"]);
    std::fs::write(&key_path, &key).expect("key");
    std::fs::write(&cert_path, &cert).expect("cert");
    let trusting_second = client(&[&second_ca.pem], None);
    let mut reloaded = false;
    for _ in 0..50 {
        if trusting_second
            .get(&url)
            .send()
            .await
            .is_ok_and(|resp| resp.status() == 200)
        {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(reloaded, "the new certificate was not served within 10 s");
    // A new connection (the first client's kept-alive one predates the reload).
    let fresh_first = client(&[&first_ca.pem], None);
    assert!(
        fresh_first.get(&url).send().await.is_err(),
        "the old certificate is still served"
    );

    // A broken file is refused and the current certificate kept.
    std::fs::write(&cert_path, "not a certificate").expect("cert");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fresh_second = client(&[&second_ca.pem], None);
    assert_eq!(fresh_second.get(&url).send().await.expect("still served").status(), 200);
}

#[tokio::test]
async fn client_certificates_are_required_when_a_client_ca_is_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server_ca = ca("server CA");
    let client_ca = ca("client CA");
    let other_ca = ca("other CA");
    let (cert, key) = leaf(&server_ca, &["127.0.0.1"]);
    let paths = [
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("clients.pem"),
    ];
    std::fs::write(&paths[0], &cert).expect("cert");
    std::fs::write(&paths[1], &key).expect("key");
    std::fs::write(&paths[2], &client_ca.pem).expect("client CA");
    let server = start(
        dir.path(),
        &format!(
            "[server]\ntls_cert = {:?}\ntls_key = {:?}\ntls_client_ca = {:?}\n",
            paths[0], paths[1], paths[2]
        ),
    );
    let url = format!("https://{}/v2/", server.address);

    let without = client(&[&server_ca.pem], None);
    assert!(
        without.get(&url).send().await.is_err(),
        "a client without a certificate was served"
    );
    let (stranger_cert, stranger_key) = leaf(&other_ca, &["stranger"]);
    let stranger = client(&[&server_ca.pem], Some((&stranger_cert, &stranger_key)));
    assert!(
        stranger.get(&url).send().await.is_err(),
        "a certificate from another CA was accepted"
    );
    let (client_cert, client_key) = leaf(&client_ca, &["ci-runner"]);
    let known = client(&[&server_ca.pem], Some((&client_cert, &client_key)));
    assert_eq!(known.get(&url).send().await.expect("mutual TLS").status(), 200);
}

#[test]
fn a_bad_certificate_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not a certificate").expect("cert");
    let config = dir.path().join("berth.toml");
    std::fs::write(&config, format!("[server]\ntls_cert = {cert:?}\ntls_key = {cert:?}\n")).expect("config");
    let output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run berth");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cert.pem"), "{stderr}");

    std::fs::write(&config, format!("[server]\ntls_cert = {cert:?}\n")).expect("config");
    let output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run berth");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("go together"));
}
