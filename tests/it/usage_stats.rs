//! Usage statistics as an operator reads them: after users log in (one with a wrong password),
//! launch an app, stop it and log out, the rows are in a real PostgreSQL table, a CSV file and a
//! real InfluxDB 1.x, with ShinyProxy's event types, the user names and the app id; ShinyProxy's
//! metric names are on `/actuator/prometheus`; and a sink that is down loses events (counted)
//! without slowing anyone.

use crate::common::influxdb::Influx;
use crate::common::metrics::{management_port, sample, scrape};
use crate::common::postgres::{self, Postgres};
use crate::common::*;
use std::time::Duration;
use vestibule::config::{self, Config};

/// The `ops` part of a config read from `yaml`, through the real loader (so the keys are
/// ShinyProxy's), put on the test config.
fn with_ops(mut cfg: Config, yaml: &str) -> Config {
    let dir = std::env::temp_dir().join(format!("vestibule-usage-cfg-{}", uuid()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("application.yml");
    std::fs::write(&file, yaml).expect("write yaml");
    let env: std::collections::HashMap<String, String> = Default::default();
    let loaded = config::load_file(&file, &env).expect("the usage-stats config loads");
    let about_usage: Vec<_> = loaded
        .warnings
        .iter()
        .filter(|w| !w.key.starts_with("proxy.specs"))
        .collect();
    assert!(about_usage.is_empty(), "{about_usage:?}");
    cfg.ops = loaded.config.ops;
    cfg
}

fn uuid() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        vestibule::clock::now_unix_ms() % 1_000_000_007
    )
}

