//! The spend-control port: an account's spend limits, and the claims that make each spend
//! event fire once.

use crate::domain::credits::{SpendEvent, SpendLimits};
use crate::ports::StoreError;
use futures::future::BoxFuture;

/// Where spend limits and spend-event claims live.
pub trait SpendStore: Send + Sync {
    /// Creates or replaces the account's limits.
    fn put_spend_limits<'a>(&'a self, limits: &'a SpendLimits) -> BoxFuture<'a, Result<(), StoreError>>;
    /// The account's limits, if it has any.
    fn spend_limits<'a>(
        &'a self,
        account_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<SpendLimits>, StoreError>>;
    /// Records the event's claim (its `event_id`), with the event listed as unsent, if the key
    /// is not claimed yet: `true` for the one caller that recorded it, which publishes it.
    fn claim_spend_event<'a>(&'a self, event: &'a SpendEvent) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Records that the event was published: it leaves the account's unsent list. Idempotent.
    fn spend_event_sent<'a>(&'a self, event: &'a SpendEvent) -> BoxFuture<'a, Result<(), StoreError>>;
    /// The account's claimed events not known to be published (a publish that failed, or a
    /// run that stopped between claim and publish), in key order.
    fn unsent_spend_events<'a>(
        &'a self,
        account_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SpendEvent>, StoreError>>;
}
