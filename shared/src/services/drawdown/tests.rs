//! The draw-down over the in-memory adapters: what a period draws equals the metered total of
//! the invoice its close produces, whatever the batches and their replays.

use super::*;
use crate::adapters::memory::{
    InMemoryRateStore, MemoryBillingStore, MemoryCreditStore, MemoryEventPublisher, MemoryUsageStore,
};
use crate::domain::billing::{sample, Cadence, Invoice};
use crate::domain::credits::{is_metered, CreditGrant, EntryKind, GrantKind, GrantScope, GrantSource};
use crate::domain::meter::Meter;
use crate::domain::money::Money;
use crate::domain::usage::UsageEvent;
use crate::ports::billing::CloseRequest;
use crate::ports::StoreError;
use crate::services::closing::{CloseSettings, Closer};
use crate::services::credits::no_pause;
use crate::services::ingest::{ingest_batch, IngestSettings};
use chrono::TimeDelta;
use proptest::prelude::*;
use rust_decimal::Decimal;

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

const PERIOD_END: &str = "2027-01-31T23:00:00Z";

struct World {
    billing: MemoryBillingStore,
    usage: MemoryUsageStore,
    credits: MemoryCreditStore,
}

impl World {
    /// The sample account on a monthly plan from January 2027 (Berlin), with a grant of
    /// `credit_cents` (none: no ledger).
    async fn new(credit_cents: i64) -> World {
        let w = World {
            billing: MemoryBillingStore::new(),
            usage: MemoryUsageStore::new(),
            credits: MemoryCreditStore::new(),
        };
        w.billing.put_catalog(&sample::catalog()).await.unwrap();
        w.billing
            .put_account(&sample::account("acct_1", Currency::USD))
            .await
            .unwrap();
        let sub = sample::subscription("sub_1", "acct_1", Cadence::Monthly, utc("2026-12-31T23:00:00Z"));
        w.billing.put_subscription(&sub).await.unwrap();
        if credit_cents > 0 {
            let mut ledger = w.credits.load("acct_1").await.unwrap().ledger;
            let grant = CreditGrant {
                id: "g1".into(),
                account_id: "acct_1".into(),
                amount: Money::new(Decimal::new(credit_cents, 2), Currency::USD),
                kind: GrantKind::Paid,
                priority: 0,
                effective_at: utc("2027-01-01T00:00:00Z"),
                expires_at: None,
                scope: GrantScope::default(),
                source: GrantSource::Operator { note: "t".into() },
            };
            ledger.grant(&grant, utc("2027-01-01T00:00:00Z")).unwrap();
            w.credits.save(&ledger, 0).await.unwrap();
        }
        w
    }

    fn draw(&self) -> UsageDrawDown<'_> {
        UsageDrawDown {
            credits: &self.credits,
            billing: &self.billing,
            usage: &self.usage,
            pause: no_pause,
            control: None,
        }
    }

    /// Ingests one batch of events as one message and draws it down.
    async fn ingest_and_draw(&self, events: &[UsageEvent], now: DateTime<Utc>) -> Vec<PeriodDraw> {
        let body = serde_json::to_string(events).unwrap();
        let out = ingest_batch(&self.usage, &[body.as_str()], &IngestSettings::default(), now).await;
        assert!(out.failed.is_empty(), "{:?}", out.failed);
        let (draws, failed) = self.draw().draw_batch(&out.usage, now).await;
        assert!(failed.is_empty(), "{failed:?}");
        draws
    }

    async fn close(&self) -> Invoice {
        let publisher = MemoryEventPublisher::new();
        let rates = InMemoryRateStore::new();
        let closer = Closer {
            billing: &self.billing,
            usage: &self.usage,
            rates: &rates,
            publisher: &publisher,
            settings: CloseSettings::default(),
        };
        let req = CloseRequest {
            account_id: "acct_1".into(),
            subscription_id: "sub_1".into(),
            period_end: utc(PERIOD_END),
        };
        let mut report = closer
            .close_subscription(&req, utc(PERIOD_END) + TimeDelta::minutes(5))
            .await
            .unwrap();
        report.committed.remove(0)
    }
}

/// The invoice's metered total: the gross of its metered lines.
fn metered_total(invoice: &Invoice) -> Decimal {
    invoice
        .lines
        .iter()
        .filter(|l| l.rated.as_ref().is_some_and(is_metered))
        .map(|l| l.gross)
        .sum()
}

const KINDS: [(Meter, &str, Option<&str>); 5] = [
    (Meter::GpuSeconds, "prov_000", Some("A100")),
    (Meter::GpuSeconds, "prov_000", Some("H100")),
    (Meter::CpuSeconds, "prov_001", None),
    (Meter::CpuSeconds, "prov_002", None),
    (Meter::NetworkEgressGib, "prov_000", None),
];

