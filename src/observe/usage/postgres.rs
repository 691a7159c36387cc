//! Writes events to PostgreSQL, into ShinyProxy's table (`event` unless `table-name` says
//! otherwise): `event_time timestamp, username varchar(128), type varchar(128), data text`,
//! created when missing. The connection is made on the first event and made again after a
//! failure, so a database that is down at start-up only costs the events of that time.

use async_trait::async_trait;
use std::time::Duration;

use super::UsageEvent;
use super::worker::Writer;
use crate::config::UsageSink;

pub struct PostgresWriter {
    config: tokio_postgres::Config,
    table: String,
    client: Option<tokio_postgres::Client>,
}

impl PostgresWriter {
    /// `sink` must be [`UsageSink::Postgres`]; the config checker made the table name a plain
    /// identifier, so it can be written into the SQL.
    pub fn new(sink: &UsageSink) -> Self {
        let mut config = tokio_postgres::Config::new();
        config.connect_timeout(Duration::from_secs(5));
        config.application_name("vestibule");
        let mut table = "event".to_string();
        if let UsageSink::Postgres {
            host,
            port,
            dbname,
            user,
            password,
            table: t,
            ..
        } = sink
        {
            config.host(host).port(*port).dbname(dbname);
            if let Some(u) = user {
                config.user(u);
            }
            if let Some(p) = password {
                config.password(p);
            }
            table = t.clone();
        }
        Self {
            config,
            table,
            client: None,
        }
    }

    async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "usage statistics database connection ended");
            }
        });
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {} (event_time timestamp, username varchar(128), \
                 type varchar(128), data text)",
                self.table
            ))
            .await?;
        Ok(client)
    }
}

#[async_trait]
impl Writer for PostgresWriter {
    async fn write(&mut self, event: &UsageEvent) -> anyhow::Result<()> {
        let client = match self.client.take() {
            Some(c) if !c.is_closed() => c,
            _ => self.connect().await?,
        };
        // ShinyProxy writes the time as a timestamp without zone in its own time zone; the
        // database's session time zone is the closest match here.
        let sql = format!(
            "INSERT INTO {} (event_time, username, type, data) \
             VALUES (to_timestamp($1::float8 / 1000)::timestamp, $2, $3, $4)",
            self.table
        );
        #[allow(clippy::cast_precision_loss)]
        let millis = event.time_ms as f64;
        client
            .execute(
                &sql,
                &[&millis, &event.user, &event.kind.name(), &event.data],
            )
            .await?;
        self.client = Some(client);
        Ok(())
    }
}
