//! Where shared state lives: this process's memory, or Redis for several replicas. ShinyProxy's
//! switches select Redis (`proxy.store-mode: Redis`, or Spring's
//! `spring.session.store-type: redis`), and Spring's connection keys say where it is, under
//! `spring.data.redis` (Spring Boot 3) or `spring.redis` (Spring Boot 2, older ShinyProxy files).

use super::convert::{self, Fields};
use super::model::{RedisSentinel, RedisSettings, Secret, StoreConfig};
use super::report::Report;
use std::time::Duration;

pub fn check_store(top: &Fields, proxy: &Fields, report: &mut Report) -> StoreConfig {
    let spring = Fields::of(top.get("spring").map(|(n, _)| n), "spring", report);
    let session = Fields::of(
        spring.get("session").map(|(n, _)| n),
        "spring.session",
        report,
    );
    let mode = proxy
        .get("store-mode")
        .and_then(|(n, p)| convert::choice(n, &p, &["None", "Redis"], report));
    let session_type = session
        .get("store-type")
        .and_then(|(n, p)| convert::choice(n, &p, &["none", "redis"], report));
    let data = Fields::of(spring.get("data").map(|(n, _)| n), "spring.data", report);
    let boot2 = Fields::of(spring.get("redis").map(|(n, _)| n), "spring.redis", report);
    let boot3 = Fields::of(
        data.get("redis").map(|(n, _)| n),
        "spring.data.redis",
        report,
    );
    let mut settings = RedisSettings::default();
    // Spring Boot 3's place wins, key by key, over Boot 2's when a file has both.
    read_redis(&boot2, &mut settings, report);
    read_redis(&boot3, &mut settings, report);
    if mode == Some("Redis") || session_type == Some("redis") {
        StoreConfig::Redis(settings)
    } else {
        StoreConfig::Memory
    }
}

fn read_redis(redis: &Fields, settings: &mut RedisSettings, report: &mut Report) {
    if let Some((node, path)) = redis.get("url")
        && let Some(url) = convert::text(node, &path, report)
    {
        match parse_url(&url) {
            Ok(from_url) => *settings = from_url,
            Err(why) => report.error(&node.at, &path, why),
        }
    }
    if let Some(host) = redis.text("host", report) {
        settings.host = host;
    }
    if let Some(port) = redis
        .get("port")
        .and_then(|(n, p)| convert::port(n, &p, false, report))
    {
        settings.port = port;
    }
    if let Some(user) = redis.text("username", report) {
        settings.username = Some(user);
    }
    if let Some(pw) = redis.text("password", report) {
        settings.password = Some(Secret(pw));
    }
    settings.tls |= ssl_enabled(redis, report);
    if let Some((node, path)) = redis.get("database") {
        match convert::int(node, &path, "a database number", report) {
            Some(n @ 0..=255) => settings.database = n as u8,
            Some(n) => report.error(
                &node.at,
                &path,
                format!("{n} is not a database number (0 to 255)"),
            ),
            None => {}
        }
    }
    if let Some(ms) = redis.int("timeout", "milliseconds", report)
        && ms > 0
    {
        settings.timeout = Duration::from_millis(ms as u64);
    }
    if let Some((node, path)) = redis.get("sentinel") {
        let sentinel = Fields::of(Some(node), &path, report);
        settings.sentinel = check_sentinel(&sentinel, report);
    }
}

/// `ssl: true` (Spring Boot 2) or `ssl: {enabled: true}` (Spring Boot 3).
fn ssl_enabled(redis: &Fields, report: &mut Report) -> bool {
    let Some((node, path)) = redis.get("ssl") else {
        return false;
    };
    if matches!(node.value, super::node::Value::Map(_)) {
        let ssl = Fields::of(Some(node), &path, report);
        return ssl.boolean("enabled", report).unwrap_or(false);
    }
    convert::boolean(node, &path, report).unwrap_or(false)
}

fn check_sentinel(sentinel: &Fields, report: &mut Report) -> Option<RedisSentinel> {
    let master = sentinel.text("master", report);
    let nodes_at = sentinel.get("nodes");
    let nodes: Vec<(String, u16)> = match &nodes_at {
        Some((node, path)) => convert::text_list(node, path, report)
            .unwrap_or_default()
            .iter()
            .filter_map(|hp| match host_port(hp) {
                Some(pair) => Some(pair),
                None => {
                    report.error(
                        &node.at,
                        path,
                        format!("'{hp}' is not a sentinel address (host:port)"),
                    );
                    None
                }
            })
            .collect(),
        None => Vec::new(),
    };
    let password = sentinel.text("password", report).map(Secret);
    match (master, nodes.is_empty()) {
        (None, true) => None,
        (Some(master), false) => Some(RedisSentinel {
            master,
            nodes,
            password,
        }),
        (None, false) => {
            if let Some((node, path)) = nodes_at {
                report.error(
                    &node.at,
                    &path,
                    "sentinel nodes need 'master', the name of the monitored Redis",
                );
            }
            None
        }
        (Some(_), true) => {
            if let Some((node, path)) = sentinel.get("master") {
                report.error(
                    &node.at,
                    &path,
                    "a sentinel 'master' needs 'nodes' (host:port, comma-separated)",
                );
            }
            None
        }
    }
}

fn host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.trim().rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some(())?;
    Some((host.to_string(), port.parse().ok()?))
}

/// `redis://[user:password@]host:port[/database]`, or `rediss://` for TLS.
fn parse_url(url: &str) -> Result<RedisSettings, String> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("rediss://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("redis://") {
        (false, rest)
    } else {
        return Err("a Redis URL starts with redis:// or rediss://".into());
    };
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (Some(auth), rest),
        None => (None, rest),
    };
    let (address, database) = match rest.split_once('/') {
        Some((a, db)) if !db.is_empty() => (
            a,
            db.parse::<u8>()
                .map_err(|_| format!("'{db}' is not a database number (0 to 255)"))?,
        ),
        Some((a, _)) => (a, 0),
        None => (rest, 0),
    };
    let (host, port) = match host_port(address) {
        Some(hp) => hp,
        None if !address.is_empty() => (address.to_string(), 6379),
        None => return Err("the Redis URL names no host".into()),
    };
    let (username, password) = match auth.map(|a| a.split_once(':')) {
        Some(Some((u, p))) => (
            (!u.is_empty()).then(|| u.to_string()),
            Some(Secret(
                urlencoding::decode(p).map_or(p.to_string(), |d| d.into_owned()),
            )),
        ),
        Some(None) => (None, auth.map(|p| Secret(p.to_string()))),
        None => (None, None),
    };
    Ok(RedisSettings {
        host,
        port,
        username,
        password,
        tls,
        database,
        ..RedisSettings::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_url_gives_host_port_password_and_database() {
        let s = parse_url("rediss://app:p%40ss@cache.internal:6380/2").expect("parses");
        assert_eq!(
            (s.host.as_str(), s.port, s.database, s.tls),
            ("cache.internal", 6380, 2, true)
        );
        assert_eq!(s.username.as_deref(), Some("app"));
        assert_eq!(s.password, Some(Secret("p@ss".into())));
        let plain = parse_url("redis://redis").expect("parses");
        assert_eq!(
            (plain.host.as_str(), plain.port, plain.tls),
            ("redis", 6379, false)
        );
        assert!(parse_url("http://redis").is_err());
    }
}