fn event(i: usize, kind: usize, milli: u64, minute: i64) -> UsageEvent {
    let (meter, provider, gpu) = KINDS[kind];
    UsageEvent {
        id: format!("e{i}"),
        account_id: "acct_1".into(),
        provider_id: provider.into(),
        job_id: format!("job-{}", i % 3),
        meter,
        quantity: Decimal::new(milli as i64, 3),
        timestamp: utc("2027-01-10T00:00:00Z") + TimeDelta::minutes(minute),
        dimensions: gpu
            .map(|g| [("gpu_model".to_string(), g.to_string())].into_iter().collect())
            .unwrap_or_default(),
    }
}

/// The draw instant of batch `n`: after every event (they are up to 4 days after the 10th).
fn batch_time(n: usize) -> DateTime<Utc> {
    utc("2027-01-14T00:00:00Z") + TimeDelta::minutes(n as i64)
}

#[tokio::test]
async fn an_account_without_a_ledger_is_not_drawn_and_gets_none() {
    let w = World::new(0).await;
    let draws = w
        .ingest_and_draw(&[event(0, 0, 3_600_000, 10)], batch_time(0))
        .await;
    assert!(draws.is_empty());
    assert_eq!(w.credits.load("acct_1").await.unwrap().version, 0);
}

#[tokio::test]
async fn each_batch_draws_what_it_added_and_a_replay_draws_nothing() {
    let w = World::new(10_000).await;
    // 36,000 A100 GPU-s: 28.80 net, 34.27 gross (19 %).
    let first = [event(0, 0, 36_000_000, 10)];
    let d = w.ingest_and_draw(&first, batch_time(0)).await;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].drawn, Decimal::new(3427, 2));
    assert_eq!(d[0].balance.available, Decimal::new(6573, 2));
    assert_eq!(d[0].entries.len(), 1);
    assert_eq!(d[0].entries[0].kind, EntryKind::DrawnDown);
    let again = w.ingest_and_draw(&first, batch_time(1)).await;
    assert!(again[0].entries.is_empty());
    assert_eq!(again[0].drawn, Decimal::new(3427, 2));
    // Beyond the credit: the rest is uncovered, the available balance zero.
    let more = w
        .ingest_and_draw(&[event(1, 0, 180_000_000, 20)], batch_time(2))
        .await;
    let e = &more[0].entries[0];
    assert_eq!(e.amount, Decimal::new(6573, 2));
    assert!(e.uncovered > Decimal::ZERO);
    assert_eq!(more[0].balance.available, Decimal::ZERO);
}

#[tokio::test]
async fn a_draw_that_failed_is_caught_up_by_the_next_batch() {
    let w = World::new(100_000).await;
    // The first batch is committed but not drawn (as if the draw-down had failed).
    let body = serde_json::to_string(&[event(0, 0, 36_000_000, 10)]).unwrap();
    ingest_batch(
        &w.usage,
        &[body.as_str()],
        &IngestSettings::default(),
        batch_time(0),
    )
    .await;
    let d = w
        .ingest_and_draw(&[event(1, 0, 36_000_000, 30)], batch_time(1))
        .await;
    // Both batches' usage, as the close invoices it.
    assert!(d[0].drawn > Decimal::new(3427, 2));
    assert_eq!(d[0].drawn, metered_total(&w.close().await));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    /// For any usage of a period, split into any batches, with any batches replayed: the sum
    /// of the draw-downs over the period equals the metered total of the invoice its close
    /// produces, and the ledger's entries say the same (drawn plus uncovered).
    #[test]
    fn the_draw_down_of_a_period_equals_its_invoices_metered_total(
        events in proptest::collection::vec((0usize..5, 1u64..20_000_000, 0i64..(4 * 24 * 60)), 1..40),
        cuts in proptest::collection::vec(1usize..6, 1..20),
        replays in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
        credit in 0i64..20_000,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let w = World::new(credit.max(1)).await;
            let events: Vec<UsageEvent> = events
                .iter()
                .enumerate()
                .map(|(i, &(k, q, m))| event(i, k, q, m))
                .collect();
            let mut batches: Vec<&[UsageEvent]> = Vec::new();
            let (mut from, mut c) = (0, 0);
            while from < events.len() {
                let to = (from + cuts[c % cuts.len()]).min(events.len());
                batches.push(&events[from..to]);
                (from, c) = (to, c + 1);
            }
            let mut n = 0;
            for i in 0..batches.len() {
                w.ingest_and_draw(batches[i], batch_time(n)).await;
                n += 1;
                // Replays of batches already sent, in between.
                for r in replays.iter().filter(|r| r.index(batches.len()) == i) {
                    let j = r.index(i + 1);
                    w.ingest_and_draw(batches[j], batch_time(n)).await;
                    n += 1;
                }
            }
            let ledger = w.credits.load("acct_1").await.unwrap().ledger;
            let period_start = utc("2026-12-31T23:00:00Z");
            let drawn = ledger.period_drawn(period_start);
            let entries = w.credits.entries("acct_1", None, 100).await.unwrap().items;
            let in_entries: Decimal = entries
                .iter()
                .filter(|e| e.kind == EntryKind::DrawnDown)
                .map(|e| e.amount + e.uncovered)
                .sum();
            let invoice = w.close().await;
            prop_assert_eq!(drawn, metered_total(&invoice));
            prop_assert_eq!(in_entries, drawn);
            let balance = ledger.balance(Currency::USD);
            prop_assert_eq!(balance.consumed, drawn.min(Decimal::new(credit.max(1), 2)));
            Ok(())
        })?;
    }
}

