//! Writes events to InfluxDB 1.x (`POST /write?db=…`) in line protocol, with ShinyProxy's shape:
//! measurement `event`, tags `username` and `type`, field `data`. The event's own time is sent,
//! since the write may come later than the event.

use async_trait::async_trait;
use std::time::Duration;

use super::UsageEvent;
use super::worker::Writer;

pub struct InfluxWriter {
    url: String,
    user: Option<String>,
    password: Option<String>,
    client: Option<reqwest::Client>,
}

impl InfluxWriter {
    pub fn new(url: String, user: Option<String>, password: Option<String>) -> Self {
        Self {
            url,
            user,
            password,
            client: None,
        }
    }

    fn client(&mut self) -> anyhow::Result<reqwest::Client> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let c = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        self.client = Some(c.clone());
        Ok(c)
    }
}

#[async_trait]
impl Writer for InfluxWriter {
    async fn write(&mut self, event: &UsageEvent) -> anyhow::Result<()> {
        let mut request = self.client()?.post(&self.url).body(line(event));
        if let Some(user) = &self.user {
            request = request.basic_auth(user, self.password.as_ref());
        }
        let response = request.send().await?;
        let status = response.status();
        if status != reqwest::StatusCode::NO_CONTENT && !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!("InfluxDB answered {status}: {}", body.trim());
        }
        Ok(())
    }
}

/// `event,username=alice,type=ProxyStart data="dash" 1700000000000000000`.
pub fn line(e: &UsageEvent) -> String {
    let mut out = String::from("event");
    // Line protocol has no empty tag values: an unnamed user's tag is left out.
    if !e.user.is_empty() {
        out.push_str(",username=");
        out.push_str(&tag(&e.user));
    }
    out.push_str(",type=");
    out.push_str(&tag(e.kind.name()));
    out.push_str(" data=\"");
    out.push_str(&field(e.data.as_deref().unwrap_or("")));
    out.push('"');
    out.push(' ');
    out.push_str(&(u128::from(e.time_ms) * 1_000_000).to_string());
    out.push('\n');
    out
}

fn tag(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            ',' | '=' | ' ' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            // A line break would end the line: it cannot be escaped.
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn field(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::usage::EventType;

    #[test]
    fn line_protocol_escapes_tags_and_fields() {
        let e = UsageEvent {
            time_ms: 2,
            user: "a b,c=d".into(),
            kind: EventType::Login,
            data: Some("x\"y".into()),
        };
        assert_eq!(
            line(&e),
            "event,username=a\\ b\\,c\\=d,type=Login data=\"x\\\"y\" 2000000\n"
        );
    }
}
