use super::*;
use crate::adapters::memory::{MemoryCreditStore, MemoryEventPublisher, MemoryTopUpStore};
use crate::domain::credits::GrantSource;
use crate::ports::credits::CreditStore;
use crate::services::credits::no_pause;
use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use std::str::FromStr;

fn t(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, h, 0, 0).unwrap()
}

fn d(v: &str) -> Decimal {
    Decimal::from_str(v).unwrap()
}

struct World {
    top_ups: MemoryTopUpStore,
    credits: MemoryCreditStore,
    events: MemoryEventPublisher,
}

impl World {
    fn new() -> World {
        World {
            top_ups: MemoryTopUpStore::new(),
            credits: MemoryCreditStore::new(),
            events: MemoryEventPublisher::new(),
        }
    }

    fn service(&self) -> TopUps<'_> {
        TopUps {
            store: &self.top_ups,
            credits: Credits {
                store: &self.credits,
                pause: no_pause,
            },
            publisher: &self.events,
        }
    }
}

fn top_up(id: &str, amount: &str) -> TopUp {
    TopUp::new(id, "acct_a", Money::new(d(amount), Currency::USD), t(1)).unwrap()
}

fn result(event_id: &str, top_up_id: &str, amount: &str) -> PaymentResult {
    PaymentResult {
        event_id: event_id.into(),
        invoice_id: String::new(),
        top_up_id: Some(top_up_id.into()),
        account_id: "acct_a".into(),
        currency: "USD".into(),
        amount: d(amount),
        at: t(2),
        reason: None,
    }
}

#[tokio::test]
async fn a_request_is_recorded_pending_and_asks_for_its_payment_with_its_own_event() {
    let w = World::new();
    // An amount without its minor units is asked for with them.
    let stored = w.service().request(&top_up("tu_1", "50")).await.unwrap();
    assert_eq!(stored.status, TopUpStatus::Pending);
    let events = w.events.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].detail_type, "PaymentRequested");
    assert_eq!(events[0].event_id(), "payment-requested#top-up#acct_a#tu_1");
    assert_eq!(events[0].detail["purpose"], "top_up");
    assert_eq!(events[0].detail["top_up_id"], "tu_1");
    assert_eq!(events[0].detail["amount"], "50.00");
    assert!(events[0].detail.get("invoice_id").is_none());
    // A repeat answers the same top-up; another amount under the same id is refused.
    assert_eq!(
        w.service().request(&top_up("tu_1", "50.00")).await.unwrap(),
        stored
    );
    assert!(matches!(
        w.service().request(&top_up("tu_1", "60.00")).await,
        Err(TopUpFailure::Refused(CreditError::IdReused { .. }))
    ));
}

#[tokio::test]
async fn a_success_delivered_twice_makes_one_grant() {
    let w = World::new();
    w.service().request(&top_up("tu_1", "50.00")).await.unwrap();
    let s = w.service();
    assert_eq!(
        s.apply_result(&result("pay_1", "tu_1", "50.00"), true)
            .await
            .unwrap(),
        TopUpOutcome::Granted
    );
    assert_eq!(
        s.apply_result(&result("pay_1", "tu_1", "50.00"), true)
            .await
            .unwrap(),
        TopUpOutcome::Duplicate
    );
    let grants = s.credits.grants("acct_a", t(3)).await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].grant.id, "tu_1");
    assert_eq!(
        grants[0].grant.source,
        GrantSource::TopUp {
            payment_id: "pay_1".into()
        }
    );
    assert_eq!(grants[0].balance.available, d("50.00"));
    let stored = s.get("acct_a", "tu_1").await.unwrap().unwrap();
    assert_eq!(stored.status, TopUpStatus::Succeeded);
    assert_eq!(stored.payment_id.as_deref(), Some("pay_1"));
    // One granted entry in the ledger, however often it came.
    let page = w.credits.entries("acct_a", None, 100).await.unwrap();
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn a_crash_between_the_grant_and_the_mark_is_repaired_by_the_redelivery() {
    let w = World::new();
    let pending = w.service().request(&top_up("tu_1", "50.00")).await.unwrap();
    // The grant was made, the mark never written.
    let payment = TopUpPayment {
        payment_id: "pay_1".into(),
        amount: pending.amount,
        at: t(2),
        reason: None,
    };
    let grant = pending.succeed(&payment).unwrap().grant().unwrap();
    w.service().credits.grant(&grant, t(2)).await.unwrap();
    let s = w.service();
    assert_eq!(
        s.apply_result(&result("pay_1", "tu_1", "50.00"), true)
            .await
            .unwrap(),
        TopUpOutcome::Granted
    );
    assert_eq!(s.credits.grants("acct_a", t(3)).await.unwrap().len(), 1);
    assert_eq!(
        w.credits.entries("acct_a", None, 100).await.unwrap().items.len(),
        1
    );
}

