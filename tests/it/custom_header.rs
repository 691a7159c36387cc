//! `authentication: customHeader`: vestibule behind a login proxy that names the user in a
//! header, believed only from trusted networks.

use crate::common::*;
use vestibule::config::{AuthMethod, Config};

fn header_config(trusted: &[&str]) -> Config {
    let mut cfg = config(vec![echo_spec("sales"), echo_spec("open")]);
    cfg.proxy.authentication = AuthMethod::CustomHeader;
    cfg.proxy.users.clear();
    cfg.proxy.specs[0].access_groups = vec!["analysts".into()];
    cfg.proxy.custom_header.username_header = "X-Forwarded-User".into();
    cfg.proxy.custom_header.groups_header = Some("X-Forwarded-Groups".into());
    cfg.proxy.custom_header.trusted_networks = trusted.iter().map(|n| n.parse().unwrap()).collect();
    cfg
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[tokio::test]
async fn the_login_proxy_names_the_user_and_their_groups() {
    let server = TestServer::start(header_config(&["127.0.0.0/8"])).await;
    let http = client();
    let as_user = |user: &'static str, groups: &'static str| {
        http.get(server.url("/"))
            .header("X-Forwarded-User", user)
            .header("X-Forwarded-Groups", groups)
    };
    let page = as_user("alice", "analysts, staff")
        .send()
        .await
        .expect("portal");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("App sales") && html.contains("alice"),
        "{html}"
    );

    // The same browser, now another user: the proxy's word wins, with that user's groups.
    let html = as_user("bob", "")
        .send()
        .await
        .expect("portal")
        .text()
        .await
        .expect("html");
    assert!(
        html.contains("App open") && !html.contains("App sales"),
        "{html}"
    );

    let anonymous = client()
        .get(server.url("/"))
        .send()
        .await
        .expect("no header");
    assert_eq!(anonymous.status(), 401);
    assert!(
        anonymous
            .text()
            .await
            .expect("body")
            .contains("X-Forwarded-User")
    );
    assert_eq!(
        client()
            .get(server.url("/actuator/health"))
            .send()
            .await
            .expect("health")
            .status(),
        200
    );
    // Form login does not exist here.
    let b = Browser::new(&server);
    assert_eq!(b.get("/login").await.status(), 401);
    server.shutdown().await;
}

#[tokio::test]
async fn a_header_from_an_untrusted_address_is_refused() {
    // The test client connects from 127.0.0.1, outside the only trusted network.
    let server = TestServer::start(header_config(&["10.0.0.0/8"])).await;
    let resp = client()
        .get(server.url("/api/proxyspec"))
        .header("X-Forwarded-User", "root")
        .header("X-Forwarded-Groups", "admins")
        .send()
        .await
        .expect("spoofed");
    assert_eq!(resp.status(), 403);
    let body = resp.text().await.expect("body");
    assert!(
        body.contains("127.0.0.1 is not a trusted address"),
        "{body}"
    );
    server.shutdown().await;
}
