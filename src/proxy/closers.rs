//! Who opened each proxied WebSocket (a session, an API token, and the instance it reaches),
//! so that ending the session, revoking the token or stopping the instance closes it. A
//! WebSocket is checked once, at its handshake; without this it would outlive its credential.

use dashmap::DashMap;
use tokio_util::sync::CancellationToken;

/// What a WebSocket hangs on: any of them ending closes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Opener {
    Session(String),
    Token(String),
    Instance(String),
}

#[derive(Default)]
pub struct Closers(DashMap<Opener, CancellationToken>);

impl Closers {
    /// The signals that close a WebSocket opened by `openers`.
    pub fn watch(&self, openers: &[Opener]) -> Vec<CancellationToken> {
        openers
            .iter()
            .map(|o| self.0.entry(o.clone()).or_default().clone())
            .collect()
    }

    /// Closes every WebSocket `opener` opened.
    pub fn close(&self, opener: &Opener) {
        if let Some((_, token)) = self.0.remove(opener) {
            token.cancel();
        }
    }

    /// The openers currently watched, so that a periodic sweep can close the WebSockets of those
    /// that ended without a word here (an expired session, a token revoked on another replica,
    /// an instance the culler stopped).
    pub fn openers(&self) -> Vec<Opener> {
        self.0.iter().map(|e| e.key().clone()).collect()
    }
}

/// Completes when any of `signals` is cancelled; never when there are none.
pub async fn any_cancelled(signals: &[CancellationToken]) {
    if signals.is_empty() {
        return std::future::pending().await;
    }
    futures_util::future::select_all(signals.iter().map(|s| Box::pin(s.cancelled()))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closing_one_opener_closes_what_it_opened() {
        let c = Closers::default();
        let s = Opener::Session("s1".into());
        let i = Opener::Instance("i1".into());
        let first = c.watch(&[s.clone(), i.clone()]);
        let other = c.watch(&[Opener::Session("s2".into()), i.clone()]);
        c.close(&s);
        tokio::time::timeout(std::time::Duration::from_secs(1), any_cancelled(&first))
            .await
            .expect("closed");
        assert!(!other.iter().any(|t| t.is_cancelled()));
        c.close(&i);
        assert!(other.iter().any(|t| t.is_cancelled()));
        assert_eq!(c.openers(), vec![Opener::Session("s2".into())]);
    }
}
