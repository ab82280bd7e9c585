//! meterline's common crate.
//!
//! The billing domain (meters, usage, money, pricing, cycles) is plain synchronous Rust with no
//! AWS types. The ports its services need are traits in [`store`]; the DynamoDB, SQS and
//! EventBridge adapters live in [`aws`] (feature `aws`), at the edge.

pub mod billing;
pub mod meter;
pub mod money;
pub mod usage;

pub use meter::Meter;
pub use money::{Currency, Money};
pub mod config;
pub mod ingest;
pub mod problem;
pub mod store;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod telemetry;
