//! Attacks from the security pass (issue 18), each replayed against the real server and a real
//! app: a forged identity header must not reach the app, a login must not bounce the browser to
//! another site, and so on.

mod common;

use common::*;
use vestibule::config::AppSpec;

/// A real R httpuv server that answers with the user it was told about. httpuv files request
/// headers CGI-style (`HTTP_X_SP_USERID`), mapping `_` and `-` alike: the spelling an attacker
/// uses to slip a second `X-SP-UserId` past a proxy that only strips the dashed form.
fn httpuv_spec(id: &str) -> AppSpec {
    let app = "httpuv::runServer('127.0.0.1', as.integer(Sys.getenv('PORT')), list(call = \
               function(req) list(status = 200L, headers = list('Content-Type' = 'text/plain'), \
               body = paste0('user=', paste(req$HTTP_X_SP_USERID, collapse = ','), \
               ';remote=', paste(req$HTTP_X_REMOTE_USER, collapse = ',')))))";
    let mut spec = process_spec(
        id,
        &["R", "--no-save", "--no-restore", "--quiet", "-e", app],
    );
    spec.http_headers
        .insert("X-Remote-User".into(), "#{proxy.userId}".into());
    spec
}

async fn app_path(b: &Browser, spec: &str) -> String {
    let view = b.launch(spec).await;
    assert_eq!(view["status"], "running", "{spec} runs: {view}");
    let id = view["id"].as_str().expect("instance id");
    format!("/app_proxy/{id}/")
}

#[tokio::test]
async fn f1_underscore_identity_headers_never_reach_an_httpuv_app() {
    let server = TestServer::start(config(vec![httpuv_spec("httpuv")])).await;
    let alice = Browser::login(&server, "alice").await;
    let path = app_path(&alice, "httpuv").await;

    let honest = alice.get(&path).await.text().await.expect("body");
    assert_eq!(honest, "user=alice;remote=alice");

    for (name, value) in [
        ("X_SP_UserId", "carol"),
        ("x_sp_usergroups", "admins"),
        ("X-SP_UserId", "carol"),
        ("X_Remote_User", "carol"),
    ] {
        let resp = alice
            .http
            .get(server.url(&path))
            .header(name, value)
            .send()
            .await
            .expect("forged request");
        let status = resp.status();
        let body = resp.text().await.expect("body");
        assert!(
            !body.contains("carol") && !body.contains("admins"),
            "{name} reached the app: {body}"
        );
        assert_eq!(status, 400, "{name} is refused: {body}");
    }

    // The dashed spelling is what the proxy sets itself: the client's copy is replaced.
    let resp = alice
        .http
        .get(server.url(&path))
        .header("X-SP-UserId", "carol")
        .send()
        .await
        .expect("spoofed request");
    assert_eq!(resp.text().await.expect("body"), "user=alice;remote=alice");
    server.shutdown().await;
}
