//! Authentication: an `Authorization` header's API key resolved to its principal through the
//! key port, or the bootstrap operator key read at start-up from the secret named by
//! `BOOTSTRAP_OPERATOR_KEY_SECRET` (`crate::adapters::aws::bootstrap`). No cache: the key is read
//! on every request, so a revoked key fails at once. The HTTP edge turns an [`AuthError`] into
//! its 401 or 503 (`crate::adapters::http::routes::auth_problem`).

use crate::domain::access::keys::{ApiKeyRecord, KeyHash, PresentedKey, Principal, Role};
use crate::ports::keys::ApiKeyStore;
use crate::ports::StoreError;
use chrono::{DateTime, Utc};

/// Why a request has no principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("an API key is required")]
    Missing,
    /// Not `Bearer <key>`, an unknown or revoked key, or a wrong secret.
    #[error("the API key is not valid")]
    Invalid,
    /// The key store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Resolves an `Authorization` header value (`None`: no header) to its principal. `bootstrap`
/// is the stored form of the bootstrap operator key ([`bootstrap_record`]).
pub async fn authenticate(
    keys: &dyn ApiKeyStore,
    bootstrap: Option<&ApiKeyRecord>,
    authorization: Option<&str>,
) -> Result<Principal, AuthError> {
    let header = authorization.ok_or(AuthError::Missing)?;
    let presented = header
        .trim()
        .split_once(' ')
        .and_then(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()))
        .and_then(|token| token.parse::<PresentedKey>().ok())
        .ok_or(AuthError::Invalid)?;
    if let Some(boot) = bootstrap.filter(|b| b.id == presented.prefix) {
        return boot.authenticate(&presented).ok_or(AuthError::Invalid);
    }
    match keys.get(&presented.prefix).await? {
        Some(record) => record.authenticate(&presented).ok_or(AuthError::Invalid),
        None => Err(AuthError::Invalid),
    }
}

/// The stored form of a bootstrap operator key: hashed with a fresh salt, never written
/// anywhere.
// Cannot fail where it runs: the OS random number generator is always there on Lambda's Linux,
// and without it no key could be hashed at all (this runs once, at start-up).
#[allow(clippy::expect_used)]
pub fn bootstrap_record(key: &PresentedKey, now: DateTime<Utc>) -> ApiKeyRecord {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the OS random number generator works");
    ApiKeyRecord {
        id: key.prefix.clone(),
        role: Role::Operator,
        account_id: None,
        provider_id: None,
        name: Some("bootstrap operator key (BOOTSTRAP_OPERATOR_KEY_SECRET)".into()),
        hash: KeyHash::new(key, &salt),
        created_at: now,
        revoked_at: None,
        replaced_by: None,
    }
}
