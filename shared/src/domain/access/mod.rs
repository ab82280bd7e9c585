//! Access rules of the HTTP API, pure: API keys and roles ([`keys`]) and idempotency keys
//! ([`idempotency`]). Their storage ports are in `crate::ports`.

pub mod idempotency;
pub mod keys;