/// Logs in with a wrong password, then as alice, launches and stops `echo`, logs out.
async fn scenario(server: &TestServer) {
    let stranger = Browser::new(server);
    assert_eq!(stranger.try_login("mallory", "wrong").await.status(), 401);
    let alice = Browser::login(server, "alice").await;
    let id = alice.launch_id("echo").await;
    let stopped = alice
        .api(reqwest::Method::DELETE, &format!("/api/proxy/{id}"))
        .await;
    assert_eq!(stopped.status(), 200);
    assert!(failed(&alice.launch("broken").await));
    let out = alice
        .http
        .post(server.url("/logout"))
        .form(&[("_csrf", alice.csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert!(
        out.status().is_redirection() || out.status().is_success(),
        "{}",
        out.status()
    );
}

const EXPECTED: [(&str, &str, &str); 6] = [
    ("mallory", "AuthFailed", ""),
    ("alice", "Login", ""),
    ("alice", "ProxyStart", "echo"),
    ("alice", "ProxyStop", "echo"),
    ("alice", "ProxyStartFailed", "broken"),
    ("alice", "Logout", ""),
];

fn specs() -> Vec<vestibule::config::AppSpec> {
    vec![
        echo_spec("echo"),
        process_spec(
            "broken",
            &["sh", "-c", "echo 'no such package' >&2; exit 3"],
        ),
    ]
}

#[tokio::test]
async fn events_reach_postgres_csv_and_influxdb_and_micrometer_names_are_served() {
    let pg = Postgres::start();
    let influx = Influx::start();
    let created = influx
        .query("", "CREATE DATABASE shinyproxy_usagestats")
        .await;
    assert!(created["results"].is_array(), "{created}");
    let dir = std::env::temp_dir().join(format!("vestibule-usage-{}", uuid()));
    std::fs::create_dir_all(&dir).expect("dir");
    let csv = dir.join("usage.csv");
    let port = management_port();
    let yaml = format!(
        "proxy:
  usage-stats-url: {jdbc}
  usage-stats-username: {user}
  usage-stats-password: {password}
  usage-stats-micrometer-prefix: shinyproxy
  usage-stats:
  - url: {csv}
  - url: {influx}/write?db=shinyproxy_usagestats
  - url: micrometer
",
        jdbc = pg.jdbc_url(),
        user = postgres::USER,
        password = postgres::PASSWORD,
        csv = csv.display(),
        influx = influx.base(),
    );
    let mut cfg = with_ops(config(specs()), &yaml);
    cfg.server.management_port = Some(port);
    let server = TestServer::start(cfg).await;
    scenario(&server).await;

    // PostgreSQL: ShinyProxy's `event` table, created by vestibule.
    let db = pg.client().await;
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while rows.len() < EXPECTED.len() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(found) = db
            .query(
                "SELECT username, type, coalesce(data, '') FROM event ORDER BY event_time, ctid",
                &[],
            )
            .await
        {
            rows = found
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
        }
    }
    let complete = rows.len() >= EXPECTED.len();
    assert!(complete, "rows in PostgreSQL: {rows:?}");
    let want: Vec<(String, String, String)> = EXPECTED
        .iter()
        .map(|(u, t, d)| (u.to_string(), t.to_string(), d.to_string()))
        .collect();
    assert_eq!(rows, want);
    let columns = db
        .query(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_name = 'event' ORDER BY ordinal_position",
            &[],
        )
        .await
        .expect("columns");
    let columns: Vec<(String, String)> = columns.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        columns,
        [
            ("event_time", "timestamp without time zone"),
            ("username", "character varying"),
            ("type", "character varying"),
            ("data", "text"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );

    // CSV: a header, then one quoted row per event.
    let text = std::fs::read_to_string(&csv).expect("the csv file");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("event_time,username,type,data"));
    let csv_rows: Vec<(String, String, String)> = lines
        .map(|l| {
            let cells: Vec<String> = l
                .split(',')
                .map(|c| c.trim_matches('"').to_string())
                .collect();
            assert!(cells[0].parse::<u64>().is_ok(), "event_time in ms: {l}");
            (cells[1].clone(), cells[2].clone(), cells[3].clone())
        })
        .collect();
    assert_eq!(csv_rows, want);

    // InfluxDB: measurement `event`, tags username and type, field data.
    let answer = influx
        .query(
            "shinyproxy_usagestats",
            "SELECT username, type, data FROM event",
        )
        .await;
    let values = answer["results"][0]["series"][0]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let influx_rows: Vec<(String, String, String)> = values
        .iter()
        .map(|v| {
            (
                v[1].as_str().unwrap_or_default().to_string(),
                v[2].as_str().unwrap_or_default().to_string(),
                v[3].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(influx_rows, want, "{answer}");

    // Micrometer: ShinyProxy's names, behind the prefix.
    let text = scrape(port).await;
    for (line, n) in [
        ("shinyproxy_userLogins_total ", 1.0),
        ("shinyproxy_userLogouts_total ", 1.0),
        ("shinyproxy_authFailed_total ", 1.0),
        (r#"shinyproxy_appStarts_total{spec_id="echo"}"#, 1.0),
        (r#"shinyproxy_appStops_total{spec_id="echo"}"#, 1.0),
        (r#"shinyproxy_startFailed_total{spec_id="echo"}"#, 0.0),
        (r#"shinyproxy_startFailed_total{spec_id="broken"}"#, 1.0),
        (
            r#"shinyproxy_startupTime_seconds_count{spec_id="echo"}"#,
            1.0,
        ),
    ] {
        assert_eq!(sample(&text, line), Some(n), "{line} in\n{text}");
    }
    assert!(
        text.contains("vestibule_app_launches_total"),
        "vestibule's own metrics stay beside them"
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_sink_that_is_down_loses_events_without_slowing_logins() {
    // Nobody listens on this port: every write fails.
    let dead = crate::common::ports::free_port();
    let port = management_port();
    let yaml = format!("proxy:\n  usage-stats-url: jdbc:postgresql://127.0.0.1:{dead}/postgres\n");
    let mut cfg = with_ops(config(vec![echo_spec("echo")]), &yaml);
    cfg.server.management_port = Some(port);
    let server = TestServer::start(cfg).await;
    let began = tokio::time::Instant::now();
    let _alice = Browser::login(&server, "alice").await;
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "the login did not wait for the sink: {:?}",
        began.elapsed()
    );
    let counted = eventually(Duration::from_secs(15), || async {
        let text = scrape(port).await;
        sample(
            &text,
            &format!(
                r#"vestibule_usage_events_dropped_total{{sink="jdbc:postgresql://127.0.0.1:{dead}/postgres",reason="write_failed"}}"#
            ),
        ) == Some(1.0)
    })
    .await;
    assert!(counted, "{}", scrape(port).await);
    server.shutdown().await;
}
