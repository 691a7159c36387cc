//! TLS on the main port, as a browser meets it: the certificate from `server.ssl.*` (PEM files
//! or a PKCS12 key store), HTTP/2 chosen by ALPN for pages, app WebSockets over wss, HSTS and
//! Secure cookies, a certificate swapped on disk picked up while an open connection goes on,
//! and the plain-HTTP port that redirects to HTTPS.

use crate::common::certs::make_certificates;
use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use vestibule::config::{CertificateSource, Config, TlsSettings};

fn demo_spec() -> vestibule::config::AppSpec {
    vestibule::config::embedded_default(&vestibule_exe(), String::new())
        .proxy
        .specs[0]
        .clone()
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "vestibule-tls-{name}-{}-{}",
        std::process::id(),
        ports::free_port()
    ));
    std::fs::create_dir_all(&d).expect("dir");
    d
}

fn with_tls(mut cfg: Config, source: CertificateSource, redirect: Option<u16>) -> Config {
    cfg.ops.tls = Some(TlsSettings {
        source,
        tls12: true,
        tls13: true,
        redirect_http_port: redirect,
    });
    cfg
}

fn pem_source(d: &Path) -> CertificateSource {
    CertificateSource::Pem {
        certificate: d.join("server.pem"),
        key: d.join("server.key"),
    }
}

fn client_config(ca: &Path, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).expect("ca");
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.expect("ca pem")).expect("add ca");
    }
    let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(c)
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn tls_connect(server: &TestServer, ca: &Path, alpn: &[&[u8]]) -> Tls {
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("tcp");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    TlsConnector::from(client_config(ca, alpn))
        .connect(name, tcp)
        .await
        .expect("a TLS handshake that checks the certificate against the test CA")
}

/// The serial number of the certificate the server presented on `conn`.
fn peer_cert(conn: &Tls) -> Vec<u8> {
    conn.get_ref().1.peer_certificates().expect("certs")[0].to_vec()
}

fn https_browser(server: &TestServer, ca: &Path) -> Browser {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(ca).expect("ca")).expect("ca pem"),
        )
        .build()
        .expect("client");
    Browser {
        http,
        base: format!("https://127.0.0.1:{}", server.addr.port()),
        csrf: String::new(),
    }
}

