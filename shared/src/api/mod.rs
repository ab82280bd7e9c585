//! The HTTP API's security rules, pure: API keys and roles ([`keys`]) and idempotency keys
//! ([`idempotency`]). Their storage ports are in `crate::store`.

pub mod idempotency;
pub mod keys;
