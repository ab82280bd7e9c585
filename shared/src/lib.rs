//! meterline's common crate.
//!
//! The billing domain (meters, usage, money, pricing, cycles) is plain synchronous Rust with no
//! AWS types. The ports its services need are traits in [`store`]; the DynamoDB, SQS and
//! EventBridge adapters live in [`aws`] (feature `aws`), at the edge.

pub mod meter;
pub mod money;
pub mod pricing;
pub mod usage;

pub use meter::Meter;
pub use money::{Currency, Money};
