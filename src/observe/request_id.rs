//! The request id: one per request, on every log line of the request (a tracing span), in the
//! `X-Request-Id` response header, and passed on to the app. An id sent by a trusted load
//! balancer is kept, so one id follows the request through both; anyone else's is replaced, so
//! a client cannot plant misleading ids in the logs.

use http::{HeaderMap, HeaderName, HeaderValue};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longer ids are not ids a load balancer makes (UUIDs, 32-hex trace ids).
const MAX_LEN: usize = 128;

/// The request's id: the incoming one when `trusted` and well formed, else a new one. The
/// request's header is set to it, so the app sees the same id.
pub fn assign(headers: &mut HeaderMap, trusted: bool) -> HeaderValue {
    let incoming = trusted
        .then(|| headers.get(&X_REQUEST_ID))
        .flatten()
        .filter(|v| well_formed(v.as_bytes()))
        .cloned();
    let id = incoming.unwrap_or_else(generate);
    headers.insert(X_REQUEST_ID.clone(), id.clone());
    id
}

fn well_formed(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= MAX_LEN
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// 128 random bits as 32 hex digits, from the thread's generator: this runs for every proxied
/// request, so it must not cost a system call (as `Uuid::new_v4` does through getrandom).
fn generate() -> HeaderValue {
    let id = format!("{:032x}", rand::random::<u128>());
    // Hex digits are always a valid header value.
    HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_trusted_well_formed_id_is_kept() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID.clone(), HeaderValue::from_static("lb-1234"));
        assert_eq!(assign(&mut h.clone(), true), "lb-1234");
        let fresh = assign(&mut h, false);
        assert_ne!(fresh, "lb-1234");
        assert_eq!(h.get(&X_REQUEST_ID), Some(&fresh), "the app sees our id");
        let mut bad = HeaderMap::new();
        bad.insert(X_REQUEST_ID.clone(), HeaderValue::from_static("a b\"c"));
        assert_ne!(assign(&mut bad, true), "a b\"c");
        assert_eq!(generate().len(), 32);
    }
}
