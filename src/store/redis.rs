//! The shared store: Redis, through `fred`, for several replicas.
//!
//! While Redis is unreachable every call fails at once with [`StoreError::Unavailable`] instead
//! of queueing until it returns: a login should get a clear answer now, not hang. The client
//! reconnects by itself; when it does, replicas are told to resync ([`super::RESYNC_CHANNEL`]).

use async_trait::async_trait;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::config::{ServerConfig, TlsConnector};
use fred::types::{Expiration, SetOptions};
use std::time::Duration;
use tokio::sync::broadcast;

use super::{Admission, Notice, RESYNC_CHANNEL, Result, Store, StoreError};
use crate::config::RedisSettings;

/// Every key and channel vestibule writes starts with this, so one Redis can serve other
/// programs, and `vestibule:*` shows what is ours.
const PREFIX: &str = "vestibule:";
/// The channel replicas publish notices on.
const CHANNEL: &str = "vestibule:notices";

/// INCR that starts the window on the first count, atomically (two replicas counting the
/// first failure at once must not both miss setting the expiry).
const COUNT: &str = "local n = redis.call('INCR', KEYS[1]) \
    if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return n";
const MAP_MAX: &str = "local c = tonumber(redis.call('HGET', KEYS[1], ARGV[1])) \
    if not c or c < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end \
    return 1";
/// ARGV[1] is the member, ARGV[i + 1] the limit of KEYS[i] (-1 for none).
const ADMIT: &str = "for i = 1, #KEYS do \
      local limit = tonumber(ARGV[i + 1]) \
      if limit >= 0 and redis.call('SISMEMBER', KEYS[i], ARGV[1]) == 0 \
         and redis.call('SCARD', KEYS[i]) >= limit then return i end \
    end \
    for i = 1, #KEYS do redis.call('SADD', KEYS[i], ARGV[1]) end \
    return 0";
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
      return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
const COUNTER: &str = "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}";

pub struct RedisStore {
    client: Client,
    subscriber: SubscriberClient,
    notices: broadcast::Sender<Notice>,
    /// Where it is, for messages (never the password).
    address: String,
}

impl RedisStore {
    pub async fn connect(settings: &RedisSettings) -> anyhow::Result<Self> {
        let address = match &settings.sentinel {
            Some(s) => format!("Redis '{}' through Sentinel", s.master),
            None => format!("Redis at {}:{}", settings.host, settings.port),
        };
        let mut builder = Builder::from_config(client_config(settings)?);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = settings.timeout;
                c.internal_command_timeout = settings.timeout;
                // A command is tried once: during an outage callers get an error at once.
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| p.default_command_timeout = settings.timeout)
            // Reconnect for ever, every half second: Redis coming back must be noticed soon.
            .set_policy(ReconnectPolicy::new_constant(0, 500));
        let client = builder.build()?;
        let subscriber = builder.build_subscriber_client()?;
        client
            .init()
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to {address}: {e}"))?;
        subscriber
            .init()
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to {address}: {e}"))?;
        let _resubscribe = subscriber.manage_subscriptions();
        subscriber.subscribe(CHANNEL).await?;
        let (notices, _) = broadcast::channel(1024);
        spawn_forwarder(&subscriber, notices.clone());
        spawn_reconnect_watch(&client, notices.clone(), address.clone());
        tracing::info!(store = %address, "shared state is kept in Redis");
        Ok(Self {
            client,
            subscriber,
            notices,
            address,
        })
    }

    /// Fails at once while disconnected, rather than waiting for a reconnection.
    fn ready(&self) -> Result<&Client> {
        if self.client.is_connected() {
            Ok(&self.client)
        } else {
            Err(StoreError::Unavailable(format!(
                "{} is not connected",
                self.address
            )))
        }
    }

    fn failed(&self, e: Error) -> StoreError {
        StoreError::Unavailable(format!("{}: {e}", self.address))
    }
}

fn client_config(settings: &RedisSettings) -> anyhow::Result<Config> {
    let server = match &settings.sentinel {
        // Spring's `sentinel.password` is the sentinels' own; the data nodes keep `password`.
        Some(s) => ServerConfig::Sentinel {
            hosts: s
                .nodes
                .iter()
                .map(|(host, port)| fred::types::config::Server::new(host.clone(), *port))
                .collect(),
            service_name: s.master.clone(),
            username: None,
            password: s.password.as_ref().map(|p| p.0.clone()),
        },
        None => ServerConfig::new_centralized(settings.host.clone(), settings.port),
    };
    let tls = if settings.tls {
        Some(TlsConnector::default_rustls()?.into())
    } else {
        None
    };
    Ok(Config {
        server,
        username: settings.username.clone(),
        password: settings.password.as_ref().map(|p| p.0.clone()),
        database: Some(settings.database),
        tls,
        ..Config::default()
    })
}

