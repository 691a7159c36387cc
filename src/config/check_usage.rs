//! Usage statistics (`proxy.usage-stats-*`, and the `proxy.usage-stats` list for several sinks),
//! read as ShinyProxy reads them: the URL alone decides the kind of sink.

use std::path::PathBuf;

use super::convert::{self, Fields};
use super::node::{Node, Value};
use super::report::{Report, index};

/// Where usage events go, and under which metric prefix ShinyProxy's own metric names appear.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageStatsConfig {
    pub sinks: Vec<UsageSink>,
    /// `usage-stats-micrometer-prefix`: put before ShinyProxy's metric names (`appStarts`…).
    pub micrometer_prefix: String,
}

impl UsageStatsConfig {
    /// Whether `usage-stats-url: micrometer` asked for ShinyProxy's metric names.
    pub fn micrometer(&self) -> bool {
        self.sinks
            .iter()
            .any(|s| matches!(s, UsageSink::Micrometer))
    }
}

#[derive(Clone, PartialEq)]
pub enum UsageSink {
    /// `jdbc:postgresql://host:port/db`: rows in `table` (created when missing).
    Postgres {
        /// What the sink is called in logs and metrics: the URL without credentials.
        name: String,
        host: String,
        port: u16,
        dbname: String,
        user: Option<String>,
        password: Option<String>,
        table: String,
    },
    /// A `.csv` path: rows appended.
    Csv(PathBuf),
    /// InfluxDB 1.x: `http(s)://host:8086/write?db=<name>`.
    Influx {
        url: String,
        user: Option<String>,
        password: Option<String>,
    },
    /// `micrometer`: ShinyProxy's metric names on `/actuator/prometheus`.
    Micrometer,
}

// Hand-written so that a password never reaches a log through `{:?}`.
impl std::fmt::Debug for UsageSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl UsageSink {
    /// A name for logs and metric labels, without credentials.
    pub fn name(&self) -> String {
        match self {
            UsageSink::Postgres { name, .. } => name.clone(),
            UsageSink::Csv(path) => path.display().to_string(),
            UsageSink::Influx { url, .. } => url.split('?').next().unwrap_or(url).to_string(),
            UsageSink::Micrometer => "micrometer".into(),
        }
    }
}

pub fn check_usage_stats(proxy: &Fields, report: &mut Report) -> UsageStatsConfig {
    let mut sinks = Vec::new();
    if let Some(sink) = one_sink(proxy, "usage-stats-", report) {
        sinks.push(sink);
    }
    if let Some((node, path)) = proxy.get("usage-stats") {
        match &node.value {
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let here = index(&path, i);
                    let fields = Fields::of(Some(item), &here, report);
                    if let Some(sink) = one_sink(&fields, "", report) {
                        sinks.push(sink);
                    }
                }
            }
            _ => report.error(
                &node.at,
                &path,
                format!(
                    "expected a list of sinks (each with a url), found {}",
                    node.describe()
                ),
            ),
        }
    }
    UsageStatsConfig {
        sinks,
        micrometer_prefix: proxy
            .text("usage-stats-micrometer-prefix", report)
            .map(|p| p.trim().to_string())
            .unwrap_or_default(),
    }
}

/// One sink from `<prefix>url`, `<prefix>username`, `<prefix>password`, `<prefix>table-name`.
fn one_sink(fields: &Fields, prefix: &str, report: &mut Report) -> Option<UsageSink> {
    let key = |k: &str| format!("{prefix}{k}");
    let user = fields.text(&key("username"), report);
    let password = fields.text(&key("password"), report);
    let table = fields.get(&key("table-name"));
    let (node, path) = fields.get(&key("url"))?;
    let url = convert::text(node, &path, report)?;
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    if lower.contains("/write?db=") {
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            report.error(
                &node.at,
                &path,
                "an InfluxDB URL starts with http:// or https://",
            );
            return None;
        }
        return Some(UsageSink::Influx {
            url: url.to_string(),
            user,
            password,
        });
    }
    if lower.starts_with("jdbc") {
        let table = match table {
            None => "event".to_string(),
            Some((t, tpath)) => {
                let name = convert::text(t, &tpath, report)?;
                if !is_sql_name(&name) {
                    report.error(
                        &t.at,
                        &tpath,
                        "a table name is letters, digits and underscores (optionally \
                         schema.table), starting with a letter or underscore",
                    );
                    return None;
                }
                name
            }
        };
        return postgres(url, user, password, table, node, &path, report);
    }
    if lower == "micrometer" {
        return Some(UsageSink::Micrometer);
    }
    if lower.ends_with(".csv") {
        return Some(UsageSink::Csv(PathBuf::from(url)));
    }
    report.error(
        &node.at,
        &path,
        "expected a jdbc:postgresql:// URL, an InfluxDB URL with /write?db=, `micrometer`, \
         or a path ending in .csv",
    );
    None
}

