//! `Idempotency-Key` on POST requests (pure part): key rules, the request fingerprint, and what
//! to do with a key that is already stored.
//!
//! A key is scoped to the caller (the API key that sent it), so two tenants never share one.
//! The first request with a key claims it (storing its fingerprint, `in_progress`), does the
//! work and stores its response; a retry with the same key and the same request gets that
//! response again without the work being redone, and waits for it while the first is still
//! running. The same key with a different request is refused (422). Keys expire after
//! [`KEY_TTL_HOURS`].

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The header.
pub const HEADER: &str = "Idempotency-Key";
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;
/// How long a key (and its stored response) is kept.
pub const KEY_TTL_HOURS: i64 = 24;
/// How long a claim holds before another request with the same key may take the work over
/// (the first one is presumed dead): longer than the function timeout (30 s).
pub const LEASE_SECONDS: i64 = 60;

/// Why a key is refused.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(format!("must be 1 to {MAX_KEY_LEN} characters"));
    }
    if !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err("must be printable ASCII without spaces".into());
    }
    Ok(())
}

/// Where a key is stored: the caller's key id and the key.
pub fn scoped_key(caller: &str, key: &str) -> String {
    format!("{caller}#{key}")
}

/// Identifies a request: SHA-256 of its method, path, query and body, in hex.
pub fn fingerprint(method: &str, path: &str, query: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [method.as_bytes(), path.as_bytes(), query.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// A stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    /// `None` while the first request is running.
    pub response: Option<StoredResponse>,
    /// Until when the running request holds the key.
    pub lease_until: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What a request does with a key that is already stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer with the first request's response.
    Replay(StoredResponse),
    /// The first request is still running: wait and look again.
    Wait,
    /// The key was used for a different request.
    Mismatch,
}

/// Decides from the stored record.
pub fn decide(record: &IdempotencyRecord, fingerprint: &str) -> Decision {
    if record.fingerprint != fingerprint {
        return Decision::Mismatch;
    }
    match &record.response {
        Some(r) => Decision::Replay(r.clone()),
        None => Decision::Wait,
    }
}

/// When a key claimed at `now` expires.
pub fn expiry(now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::hours(KEY_TTL_HOURS)
}

/// Until when a claim made at `now` holds.
pub fn lease(now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::seconds(LEASE_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_printable_ascii() {
        assert!(check_key("a").is_ok());
        assert!(check_key(&"k".repeat(255)).is_ok());
        assert!(check_key("").is_err());
        assert!(check_key(&"k".repeat(256)).is_err());
        assert!(check_key("a b").is_err());
        assert!(check_key("é").is_err());
    }

    #[test]
    fn fingerprints_separate_their_parts() {
        let a = fingerprint("POST", "/v1/x", "", b"{}");
        assert_eq!(a, fingerprint("POST", "/v1/x", "", b"{}"));
        assert_ne!(a, fingerprint("POST", "/v1/x", "", b"{ }"));
        assert_ne!(a, fingerprint("POST", "/v1/y", "", b"{}"));
        assert_ne!(
            fingerprint("POST", "/v1/x", "a", b""),
            fingerprint("POST", "/v1/xa", "", b"")
        );
    }

    #[test]
    fn decisions() {
        let now = Utc::now();
        let mut r = IdempotencyRecord {
            fingerprint: "f".into(),
            response: None,
            lease_until: lease(now),
            expires_at: expiry(now),
        };
        assert_eq!(decide(&r, "g"), Decision::Mismatch);
        assert_eq!(decide(&r, "f"), Decision::Wait);
        let resp = StoredResponse {
            status: 201,
            content_type: "application/json".into(),
            body: "{}".into(),
        };
        r.response = Some(resp.clone());
        assert_eq!(decide(&r, "f"), Decision::Replay(resp));
        assert_eq!(decide(&r, "g"), Decision::Mismatch);
    }
}
