//! The top-up port: each account's top-ups, one record per top-up id, created once and settled
//! by a write conditioned on the status read (`services::top_ups`).

use crate::domain::credits::{TopUp, TopUpStatus};
use crate::ports::StoreError;
use futures::future::BoxFuture;

/// Where top-ups live.
pub trait TopUpStore: Send + Sync {
    /// Stores `top_up` if its account has no top-up with its id; otherwise returns the stored
    /// one and stores nothing.
    fn create<'a>(&'a self, top_up: &'a TopUp) -> BoxFuture<'a, Result<Option<TopUp>, StoreError>>;

    /// The account's top-up `top_up_id` (a strongly consistent read).
    fn get<'a>(
        &'a self,
        account_id: &'a str,
        top_up_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<TopUp>, StoreError>>;

    /// Replaces the stored top-up with `top_up` if its status is still `from`: otherwise
    /// [`StoreError::Conflict`], and nothing is stored.
    fn settle<'a>(&'a self, top_up: &'a TopUp, from: TopUpStatus) -> BoxFuture<'a, Result<(), StoreError>>;
}