fn is_sql_name(name: &str) -> bool {
    let part = |p: &str| {
        let mut chars = p.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() <= 2 && parts.iter().all(|p| part(p))
}

/// `jdbc:postgresql://host[:port]/database[?user=…&password=…&sslmode=…]`.
fn postgres(
    url: &str,
    user: Option<String>,
    password: Option<String>,
    table: String,
    node: &Node,
    path: &str,
    report: &mut Report,
) -> Option<UsageSink> {
    let Some(rest) = url.strip_prefix("jdbc:postgresql://") else {
        report.error(
            &node.at,
            path,
            "vestibule writes usage statistics to PostgreSQL only (jdbc:postgresql://host/db); \
             other JDBC databases are not supported",
        );
        return None;
    };
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, dbname) = location.split_once('/').unwrap_or((location, ""));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(p) => (h, p),
            Err(_) => {
                report.error(&node.at, path, format!("'{p}' is not a port number"));
                return None;
            }
        },
        None => (authority, 5432),
    };
    if host.is_empty() {
        report.error(&node.at, path, "the URL names no database host");
        return None;
    }
    let (mut user, mut password) = (user, password);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = urlencoding::decode(v)
            .map(|v| v.into_owned())
            .unwrap_or_default();
        match k.to_ascii_lowercase().as_str() {
            "user" => user = user.or(Some(v)),
            "password" => password = password.or(Some(v)),
            // A connection the file asks to encrypt must not go out in clear text.
            "ssl" | "sslmode" if !matches!(v.as_str(), "false" | "disable") => {
                report.error(
                    &node.at,
                    path,
                    format!(
                        "{k}={v}: vestibule cannot yet connect to PostgreSQL over TLS; use a \
                         database reachable without it (a local socket or a private network)"
                    ),
                );
                return None;
            }
            _ => {}
        }
    }
    let dbname = if dbname.is_empty() {
        "postgres"
    } else {
        dbname
    };
    Some(UsageSink::Postgres {
        name: format!("jdbc:postgresql://{authority}/{dbname}"),
        host: host.trim_start_matches('[').trim_end_matches(']').into(),
        port,
        dbname: dbname.into(),
        user,
        password,
        table,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node;
    use std::path::Path;

    fn read(yaml: &str) -> (UsageStatsConfig, Report) {
        let root = node::parse(yaml).expect("yaml");
        let mut report = Report::new(Path::new("t.yml"));
        let top = Fields::of(Some(&root), "", &mut report);
        let proxy = Fields::of(top.get("proxy").map(|(n, _)| n), "proxy", &mut report);
        (check_usage_stats(&proxy, &mut report), report)
    }

    #[test]
    fn each_kind_of_url_makes_its_sink() {
        let (c, r) = read(
            "proxy:
  usage-stats-url: jdbc:postgresql://db.example:5433/stats?user=sp
  usage-stats-password: pw
  usage-stats-table-name: usage
  usage-stats-micrometer-prefix: shinyproxy
  usage-stats:
  - url: http://influx:8086/write?db=sp
  - url: /var/log/usage.csv
  - url: micrometer
",
        );
        assert!(!r.has_errors(), "{:?}", r.diagnostics);
        assert_eq!(c.sinks.len(), 4);
        assert_eq!(
            c.sinks[0],
            UsageSink::Postgres {
                name: "jdbc:postgresql://db.example:5433/stats".into(),
                host: "db.example".into(),
                port: 5433,
                dbname: "stats".into(),
                user: Some("sp".into()),
                password: Some("pw".into()),
                table: "usage".into(),
            }
        );
        assert!(matches!(c.sinks[1], UsageSink::Influx { .. }));
        assert_eq!(c.sinks[2], UsageSink::Csv("/var/log/usage.csv".into()));
        assert!(c.micrometer());
        assert_eq!(c.micrometer_prefix, "shinyproxy");
        assert!(!format!("{:?}", c).contains("pw"), "no password in Debug");
    }

    #[test]
    fn what_cannot_be_honoured_is_an_error() {
        for bad in [
            "jdbc:mysql://db/stats",
            "jdbc:postgresql://db/stats?sslmode=require",
            "ftp://somewhere",
        ] {
            let (_, r) = read(&format!("proxy:\n  usage-stats-url: {bad}\n"));
            assert!(r.has_errors(), "{bad}");
        }
        let (_, r) = read(
            "proxy:\n  usage-stats-url: jdbc:postgresql://db/s\n  usage-stats-table-name: 'x; drop'\n",
        );
        assert!(r.has_errors());
    }
}
