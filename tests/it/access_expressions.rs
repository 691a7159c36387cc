//! Access expressions, from the file to the portal: which tiles each user sees and which apps
//! they may start.

use crate::common::*;
use std::collections::HashMap;
use std::path::Path;
use vestibule::config::{Config, load_str};

fn config_with_rules() -> Config {
    let echo = repo_path("tests/apps/echo/app.py");
    let app = |id: &str, rules: &str| {
        format!(
            "    - id: {id}\n      display-name: {id}-tile\n      container-cmd: [python3, \"{}\"]\n{rules}",
            echo.display()
        )
    };
    let yaml = format!(
        "proxy:
  authentication: simple
  container-backend: process
  admin-groups: admins
  users:
    - {{name: alice, password: '{PASSWORD}', groups: analysts}}
    - {{name: bob, password: '{PASSWORD}', groups: [analysts, contractors]}}
    - {{name: root, password: '{PASSWORD}', groups: admins}}
  specs:
{}
{}
{}
{}
",
        // OR-ed with access-users: alice by expression, root by name.
        app(
            "analysts",
            "      access-users: root\n      access-expression: \"#{groups.contains('analysts') and userId matches 'a.*'}\"\n"
        ),
        // AND-ed: analysts, but never contractors.
        app(
            "internal",
            "      access-groups: analysts\n      access-strict-expression: \"#{!groups.contains('contractors')}\"\n"
        ),
        app(
            "named",
            "      access-expression: \"#{isOneOf(userId, 'bob', 'carol')}\"\n"
        ),
        app(
            "cel",
            "      access-cel: \"'admins' in groups || userId == 'alice'\"\n"
        ),
    );
    load_str(Path::new("application.yml"), &yaml, &HashMap::new())
        .expect("config loads")
        .config
}

async fn tiles(b: &Browser) -> Vec<String> {
    let page = b.get("/").await.text().await.expect("portal");
    ["analysts", "internal", "named", "cel"]
        .iter()
        .filter(|id| page.contains(&format!("{id}-tile")))
        .map(|id| id.to_string())
        .collect()
}

#[tokio::test]
async fn expressions_decide_which_apps_each_user_sees_and_may_start() {
    let server = TestServer::start(config_with_rules()).await;
    let alice = Browser::login(&server, "alice").await;
    let bob = Browser::login(&server, "bob").await;
    let root = Browser::login(&server, "root").await;

    assert_eq!(tiles(&alice).await, ["analysts", "internal", "cel"]);
    assert_eq!(tiles(&bob).await, ["named"]);
    assert_eq!(tiles(&root).await, ["analysts", "cel"]);

    // The rule is enforced on launch too, not only on the portal.
    let refused = bob
        .api(reqwest::Method::POST, "/api/proxy/internal")
        .await
        .status();
    assert_eq!(refused, 403);
    let view = alice.launch("internal").await;
    assert_eq!(view["status"], "Up", "{view}");
    server.shutdown().await;
}
