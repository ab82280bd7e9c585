//! The credit service over the in-memory store.

use super::*;
use crate::adapters::memory::MemoryCreditStore;
use crate::domain::credits::{ChargeScope, EntryKind, GrantKind, GrantScope, GrantSource};
use crate::domain::meter::Meter;
use crate::domain::money::Money;
use crate::ports::credits::LoadedLedger;
use chrono::{Duration, TimeZone};
use rust_decimal::Decimal;
use std::str::FromStr;

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn usd(s: &str) -> Money {
    Money::new(Decimal::from_str(s).unwrap(), Currency::USD)
}

fn grant(id: &str, amount: &str) -> CreditGrant {
    CreditGrant {
        id: id.into(),
        account_id: "acct".into(),
        amount: usd(amount),
        kind: GrantKind::Paid,
        priority: 0,
        effective_at: t(0),
        expires_at: None,
        scope: GrantScope::default(),
        source: GrantSource::Operator {
            note: "prepaid".into(),
        },
    }
}

fn hold(id: &str, amount: &str, at: i64) -> HoldRequest {
    HoldRequest {
        id: id.into(),
        job: format!("job-{id}"),
        amount: usd(amount),
        scope: ChargeScope::job("p1", [Meter::GpuSeconds]),
        at: t(at),
        expires_at: t(at + 60),
    }
}

fn capture(hold_id: &str, amount: &str, at: i64) -> CaptureRequest {
    CaptureRequest {
        id: hold_id.into(),
        hold_id: hold_id.into(),
        amount: usd(amount).amount,
        at: t(at),
        beyond_hold: false,
    }
}

fn credits(store: &dyn CreditStore) -> Credits<'_> {
    Credits {
        store,
        pause: no_pause,
    }
}

async fn all_entries(store: &dyn CreditStore) -> Vec<LedgerEntry> {
    store.entries("acct", None, 100).await.unwrap().items
}

#[tokio::test]
async fn a_grant_is_made_once_and_shows_in_the_balance() {
    let store = MemoryCreditStore::new();
    let c = credits(&store);
    let first = c.grant(&grant("g1", "25.00"), t(1)).await.unwrap();
    // The same grant later: the same state, no new entry.
    assert_eq!(c.grant(&grant("g1", "25.00"), t(9)).await.unwrap(), first);
    assert_eq!(all_entries(&store).await.len(), 1);
    assert!(matches!(
        c.grant(&grant("g1", "30.00"), t(9)).await,
        Err(CreditsFailure::Refused(CreditError::IdReused { .. }))
    ));
    let balances = c.balances("acct", t(10)).await.unwrap();
    assert_eq!(balances.len(), 1);
    assert_eq!(balances[0].balance.available, usd("25.00").amount);
    assert_eq!(
        all_entries(&store).await.len(),
        1,
        "a read with nothing due writes nothing"
    );
}

#[tokio::test]
async fn a_hold_is_placed_captured_once_and_the_rest_released() {
    let store = MemoryCreditStore::new();
    let c = credits(&store);
    c.grant(&grant("g1", "25.00"), t(0)).await.unwrap();
    let h = c.place_hold("acct", &hold("h1", "20.00", 1)).await.unwrap();
    assert_eq!((h.status, h.held()), (HoldStatus::Open, usd("20.00").amount));
    let shortfall = c.place_hold("acct", &hold("h2", "6.00", 2)).await.unwrap_err();
    assert_eq!(
        shortfall,
        CreditsFailure::Refused(CreditError::Shortfall {
            needed: usd("6.00"),
            available: usd("5.00"),
            shortfall: usd("1.00"),
        })
    );
    let done = c.capture("acct", &capture("h1", "12.50", 30)).await.unwrap();
    assert_eq!(done.status, HoldStatus::Captured);
    let again = c.capture("acct", &capture("h1", "12.50", 45)).await.unwrap();
    assert_eq!(again, done, "a repeated capture answers as the first");
    let balance = &c.balances("acct", t(46)).await.unwrap()[0].balance;
    assert_eq!(
        (balance.available, balance.consumed),
        (usd("12.50").amount, usd("12.50").amount)
    );
    assert_eq!(
        all_entries(&store).await.len(),
        4,
        "grant, hold, capture, release of the rest"
    );
    assert!(matches!(
        c.release("acct", "h1", t(47)).await,
        Err(CreditsFailure::Refused(CreditError::HoldNotOpen { .. }))
    ));
}