#[tokio::test]
async fn pages_use_http2_and_app_websockets_work_over_wss() {
    let d = dir("pem");
    let ca = make_certificates(&d);
    let server = TestServer::start(with_tls(config(vec![demo_spec()]), pem_source(&d), None)).await;

    // HTTP/2 negotiated by ALPN for the portal.
    let conn = tls_connect(&server, &ca, &[b"h2", b"http/1.1"]).await;
    assert_eq!(conn.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, driver) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(conn),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(driver);
    let resp = h2
        .send_request(
            http::Request::get(format!("https://127.0.0.1:{}/login", server.addr.port()))
                .body(Empty::<bytes::Bytes>::new())
                .expect("request"),
        )
        .await
        .expect("GET /login over h2");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(
        resp.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    assert!(resp.headers().contains_key("x-request-id"));
    let _ = resp.into_body().collect().await;

    // A login over HTTPS: the session cookie is Secure.
    let mut alice = https_browser(&server, &ca);
    let login = alice.try_login("alice", PASSWORD).await;
    assert_eq!(login.status(), 303);
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("vestibule_session="))
        .expect("session cookie")
        .to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let page = alice.get("/").await.text().await.expect("portal");
    alice.csrf = hidden_field(&page, "_csrf").expect("csrf");
    let id = alice.launch_id("demo").await;

    // The app's WebSocket over wss (HTTP/1.1 upgrade inside TLS).
    let tls = tls_connect(&server, &ca, &[b"http/1.1"]).await;
    let mut req = format!("wss://127.0.0.1:{}/app_proxy/{id}/ws", server.addr.port())
        .into_client_request()
        .expect("ws request");
    let session = cookie.split(';').next().expect("cookie pair").to_string();
    req.headers_mut()
        .insert("cookie", session.parse().expect("header"));
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(req, tls),
    )
    .await
    .expect("ws handshake in time")
    .expect("wss through the proxy");
    ws.send(Message::text("7")).await.expect("send");
    let answer = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => break t.to_string(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no answer over wss: {other:?}"),
        }
    };
    let v: serde_json::Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(v["square"], 49);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn a_pkcs12_key_store_serves_and_a_swapped_certificate_is_picked_up() {
    let d = dir("p12");
    let ca = make_certificates(&d);
    let p12 = d.join("server.p12");
    let export = |out: &Path| {
        let st = Command::new("openssl")
            .current_dir(&d)
            .args([
                "pkcs12",
                "-export",
                "-in",
                "server.pem",
                "-inkey",
                "server.key",
            ])
            .args(["-name", "web", "-passout", "pass:store secret", "-out"])
            .arg(out)
            .status()
            .expect("openssl pkcs12");
        assert!(st.success());
    };
    export(&p12);
    let redirect = ports::free_port();
    let server = TestServer::start(with_tls(
        config(vec![echo_spec("echo")]),
        CertificateSource::Pkcs12 {
            path: p12.clone(),
            password: "store secret".into(),
            alias: Some("web".into()),
        },
        Some(redirect),
    ))
    .await;

    // An HTTP/1.1 connection opened with the first certificate.
    let old = tls_connect(&server, &ca, &[b"http/1.1"]).await;
    let first = peer_cert(&old);
    let (mut h1, driver) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(old))
        .await
        .expect("h1");
    tokio::spawn(driver);

    assert_eq!(
        peer_cert(&tls_connect(&server, &ca, &[b"http/1.1"]).await),
        first,
        "the same certificate until it is swapped"
    );

    // A new certificate from the same CA, written over the key store.
    let st = Command::new("openssl")
        .current_dir(&d)
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .status()
        .expect("openssl req");
    assert!(st.success());
    let st = Command::new("openssl")
        .current_dir(&d)
        .args([
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ])
        .status()
        .expect("openssl x509");
    assert!(st.success());
    let staged = d.join("staged.p12");
    export(&staged);
    std::fs::rename(&staged, &p12).expect("swap the key store");

    let swapped = eventually(Duration::from_secs(15), || async {
        peer_cert(&tls_connect(&server, &ca, &[b"http/1.1"]).await) != first
    })
    .await;
    assert!(swapped, "new connections get the new certificate");

    // The connection opened before the swap still works.
    let resp = h1
        .send_request(
            http::Request::get("/login")
                .header("host", "127.0.0.1")
                .body(Empty::<bytes::Bytes>::new())
                .expect("request"),
        )
        .await
        .expect("the old connection still answers");
    assert_eq!(resp.status(), 200);

    // Plain HTTP on the redirect port goes to HTTPS on the main port.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(format!("http://127.0.0.1:{redirect}/app/echo?x=1"))
        .send()
        .await
        .expect("redirect port");
    assert_eq!(plain.status(), 308);
    assert_eq!(
        plain.headers()["location"],
        format!("https://127.0.0.1:{}/app/echo?x=1", server.addr.port()).as_str()
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn a_certificate_that_cannot_be_read_stops_the_start() {
    let d = dir("bad");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let cfg = with_tls(
        config(vec![echo_spec("echo")]),
        CertificateSource::Pkcs12 {
            path: d.join("missing.p12"),
            password: "x".into(),
            alias: None,
        },
        None,
    );
    let opts = vestibule::RunOptions {
        supervisor_exe: vestibule_exe(),
        work_dir: d.join("work"),
    };
    let err = vestibule::run(cfg, opts, listener, std::future::pending())
        .await
        .expect_err("no start without the certificate");
    let text = format!("{err:#}");
    assert!(
        text.contains("server.ssl") && text.contains("missing.p12"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let logs = crate::common::log_capture::capture_logs();
    // Our own listener first: SIGHUP's default action would end the whole test binary if it
    // came before the server's listener is in place.
    let mut ours =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).expect("sighup");
    let d = dir("hup");
    let ca = make_certificates(&d);
    let server = TestServer::start(with_tls(
        config(vec![echo_spec("echo")]),
        pem_source(&d),
        None,
    ))
    .await;
    let _ = tls_connect(&server, &ca, &[b"http/1.1"]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut reloaded = false;
    while !reloaded && tokio::time::Instant::now() < deadline {
        nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGHUP)
            .expect("send SIGHUP");
        let _ = tokio::time::timeout(Duration::from_millis(200), ours.recv()).await;
        reloaded = logs
            .text()
            .lines()
            .any(|l| l.contains("TLS certificate reloaded") && l.contains("SIGHUP"));
    }
    assert!(reloaded, "SIGHUP reloads the certificate");
    // Still serving after the reload.
    let _ = tls_connect(&server, &ca, &[b"http/1.1"]).await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&d);
}