fn key(k: &str) -> String {
    format!("{PREFIX}{k}")
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

fn spawn_forwarder(subscriber: &SubscriberClient, notices: broadcast::Sender<Notice>) {
    let mut messages = subscriber.message_rx();
    tokio::spawn(async move {
        loop {
            match messages.recv().await {
                Ok(m) => {
                    let Some(text) = m.value.as_string() else {
                        continue;
                    };
                    let Some((channel, message)) = text.split_once('\n') else {
                        continue;
                    };
                    let _ = notices.send(Notice {
                        channel: channel.to_string(),
                        message: message.to_string(),
                    });
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = notices.send(resync());
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Notices sent while this replica was cut off are lost: after a reconnection, resync.
fn spawn_reconnect_watch(client: &Client, notices: broadcast::Sender<Notice>, address: String) {
    let mut reconnects = client.reconnect_rx();
    let mut errors = client.error_rx();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                r = reconnects.recv() => match r {
                    Ok(_) => {
                        tracing::info!(store = %address, "reconnected to the state store");
                        let _ = notices.send(resync());
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                e = errors.recv() => match e {
                    Ok((e, _)) => tracing::warn!(store = %address, error = %e, "lost the state store; retrying"),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
}

fn resync() -> Notice {
    Notice {
        channel: RESYNC_CHANNEL.to_string(),
        message: String::new(),
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, k: &str) -> Result<Option<String>> {
        self.ready()?.get(key(k)).await.map_err(|e| self.failed(e))
    }

    async fn set(&self, k: &str, value: &str, ttl: Option<Duration>) -> Result<()> {
        let expiry = ttl.map(|t| Expiration::PX(millis(t)));
        self.ready()?
            .set::<(), _, _>(key(k), value, expiry, None, false)
            .await
            .map_err(|e| self.failed(e))
    }

    async fn set_if_absent(&self, k: &str, value: &str, ttl: Duration) -> Result<bool> {
        let set: Option<String> = self
            .ready()?
            .set(
                key(k),
                value,
                Some(Expiration::PX(millis(ttl))),
                Some(SetOptions::NX),
                false,
            )
            .await
            .map_err(|e| self.failed(e))?;
        Ok(set.is_some())
    }

    async fn expire(&self, k: &str, ttl: Duration) -> Result<bool> {
        self.ready()?
            .pexpire(key(k), millis(ttl), None)
            .await
            .map_err(|e| self.failed(e))
    }

    async fn delete(&self, k: &str) -> Result<bool> {
        let n: u64 = self
            .ready()?
            .del(key(k))
            .await
            .map_err(|e| self.failed(e))?;
        Ok(n > 0)
    }

    async fn take(&self, k: &str) -> Result<Option<String>> {
        self.ready()?
            .getdel(key(k))
            .await
            .map_err(|e| self.failed(e))
    }

    async fn count(&self, k: &str, window: Duration) -> Result<u64> {
        self.ready()?
            .eval(COUNT, vec![key(k)], vec![millis(window)])
            .await
            .map_err(|e| self.failed(e))
    }

    async fn counter(&self, k: &str) -> Result<Option<(u64, Duration)>> {
        let (count, ttl): (Option<u64>, i64) = self
            .ready()?
            .eval(COUNTER, vec![key(k)], Vec::<String>::new())
            .await
            .map_err(|e| self.failed(e))?;
        Ok(count.map(|c| {
            let left = u64::try_from(ttl).map_or(Duration::MAX, Duration::from_millis);
            (c, left)
        }))
    }

    async fn map_set(&self, map: &str, field: &str, value: &str) -> Result<()> {
        self.ready()?
            .hset::<(), _, _>(key(map), (field, value))
            .await
            .map_err(|e| self.failed(e))
    }

    async fn map_get(&self, map: &str, field: &str) -> Result<Option<String>> {
        self.ready()?
            .hget(key(map), field)
            .await
            .map_err(|e| self.failed(e))
    }

    async fn map_delete(&self, map: &str, field: &str) -> Result<bool> {
        let n: u64 = self
            .ready()?
            .hdel(key(map), field)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(n > 0)
    }

    async fn map_entries(&self, map: &str) -> Result<Vec<(String, String)>> {
        let all: std::collections::HashMap<String, String> = self
            .ready()?
            .hgetall(key(map))
            .await
            .map_err(|e| self.failed(e))?;
        Ok(all.into_iter().collect())
    }

    async fn map_max(&self, map: &str, field: &str, value: u64) -> Result<()> {
        self.ready()?
            .eval::<(), _, _, _>(
                MAP_MAX,
                vec![key(map)],
                vec![field.to_string(), value.to_string()],
            )
            .await
            .map_err(|e| self.failed(e))
    }

    async fn admit(&self, slots: &[(String, Option<u64>)], member: &str) -> Result<Admission> {
        let keys: Vec<String> = slots.iter().map(|(set, _)| key(set)).collect();
        let mut args = vec![member.to_string()];
        args.extend(
            slots
                .iter()
                .map(|(_, limit)| limit.map_or("-1".to_string(), |l| l.to_string())),
        );
        let full: i64 = self
            .ready()?
            .eval(ADMIT, keys, args)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(match usize::try_from(full) {
            Ok(0) | Err(_) => Admission::Admitted,
            Ok(slot) => Admission::Full(slot - 1),
        })
    }

    async fn release(&self, sets: &[String], member: &str) -> Result<()> {
        let client = self.ready()?;
        for set in sets {
            client
                .srem::<(), _, _>(key(set), member)
                .await
                .map_err(|e| self.failed(e))?;
        }
        Ok(())
    }

    async fn renew_if_holder(&self, k: &str, value: &str, ttl: Duration) -> Result<bool> {
        let renewed: i64 = self
            .ready()?
            .eval(
                RENEW,
                vec![key(k)],
                vec![value.to_string(), millis(ttl).to_string()],
            )
            .await
            .map_err(|e| self.failed(e))?;
        Ok(renewed == 1)
    }

    async fn publish(&self, channel: &str, message: &str) -> Result<()> {
        self.ready()?
            .publish::<(), _, _>(CHANNEL, format!("{channel}\n{message}"))
            .await
            .map_err(|e| self.failed(e))
    }

    fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    fn is_shared(&self) -> bool {
        true
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        let (client, subscriber) = (self.client.clone(), self.subscriber.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = subscriber.quit().await;
                let _ = client.quit().await;
            });
        }
    }
}
