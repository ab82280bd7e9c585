//! meterline's common crate, in four layers. Dependencies point one way, inwards:
//!
//! - [`domain`]: the billing domain (meters, money, usage, pricing, billing cycles, currency,
//!   estimates, forecasts, access rules). Pure and synchronous: no I/O, no AWS type, no async
//!   runtime. It imports nothing of the other three layers.
//! - [`ports`]: the traits the services need from storage, queues and event buses, their value
//!   types and one error type. They import the domain only.
//! - [`services`]: the async use cases (ingest, close, replay, collections, estimates, budget
//!   check, usage queries) over the ports. They import the ports and the domain.
//! - [`adapters`]: the edge. DynamoDB, SQS and EventBridge (`adapters::aws`, feature `aws`),
//!   in-memory adapters for tests (`adapters::memory`, feature `testing`), the environment
//!   configuration and HTTP problem details. They may import all three.
//!
//! `shared/tests/layers.rs` fails if a domain file imports another layer or an async runtime.

pub mod adapters;
pub mod domain;
pub mod ports;
pub mod services;
