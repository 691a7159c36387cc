//! Appends events to a CSV file, as ShinyProxy's CSV collector does: a header of
//! `event_time,username,type,data` on a new file, every value quoted, and an existing file's own
//! column order kept.

use async_trait::async_trait;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;

use super::UsageEvent;
use super::worker::Writer;

const COLUMNS: [&str; 4] = ["event_time", "username", "type", "data"];

pub struct CsvWriter {
    path: PathBuf,
    /// The file's columns, read from its header on the first write.
    columns: Option<Vec<String>>,
}

impl CsvWriter {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            columns: None,
        }
    }

    /// The existing header's columns, or writes ours to a new or empty file.
    async fn columns(&mut self) -> anyhow::Result<Vec<String>> {
        if let Some(c) = &self.columns {
            return Ok(c.clone());
        }
        let existing = match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => text.lines().next().map(parse_header).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => anyhow::bail!("cannot read {}: {e}", self.path.display()),
        };
        let columns = if existing.is_empty() {
            let header = COLUMNS.join(",") + "\n";
            self.append(header.as_bytes()).await?;
            COLUMNS.iter().map(|c| c.to_string()).collect()
        } else {
            existing
        };
        self.columns = Some(columns.clone());
        Ok(columns)
    }

    async fn append(&self, bytes: &[u8]) -> anyhow::Result<()> {
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", self.path.display()))?;
        file.write_all(bytes).await?;
        file.flush().await?;
        Ok(())
    }
}

#[async_trait]
impl Writer for CsvWriter {
    async fn write(&mut self, event: &UsageEvent) -> anyhow::Result<()> {
        let columns = self.columns().await?;
        let line = row(&columns, event);
        if let Err(e) = self.append(line.as_bytes()).await {
            // The file may have been rotated away: read its header again next time.
            self.columns = None;
            return Err(e);
        }
        Ok(())
    }
}

fn parse_header(line: &str) -> Vec<String> {
    line.split(',')
        .map(|c| c.trim().trim_matches('"').to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

/// One line in the file's column order; columns we do not know stay empty.
fn row(columns: &[String], e: &UsageEvent) -> String {
    let cells: Vec<String> = columns
        .iter()
        .map(|c| {
            let value = match c.as_str() {
                "event_time" => e.time_ms.to_string(),
                "username" => e.user.clone(),
                "type" => e.kind.name().to_string(),
                "data" => e.data.clone().unwrap_or_default(),
                _ => String::new(),
            };
            quote(&value)
        })
        .collect();
    cells.join(",") + "\n"
}

/// RFC 4180 quoting; a leading `=`, `+`, `-` or `@` is defused so that a user name cannot become
/// a formula when an operator opens the file in a spreadsheet.
fn quote(value: &str) -> String {
    let defused = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    format!("\"{}\"", defused.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::usage::EventType;

    #[test]
    fn rows_follow_the_files_columns_and_quote_everything() {
        let e = UsageEvent {
            time_ms: 5,
            user: "a\"b".into(),
            kind: EventType::ProxyStart,
            data: Some("=cmd".into()),
        };
        let cols = parse_header("\"type\",\"username\",extra,data,event_time");
        assert_eq!(
            row(&cols, &e),
            "\"ProxyStart\",\"a\"\"b\",\"\",\"'=cmd\",\"5\"\n"
        );
    }
}