#[tokio::test]
async fn an_expired_hold_is_released_on_the_next_operation_and_cannot_be_captured() {
    let store = MemoryCreditStore::new();
    let c = credits(&store);
    c.grant(&grant("g1", "25.00"), t(0)).await.unwrap();
    c.place_hold("acct", &hold("h1", "20.00", 1)).await.unwrap();
    // The capture comes after the hold's expiry (t(61)): the hold expired first.
    let late = c.capture("acct", &capture("h1", "5.00", 70)).await.unwrap_err();
    assert!(matches!(
        late,
        CreditsFailure::Refused(CreditError::HoldNotOpen {
            status: HoldStatus::Expired,
            ..
        })
    ));
    let entries = all_entries(&store).await;
    let last = entries.last().unwrap();
    assert_eq!(
        (last.kind, last.at),
        (EntryKind::HoldExpired, t(61)),
        "the expiry is on the record"
    );
    let h = c.hold("acct", "h1", t(71)).await.unwrap().unwrap();
    assert_eq!(h.status, HoldStatus::Expired);
    assert_eq!(
        c.balances("acct", t(71)).await.unwrap()[0].balance.available,
        usd("25.00").amount
    );
}

#[tokio::test]
async fn a_release_is_made_once_and_a_repeat_returns_the_hold() {
    let store = MemoryCreditStore::new();
    let c = credits(&store);
    c.grant(&grant("g1", "25.00"), t(0)).await.unwrap();
    c.place_hold("acct", &hold("h1", "20.00", 1)).await.unwrap();
    let released = c.release("acct", "h1", t(2)).await.unwrap();
    assert_eq!(released.status, HoldStatus::Released);
    assert_eq!(c.release("acct", "h1", t(3)).await.unwrap(), released);
    assert_eq!(all_entries(&store).await.len(), 3);
    assert!(matches!(
        c.release("acct", "nope", t(3)).await,
        Err(CreditsFailure::Refused(CreditError::UnknownHold(_)))
    ));
}

/// A store whose loads wait for the other task: both racing holds load the same version.
/// It counts the saves that lost.
struct Interleaved(MemoryCreditStore, std::sync::atomic::AtomicU32);

impl CreditStore for Interleaved {
    fn load<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<LoadedLedger, StoreError>> {
        Box::pin(async move {
            let loaded = self.0.load(account_id).await;
            tokio::task::yield_now().await;
            loaded
        })
    }
    fn save<'a>(&'a self, ledger: &'a CreditLedger, version: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let out = self.0.save(ledger, version).await;
            if matches!(out, Err(StoreError::Conflict(_))) {
                self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            out
        })
    }
    fn entries<'a>(
        &'a self,
        account_id: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<LedgerEntry>, StoreError>> {
        self.0.entries(account_id, after, limit)
    }
}

#[tokio::test]
async fn of_two_holds_racing_for_the_last_credit_one_is_placed_and_one_refused() {
    let store = Interleaved(MemoryCreditStore::new(), Default::default());
    let c = credits(&store);
    c.grant(&grant("g1", "10.00"), t(0)).await.unwrap();
    let (h1, h2) = (hold("h1", "8.00", 1), hold("h2", "8.00", 1));
    let (a, b) = futures::join!(c.place_hold("acct", &h1), c.place_hold("acct", &h2));
    let placed = [&a, &b].iter().filter(|r| r.is_ok()).count();
    assert_eq!(placed, 1, "{a:?} {b:?}");
    assert_eq!(
        store.1.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the loser's first save lost the race"
    );
    let refused = if a.is_err() { a } else { b };
    assert!(matches!(
        refused,
        Err(CreditsFailure::Refused(CreditError::Shortfall { .. }))
    ));
    let balance = &c.balances("acct", t(2)).await.unwrap()[0].balance;
    assert_eq!(
        (balance.held, balance.available),
        (usd("8.00").amount, usd("2.00").amount)
    );
}

#[tokio::test]
async fn the_ledger_is_read_by_page() {
    let store = MemoryCreditStore::new();
    let c = credits(&store);
    for i in 0..5 {
        c.grant(&grant(&format!("g{i}"), "1.00"), t(0)).await.unwrap();
    }
    let first = c.entries("acct", None, 2, t(1)).await.unwrap();
    assert_eq!(first.items.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    let next = first.next.unwrap();
    let second = c.entries("acct", Some(&next), 10, t(1)).await.unwrap();
    assert_eq!(second.items.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(second.next, None);
    assert!(matches!(
        c.entries("acct", Some("bogus"), 2, t(1)).await,
        Err(CreditsFailure::Store(StoreError::InvalidCursor(_)))
    ));
}
