//! The credit port: one credit ledger per account, stored as its state (grants, holds, the
//! operations applied, how many entries) with a version, and its append-only entries.
//!
//! A write is optimistic: [`CreditStore::save`] stores the ledger's new entries and its new
//! state only if the stored version is still the one loaded, else it fails with
//! [`StoreError::Conflict`] and changes nothing. The service then loads the ledger again and
//! decides again (`services::credits`), so of two holds racing for the last credit one is
//! placed and the other refused with its shortfall.

use crate::domain::credits::{CreditLedger, LedgerEntry};
use crate::ports::{Page, StoreError};
use futures::future::BoxFuture;

/// Entries a listing page holds at most.
pub const MAX_ENTRY_PAGE: usize = 100;

/// An account's ledger as loaded, and the version to save it against.
#[derive(Debug, Clone)]
pub struct LoadedLedger {
    /// The ledger restored from its state: [`CreditLedger::entries`] is empty, new operations
    /// append after the stored entries.
    pub ledger: CreditLedger,
    /// `0` for an account with no ledger yet; each save adds one.
    pub version: u64,
}

/// Where credit ledgers live.
pub trait CreditStore: Send + Sync {
    /// The account's ledger (an empty one at version 0 if it has none).
    fn load<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<LoadedLedger, StoreError>>;

    /// Stores `ledger`'s new entries (those appended since it was loaded) and its state, as
    /// version `version + 1`, if the stored version is still `version`: otherwise
    /// [`StoreError::Conflict`], and nothing is stored.
    fn save<'a>(&'a self, ledger: &'a CreditLedger, version: u64) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The account's entries in `seq` order, at most `limit` (up to [`MAX_ENTRY_PAGE`]), after
    /// the position `after` (a `next` this store returned; `InvalidCursor` otherwise).
    fn entries<'a>(
        &'a self,
        account_id: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<LedgerEntry>, StoreError>>;
}

/// The cursor of the position after entry `seq`.
pub fn entry_cursor(seq: u64) -> String {
    format!("{seq:020}")
}

/// The `seq` a cursor from [`entry_cursor`] names.
pub fn parse_entry_cursor(cursor: &str) -> Result<u64, StoreError> {
    if cursor.len() != 20 || !cursor.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StoreError::InvalidCursor(cursor.to_string()));
    }
    cursor
        .parse()
        .map_err(|_| StoreError::InvalidCursor(cursor.to_string()))
}
