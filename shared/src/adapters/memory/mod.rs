//! In-memory adapters of every port, with the DynamoDB adapters' semantics (conditional writes,
//! atomic commits under one lock), for service tests, property tests and benchmarks. Behind
//! the `testing` feature: the Lambda binaries do not compile them.

pub mod billing;
pub mod budgets;
pub mod close_queue;
pub mod directory;
pub mod idempotency;
pub mod keys;
pub mod rates;
pub mod usage;

pub use billing::{MemoryBillingStore, MemoryEventPublisher};
pub use budgets::MemoryBudgetStore;
pub use close_queue::MemoryCloseQueue;
pub use directory::MemoryDirectory;
pub use idempotency::MemoryIdempotencyStore;
pub use keys::MemoryApiKeyStore;
pub use rates::InMemoryRateStore;
pub use usage::{MemoryUsageQueue, MemoryUsageStore};
