//! Prepaid credit against the local endpoint (moto_server) and in memory: the credit store's
//! versioned saves and pages, and the credit routes through the real API handler (grants,
//! balances, the ledger, job authorizations with their capture and release), with the races the
//! service decides again: two holds for the last credit, a capture against a release or an
//! expiry.

use chrono::{DateTime, Duration, TimeZone, Utc};
use meterline_integration_tests::{on_both_backends, Backend, Stack};
use meterline_shared::domain::credits::{
    CreditGrant, CreditLedger, EntryKind, GrantKind, GrantScope, GrantSource,
};
use meterline_shared::domain::money::{Currency, Money};
use meterline_shared::ports::StoreError;
use rust_decimal::Decimal;

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn grant(account: &str, id: &str, cents: i64) -> CreditGrant {
    CreditGrant {
        id: id.into(),
        account_id: account.into(),
        amount: Money::new(Decimal::new(cents, 2), Currency::USD),
        kind: GrantKind::Paid,
        priority: 0,
        effective_at: t(0),
        expires_at: None,
        scope: GrantScope::default(),
        source: GrantSource::Operator { note: "test".into() },
    }
}

/// A save against the version loaded stores the entries and the state; a save against an older
/// version is a conflict and stores nothing.
async fn a_save_against_a_stale_version_is_a_conflict(backend: Backend) {
    let stack = Stack::on(backend, "credit-store").await;
    let store = stack.credits_of("ApiFunction");
    let fresh = store.load("acct_c").await.unwrap();
    assert_eq!((fresh.version, fresh.ledger.entry_count()), (0, 0));
    let mut a = fresh.ledger.clone();
    a.grant(&grant("acct_c", "g1", 1000), t(1)).unwrap();
    store.save(&a, 0).await.unwrap();
    // Another writer that loaded version 0 too loses.
    let mut b = fresh.ledger;
    b.grant(&grant("acct_c", "g2", 500), t(1)).unwrap();
    assert!(matches!(store.save(&b, 0).await, Err(StoreError::Conflict(_))));
    let loaded = store.load("acct_c").await.unwrap();
    assert_eq!((loaded.version, loaded.ledger.entry_count()), (1, 1));
    assert!(loaded.ledger.grant_state("g2").is_none());
    let mut c = loaded.ledger;
    c.grant(&grant("acct_c", "g3", 250), t(2)).unwrap();
    store.save(&c, 1).await.unwrap();
    assert!(matches!(store.save(&c, 1).await, Err(StoreError::Conflict(_))));
    let page = store.entries("acct_c", None, 10).await.unwrap();
    let granted: Vec<(u64, EntryKind)> = page.items.iter().map(|e| (e.seq, e.kind)).collect();
    assert_eq!(granted, [(1, EntryKind::Granted), (2, EntryKind::Granted)]);
    assert_eq!(page.next, None);
    // Another account's ledger is its own.
    assert_eq!(store.load("acct_other").await.unwrap().version, 0);
    assert!(store
        .entries("acct_other", None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
}

/// One save of more entries than a transaction takes is stored whole, and read back in pages.
async fn a_save_of_many_entries_is_stored_whole_and_read_by_page(backend: Backend) {
    let stack = Stack::on(backend, "credit-pages").await;
    let store = stack.credits_of("ApiFunction");
    let mut ledger = CreditLedger::new("acct_p");
    for i in 0..230 {
        ledger
            .grant(&grant("acct_p", &format!("g{i:03}"), 100), t(1))
            .unwrap();
    }
    store.save(&ledger, 0).await.unwrap();
    let loaded = store.load("acct_p").await.unwrap();
    assert_eq!((loaded.version, loaded.ledger.entry_count()), (1, 230));
    assert_eq!(
        loaded.ledger.balance(Currency::USD).available,
        Decimal::new(23000, 2)
    );
    let mut seqs = Vec::new();
    let mut after = None;
    loop {
        let page = store.entries("acct_p", after.as_deref(), 100).await.unwrap();
        assert!(page.items.len() <= 100);
        seqs.extend(page.items.iter().map(|e| e.seq));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seqs, (1..=230).collect::<Vec<u64>>());
    assert!(matches!(
        store.entries("acct_p", Some("not-a-cursor"), 10).await,
        Err(StoreError::InvalidCursor(_))
    ));
}

on_both_backends!(
    a_save_against_a_stale_version_is_a_conflict,
    a_save_of_many_entries_is_stored_whole_and_read_by_page,
);