#[tokio::test]
async fn results_that_do_not_match_their_top_up_change_nothing() {
    let w = World::new();
    w.service().request(&top_up("tu_1", "50.00")).await.unwrap();
    let s = w.service();
    let rejected = |o: TopUpOutcome| matches!(o, TopUpOutcome::Rejected(_));
    assert!(rejected(
        s.apply_result(&result("p", "tu_1", "49.99"), true).await.unwrap()
    ));
    assert!(rejected(
        s.apply_result(&result("p", "tu_2", "50.00"), true).await.unwrap()
    ));
    let other_account = PaymentResult {
        account_id: "acct_b".into(),
        ..result("p", "tu_1", "50.00")
    };
    assert!(rejected(s.apply_result(&other_account, true).await.unwrap()));
    let euros = PaymentResult {
        currency: "EUR".into(),
        ..result("p", "tu_1", "50.00")
    };
    assert!(rejected(s.apply_result(&euros, true).await.unwrap()));
    assert!(s.credits.grants("acct_a", t(3)).await.unwrap().is_empty());
    assert!(s.credits.grants("acct_b", t(3)).await.unwrap().is_empty());
    // Paid once, a second payment of it is rejected, not granted again.
    s.apply_result(&result("pay_1", "tu_1", "50.00"), true)
        .await
        .unwrap();
    assert!(rejected(
        s.apply_result(&result("pay_2", "tu_1", "50.00"), true)
            .await
            .unwrap()
    ));
    assert_eq!(s.credits.grants("acct_a", t(3)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_failure_marks_the_top_up_failed_and_grants_nothing() {
    let w = World::new();
    w.service().request(&top_up("tu_1", "50.00")).await.unwrap();
    let s = w.service();
    let declined = PaymentResult {
        reason: Some("card_declined".into()),
        ..result("pay_1", "tu_1", "50.00")
    };
    assert_eq!(
        s.apply_result(&declined, false).await.unwrap(),
        TopUpOutcome::Failed
    );
    assert_eq!(
        s.apply_result(&declined, false).await.unwrap(),
        TopUpOutcome::Duplicate
    );
    let stored = s.get("acct_a", "tu_1").await.unwrap().unwrap();
    assert_eq!(stored.status, TopUpStatus::Failed);
    assert_eq!(stored.failure.as_deref(), Some("card_declined"));
    assert!(s.credits.grants("acct_a", t(3)).await.unwrap().is_empty());
    // A failed top-up asks for no payment again when repeated.
    let before = w.events.events().len();
    s.request(&top_up("tu_1", "50.00")).await.unwrap();
    assert_eq!(w.events.events().len(), before);
}

#[tokio::test]
async fn the_grant_of_a_top_up_records_the_expiries_due_first_and_once() {
    use crate::domain::credits::{CreditGrant, EntryKind, GrantKind, GrantScope};
    let w = World::new();
    let promo = CreditGrant {
        id: "promo".into(),
        account_id: "acct_a".into(),
        amount: Money::new(d("5.00"), Currency::USD),
        kind: GrantKind::Promotional,
        priority: 0,
        effective_at: t(0),
        expires_at: Some(t(1)),
        scope: GrantScope::default(),
        source: GrantSource::Operator { note: "trial".into() },
    };
    w.service().credits.grant(&promo, t(0)).await.unwrap();
    w.service().request(&top_up("tu_1", "50.00")).await.unwrap();
    let s = w.service();
    // Paid at t(2), after the promotional grant expired at t(1).
    s.apply_result(&result("pay_1", "tu_1", "50.00"), true)
        .await
        .unwrap();
    s.apply_result(&result("pay_1", "tu_1", "50.00"), true)
        .await
        .unwrap();
    let kinds: Vec<(EntryKind, DateTime<Utc>)> = w
        .credits
        .entries("acct_a", None, 100)
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| (e.kind, e.at))
        .collect();
    assert_eq!(
        kinds,
        [
            (EntryKind::Granted, t(0)),
            (EntryKind::Expired, t(1)),
            (EntryKind::Granted, t(2))
        ]
    );
    let balance = s.credits.balances("acct_a", t(3)).await.unwrap();
    assert_eq!(balance[0].balance.available, d("50.00"));
    assert_eq!(balance[0].balance.forfeited, d("5.00"));
}