/// A publisher whose next publish fails when `fail` is set.
#[derive(Default)]
struct Flaky {
    fail: std::sync::atomic::AtomicBool,
    inner: MemoryEventPublisher,
}

impl crate::ports::billing::EventPublisher for Flaky {
    fn publish<'a>(
        &'a self,
        events: &'a [crate::domain::billing::BillingEvent],
    ) -> futures::future::BoxFuture<'a, Result<(), StoreError>> {
        if self.fail.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Box::pin(async { Err(StoreError::Unavailable("bus down".into())) });
        }
        self.inner.publish(events)
    }
}

#[tokio::test]
async fn crossings_are_announced_once_and_a_failed_publish_is_sent_by_the_next_batch() {
    use crate::adapters::memory::MemorySpendStore;
    use crate::domain::credits::{HoldRequest, SpendLimits, SPEND_LIMIT_REACHED, SPEND_THRESHOLD_REACHED};
    use crate::ports::spend::SpendStore;
    let w = World::new(100_000).await;
    let loaded = w.credits.load("acct_1").await.unwrap();
    let mut ledger = loaded.ledger;
    ledger
        .place_hold(&HoldRequest {
            id: "h1".into(),
            job: "job_1".into(),
            amount: Money::new(Decimal::new(1000, 2), Currency::USD),
            scope: Default::default(),
            at: batch_time(0),
            expires_at: batch_time(0) + TimeDelta::days(2),
        })
        .unwrap();
    w.credits.save(&ledger, loaded.version).await.unwrap();
    let spend = MemorySpendStore::new();
    let limits = SpendLimits {
        account_id: "acct_1".into(),
        currency: Currency::USD,
        soft: Some(Decimal::from(30)),
        hard: Some(Decimal::from(60)),
    };
    spend.put_spend_limits(&limits).await.unwrap();
    let publisher = Flaky::default();
    let service = UsageDrawDown {
        control: Some(SpendControl {
            store: &spend,
            publisher: &publisher,
        }),
        ..w.draw()
    };
    let types = || -> Vec<String> {
        publisher
            .inner
            .events()
            .iter()
            .map(|e| e.detail_type.clone())
            .collect()
    };
    let mut n = 0;
    let mut batch = |i: usize| {
        n += 1;
        let body = serde_json::to_string(&[event(i, 0, 36_000_000, 10 + i as i64)]).unwrap();
        (body, batch_time(n))
    };
    let send = async |(body, now): (String, DateTime<Utc>)| {
        let out = ingest_batch(&w.usage, &[body.as_str()], &IngestSettings::default(), now).await;
        service.draw_batch(&out.usage, now).await
    };
    // 34.27 drawn: the soft limit.
    send(batch(0)).await;
    assert_eq!(types(), [SPEND_THRESHOLD_REACHED]);
    send(batch(0)).await;
    // 59.98: below the hard limit.
    send(batch(1)).await;
    assert_eq!(types(), [SPEND_THRESHOLD_REACHED]);
    // Beyond it, but the bus is down: claimed, not sent, and the draw reports the failure.
    publisher.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let (_, failed) = send(batch(2)).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(types(), [SPEND_THRESHOLD_REACHED]);
    assert_eq!(spend.unsent_spend_events("acct_1").await.unwrap().len(), 1);
    // The next batch sends it, once, naming the running job.
    let (_, failed) = send(batch(3)).await;
    assert!(failed.is_empty());
    send(batch(4)).await;
    assert_eq!(types(), [SPEND_THRESHOLD_REACHED, SPEND_LIMIT_REACHED]);
    let detail = &publisher.inner.events()[1].detail;
    assert_eq!(detail["reason"], "hard_limit");
    assert_eq!(detail["jobs"][0]["job_id"], "job_1");
    assert_eq!(
        publisher.inner.events()[1].source.as_deref(),
        Some("meterline.credits")
    );
    assert!(spend.unsent_spend_events("acct_1").await.unwrap().is_empty());
    assert_eq!(spend.claims().len(), 2);
}
