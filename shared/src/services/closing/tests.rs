//! The close over the in-memory adapters: exactly once, numbering, late usage, credit notes,
//! currency conversion, provider statements, and the usage-billed property.

use crate::adapters::memory::InMemoryRateStore;
use crate::adapters::memory::MemoryUsageStore;
use crate::adapters::memory::{MemoryBillingStore, MemoryEventPublisher};
use crate::domain::billing::events::BillingEvent;
use crate::domain::billing::{sample, Cadence, Invoice, InvoiceStatus, MARKETPLACE};
use crate::domain::fx::ExchangeRate;
use crate::domain::meter::Meter;
use crate::domain::money::{Currency, Money};
use crate::domain::usage::{aggregate_refs, event_refs, Granularity, UsageEvent};
use crate::ports::billing::{BillingStore, DUE_SHARDS};
use crate::ports::billing::{CloseQueue, CloseRequest};
use crate::ports::rates::RateStore;
use crate::ports::usage::UsageStore;
use crate::ports::StoreError;
use crate::services::closing::{enqueue_due, CloseSettings, Closer};
use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::sync::Mutex;

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

struct World {
    billing: MemoryBillingStore,
    usage: MemoryUsageStore,
    rates: InMemoryRateStore,
    events: MemoryEventPublisher,
}

impl World {
    async fn new(currency: Currency, cadence: Cadence, start: &str) -> World {
        let w = World {
            billing: MemoryBillingStore::new(),
            usage: MemoryUsageStore::new(),
            rates: InMemoryRateStore::new(),
            events: MemoryEventPublisher::new(),
        };
        w.billing.put_catalog(&sample::catalog()).await.unwrap();
        w.billing
            .put_account(&sample::account("acct_1", currency))
            .await
            .unwrap();
        w.billing
            .put_subscription(&sample::subscription("sub_1", "acct_1", cadence, utc(start)))
            .await
            .unwrap();
        w
    }

    fn closer(&self) -> Closer<'_> {
        Closer {
            billing: &self.billing,
            usage: &self.usage,
            rates: &self.rates,
            publisher: &self.events,
            settings: CloseSettings::default(),
        }
    }

    async fn ingest(&self, events: &[UsageEvent]) {
        let (events, _) = crate::domain::usage::distinct_events(events.to_vec());
        let fresh: Vec<UsageEvent> = {
            let stored = self.usage.events();
            events
                .into_iter()
                .filter(|e| {
                    !stored
                        .iter()
                        .any(|s| s.account_id == e.account_id && s.id == e.id)
                })
                .collect()
        };
        let fresh = event_refs(&fresh);
        let aggs = aggregate_refs(&fresh, &[Granularity::Hour, Granularity::Day]);
        self.usage.commit(&fresh, &aggs, Utc::now()).await.unwrap();
    }

    async fn close(&self, period_end: &str, now: &str) -> crate::services::closing::CloseReport {
        let req = CloseRequest {
            account_id: "acct_1".into(),
            subscription_id: "sub_1".into(),
            period_end: utc(period_end),
        };
        self.closer().close_subscription(&req, utc(now)).await.unwrap()
    }
}

fn ev(id: &str, provider: &str, meter: Meter, q: &str, at: &str, dims: &[(&str, &str)]) -> UsageEvent {
    UsageEvent {
        id: id.into(),
        account_id: "acct_1".into(),
        provider_id: provider.into(),
        job_id: "job".into(),
        meter,
        quantity: d(q),
        timestamp: utc(at),
        dimensions: dims.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

fn january() -> Vec<UsageEvent> {
    vec![
        ev(
            "e1",
            "prov_000",
            Meter::GpuSeconds,
            "36000",
            "2027-01-05T10:00:00Z",
            &[("gpu_model", "A100")],
        ),
        ev(
            "e2",
            "prov_000",
            Meter::GpuSeconds,
            "4000",
            "2027-01-06T10:00:00Z",
            &[("gpu_model", "A100")],
        ),
        ev(
            "e3",
            "prov_000",
            Meter::GpuSeconds,
            "1000",
            "2027-01-07T10:00:00Z",
            &[("gpu_model", "H100")],
        ),
        ev(
            "e4",
            "prov_001",
            Meter::CpuSeconds,
            "10000",
            "2027-01-08T10:00:00Z",
            &[],
        ),
        ev(
            "e5",
            "prov_002",
            Meter::NetworkEgressGib,
            "12.5",
            "2027-01-09T10:00:00Z",
            &[],
        ),
    ]
}

fn statement_identity(inv: &Invoice, credited: Decimal) {
    let s = &inv.statements;
    let payouts: Decimal = s.statements.iter().map(|p| p.payout.amount).sum();
    let fees: Decimal = s.statements.iter().map(|p| p.marketplace_fee.amount).sum();
    let tax: Decimal = s.statements.iter().map(|p| p.tax.amount).sum();
    assert_eq!(inv.total - credited, payouts + fees + tax, "{}", inv.invoice_id);
}

#[tokio::test]
async fn a_period_closes_into_one_numbered_explained_invoice() {
    // Calendar months in Berlin: January 2027 ends at 2027-01-31T23:00Z.
    let w = World::new(Currency::USD, Cadence::Monthly, "2026-12-31T23:00:00Z").await;
    w.ingest(&january()).await;
    let report = w.close("2027-01-31T23:00:00Z", "2027-01-31T23:05:00Z").await;
    assert_eq!(report.committed.len(), 1);
    let inv = &report.committed[0];
    assert_eq!(inv.number.as_deref(), Some("ML-000001"));
    assert_eq!(inv.status, InvoiceStatus::Open);
    assert_eq!(inv.invoice_id, "inv_acct_1~sub_1_20261231T230000Z");
    // GPU A100 graduated: 36000 x 0.0008 + 4000 x 0.0006 = 28.80 + 2.40; H100 1000 x 0.0011 =
    // 1.10; CPU of prov_001: 3600 included, 6400 x 0.000018 = 0.1152 -> 0.12; egress 12.5 x
    // 0.09 = 1.125 -> 1.12; fee 10.00.
    let net: BTreeMap<(String, Option<Meter>), Decimal> =
        inv.lines.iter().fold(BTreeMap::new(), |mut m, l| {
            *m.entry((l.provider_id.clone(), l.meter)).or_default() += l.net;
            m
        });
    assert_eq!(net[&("prov_000".into(), Some(Meter::GpuSeconds))], d("32.30"));
    assert_eq!(net[&("prov_001".into(), Some(Meter::CpuSeconds))], d("0.12"));
    assert_eq!(
        net[&("prov_002".into(), Some(Meter::NetworkEgressGib))],
        d("1.12")
    );
    assert_eq!(net[&(MARKETPLACE.into(), None)], d("10.00"));
    assert_eq!(inv.net_total, d("43.54"));
    assert_eq!(inv.tax_total, inv.lines.iter().map(|l| l.tax).sum::<Decimal>());
    assert_eq!(inv.total, inv.net_total + inv.tax_total);
    assert_eq!(inv.amount_due, inv.total);
    assert_eq!(inv.due_date.to_string(), "2027-02-15");
    statement_identity(inv, Decimal::ZERO);
    let events = w.events.events();
    let kinds: Vec<&str> = events.iter().map(|e| e.detail_type.as_str()).collect();
    assert_eq!(kinds, ["InvoiceFinalized", "PaymentRequested"]);
    let sub = w.billing.subscription("acct_1", "sub_1").await.unwrap().unwrap();
    assert_eq!(sub.next_close_at, Some(utc("2027-02-28T23:00:00Z")));
}

#[tokio::test]
async fn duplicate_and_retried_requests_give_one_invoice_and_publish_once_finished() {
    let w = World::new(Currency::USD, Cadence::Daily, "2027-01-04T23:00:00Z").await;
    w.ingest(&january()[..1]).await;
    let first = w.close("2027-01-05T23:00:00Z", "2027-01-05T23:00:01Z").await;
    assert_eq!(first.committed.len(), 1);
    assert_eq!(first.events_published, 2);
    for _ in 0..3 {
        // The close was finished (numbered, published, marker removed): nothing to do again.
        let again = w.close("2027-01-05T23:00:00Z", "2027-01-05T23:30:00Z").await;
        assert!(again.committed.is_empty());
        assert_eq!(again.already_closed, 0);
        assert_eq!(again.events_published, 0);
    }
    assert_eq!(w.billing.invoices().len(), 1);
    assert_eq!(w.billing.last_number("ML").await.unwrap(), 1);
    let ids: std::collections::BTreeSet<String> = w
        .events
        .events()
        .iter()
        .map(|e| e.event_id().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "republished events keep their ids");
}

#[tokio::test]
async fn racing_closers_give_one_invoice_and_gapless_numbers() {
    let w = World::new(Currency::USD, Cadence::Daily, "2027-01-04T23:00:00Z").await;
    w.ingest(&january()).await;
    let req = CloseRequest {
        account_id: "acct_1".into(),
        subscription_id: "sub_1".into(),
        period_end: utc("2027-01-05T23:00:00Z"),
    };
    let closer = w.closer();
    let now = utc("2027-01-10T00:00:00Z");
    let results = futures::future::join_all((0..8).map(|_| closer.close_subscription(&req, now))).await;
    let committed: usize = results.iter().map(|r| r.as_ref().unwrap().committed.len()).sum();
    // Five daily periods ended by the 10th (the 5th to the 9th).
    assert_eq!(committed, 5);
    let mut numbers: Vec<String> = w
        .billing
        .invoices()
        .iter()
        .filter_map(|i| i.number.clone())
        .collect();
    numbers.sort();
    assert_eq!(numbers, (1..=5).map(|n| format!("ML-{n:06}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn late_usage_is_an_adjustment_next_period_and_replays_change_nothing() {
    let w = World::new(Currency::USD, Cadence::Daily, "2027-01-04T23:00:00Z").await;
    let day1 = vec![ev(
        "a",
        "prov_000",
        Meter::GpuSeconds,
        "1000",
        "2027-01-05T10:00:00Z",
        &[("gpu_model", "H100")],
    )];
    w.ingest(&day1).await;
    let r1 = w.close("2027-01-05T23:00:00Z", "2027-01-05T23:01:00Z").await;
    let original = r1.committed[0].clone();
    // Replaying the same usage changes nothing.
    w.ingest(&day1).await;
    // A late event for day 1 and normal usage for day 2.
    w.ingest(&[
        ev(
            "late",
            "prov_000",
            Meter::GpuSeconds,
            "500",
            "2027-01-05T20:00:00Z",
            &[("gpu_model", "H100")],
        ),
        ev(
            "b",
            "prov_001",
            Meter::CpuSeconds,
            "3600",
            "2027-01-06T10:00:00Z",
            &[],
        ),
    ])
    .await;
    let r2 = w.close("2027-01-06T23:00:00Z", "2027-01-06T23:01:00Z").await;
    let inv2 = &r2.committed[0];
    let adj: Vec<_> = inv2.lines.iter().filter(|l| l.adjusts.is_some()).collect();
    assert_eq!(adj.len(), 1);
    assert_eq!(adj[0].quantity, d("500"));
    assert_eq!(adj[0].net, d("0.55"));
    let a = adj[0].adjusts.as_ref().unwrap();
    assert_eq!(a.original_invoice_id, original.invoice_id);
    assert_eq!(a.original_period, original.period);
    assert_eq!(
        a.key,
        format!("adjustment#{}#{}", original.invoice_id, inv2.invoice_id)
    );
    // The original is unchanged.
    assert_eq!(
        w.billing
            .invoice("acct_1", &original.invoice_id)
            .await
            .unwrap()
            .unwrap(),
        original
    );
    // Replaying everything and closing the next day: no further adjustment.
    w.ingest(&day1).await;
    let r3 = w.close("2027-01-07T23:00:00Z", "2027-01-07T23:01:00Z").await;
    assert!(r3.committed[0].lines.iter().all(|l| l.adjusts.is_none()));
    statement_identity(inv2, Decimal::ZERO);
}

#[tokio::test]
async fn a_correction_that_lowers_the_bill_is_a_credit_note_applied_as_credit() {
    use crate::domain::billing::{close_period, CloseInput, PriorPeriod};
    use crate::domain::pricing::{Catalog, UsageRow};
    let cat = sample::catalog();
    let catalog = Catalog::new(cat.books.clone()).unwrap();
    let account = sample::account("acct_1", Currency::USD);
    let sub = sample::subscription("sub_1", "acct_1", Cadence::Daily, utc("2027-01-04T23:00:00Z"));
    let p0 = sub.schedule.period(0).unwrap();
    let p1 = sub.schedule.period(1).unwrap();
    let row = |q: &str, at: &str| UsageRow {
        provider_id: "prov_000".into(),
        meter: Meter::GpuSeconds,
        dimensions: [("gpu_model".to_string(), "A100".to_string())].into(),
        window_start: utc(at),
        quantity: d(q),
    };
    // Day 0 billed 40,000 GPU-s (graduated: 28.80 + 2.40); a correction says 30,000 (24.00).
    let day0 = [row("40000", "2027-01-05T10:00:00Z")];
    let base = |usage: &'static [UsageRow], period, prior| CloseInput {
        account: &account,
        subscription: &sub,
        period,
        catalog: &catalog,
        taxes: &cat.taxes,
        fees: &cat.fees,
        usage,
        prior,
        rate: None,
        now: period.end,
        refunds: Vec::new(),
    };
    let day0: &'static [UsageRow] = Box::leak(Box::new(day0));
    let mut first = close_period(&base(day0, p0, vec![])).unwrap().invoice;
    first = first.finalize(1).unwrap();
    let corrected: &'static [UsageRow] = Box::leak(Box::new([row("30000", "2027-01-05T10:00:00Z")]));
    let prior = vec![PriorPeriod {
        invoice: &first,
        adjusted: vec![],
        usage: corrected,
    }];
    let out = close_period(&base(&[], p1, prior)).unwrap();
    assert_eq!(out.credit_notes.len(), 1);
    let note = &out.credit_notes[0];
    // 7.20 net + 19 % tax (1.37) = 8.57 credited.
    assert_eq!(note.amount, d("8.57"));
    assert_eq!(note.original_invoice_id, first.invoice_id);
    // Applied as credit to the new invoice (10.00 fee + 1.90 tax = 11.90).
    assert_eq!(out.invoice.total, d("11.90"));
    assert_eq!(out.invoice.credit_applied, d("8.57"));
    assert_eq!(out.invoice.amount_due, d("3.33"));
    assert_eq!(out.new_credit_balance, Money::zero(Currency::USD));
    statement_identity(&out.invoice, d("8.57"));
}

fn eur_rate(rate: &str, at: &str) -> ExchangeRate {
    ExchangeRate::new(
        "USD/EUR".parse().unwrap(),
        d(rate),
        utc(at),
        vec!["ecb".into(), "kraken".into()],
        utc(at),
    )
    .unwrap()
}

#[tokio::test]
async fn invoices_in_another_currency_record_the_rate_in_force_at_period_end() {
    let w = World::new(Currency::EUR, Cadence::Daily, "2027-01-04T23:00:00Z").await;
    w.ingest(&january()[..1]).await;
    let req = CloseRequest {
        account_id: "acct_1".into(),
        subscription_id: "sub_1".into(),
        period_end: utc("2027-01-05T23:00:00Z"),
    };
    // No rate yet: the close fails, retryably, and writes nothing.
    let err = w
        .closer()
        .close_subscription(&req, utc("2027-01-05T23:01:00Z"))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(w.billing.invoices().is_empty());
    w.rates
        .put(&eur_rate("0.9", "2027-01-05T12:00:00Z"))
        .await
        .unwrap();
    w.rates
        .put(&eur_rate("0.5", "2027-01-05T23:00:00.001Z"))
        .await
        .unwrap(); // after period end
    let report = w
        .closer()
        .close_subscription(&req, utc("2027-01-05T23:02:00Z"))
        .await
        .unwrap();
    let inv = &report.committed[0];
    let conv = inv.conversion.as_ref().unwrap();
    assert_eq!(conv.rate.rate, d("0.9"));
    assert_eq!(conv.rate.sources, ["ecb", "kraken"]);
    assert_eq!(conv.rate_for, utc("2027-01-05T23:00:00Z"));
    // 28.80 USD of GPU -> 25.92 EUR; the 10.00 fee (one day of a daily plan) -> 9.00.
    assert_eq!(inv.currency, Currency::EUR);
    let gpu: Decimal = inv
        .lines
        .iter()
        .filter(|l| l.meter == Some(Meter::GpuSeconds))
        .map(|l| l.net)
        .sum();
    assert_eq!(gpu, d("25.92"));
    assert!(inv
        .lines
        .iter()
        .all(|l| Currency::EUR.is_rounded(l.net) && Currency::EUR.is_rounded(l.tax)));
    statement_identity(inv, Decimal::ZERO);
}

#[derive(Default)]
struct VecQueue(Mutex<Vec<CloseRequest>>);

impl CloseQueue for VecQueue {
    fn send<'a>(&'a self, requests: &'a [CloseRequest]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.0.lock().unwrap().extend_from_slice(requests);
            Ok(())
        })
    }
}

#[tokio::test]
async fn the_scheduler_enqueues_only_due_subscriptions_from_every_shard() {
    let w = World::new(Currency::USD, Cadence::Monthly, "2026-12-31T23:00:00Z").await;
    for i in 0..40 {
        let start = if i % 2 == 0 {
            "2026-12-31T23:00:00Z"
        } else {
            "2027-01-15T00:00:00Z"
        };
        w.billing
            .put_subscription(&sample::subscription(
                &format!("s{i}"),
                "acct_1",
                Cadence::Monthly,
                utc(start),
            ))
            .await
            .unwrap();
    }
    let q = VecQueue::default();
    // Even ones end January at 2027-01-31T23:00Z; odd ones started mid-January (stub period
    // ending the same instant); sub_1 too. All are due at 23:00.
    let n = enqueue_due(&w.billing, &q, utc("2027-01-31T22:59:59Z"))
        .await
        .unwrap();
    assert_eq!(n, 0);
    let n = enqueue_due(&w.billing, &q, utc("2027-01-31T23:00:00Z"))
        .await
        .unwrap();
    assert_eq!(n, 41);
    const { assert!(DUE_SHARDS > 1) };
}

fn gross_billed_per_meter(
    invoices: &[Invoice],
    notes: &[crate::domain::billing::CreditNoteDoc],
) -> BTreeMap<Meter, Decimal> {
    let mut out = BTreeMap::new();
    for l in invoices
        .iter()
        .flat_map(|i| &i.lines)
        .chain(notes.iter().flat_map(|n| &n.lines))
    {
        if let Some(m) = l.meter {
            *out.entry(m).or_default() += l.quantity;
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Whatever the workload, the order of arrival and the lateness: once every period is
    /// closed, the quantity billed per meter (invoices plus adjustments) is exactly the quantity
    /// ingested.
    #[test]
    fn usage_ingested_equals_usage_billed(
        events in proptest::collection::vec(
            (0usize..4, 0usize..4, 1u64..2_000_000, 0i64..(6 * 24), 0i64..60, 0usize..2),
            1..60,
        ),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let w = World::new(Currency::USD, Cadence::Daily, "2027-01-04T23:00:00Z").await;
            let meters = [Meter::CpuSeconds, Meter::GpuSeconds, Meter::NetworkEgressGib, Meter::StorageGibHours];
            let start = utc("2027-01-04T23:00:00Z");
            // Each event happens at `hour` and arrives `delay` hours later (up to 2.5 days late).
            let mut timeline: Vec<(DateTime<Utc>, UsageEvent)> = events
                .iter()
                .enumerate()
                .map(|(i, &(p, m, q, hour, delay, gpu))| {
                    let at = start + TimeDelta::hours(hour) + TimeDelta::minutes(7);
                    let dims: &[(&str, &str)] = if gpu == 1 { &[("gpu_model", "H100")] } else { &[] };
                    let e = ev(&format!("e{i}"), &format!("prov_00{p}"), meters[m],
                        &Decimal::new(q as i64, 3).to_string(), &at.to_rfc3339(), dims);
                    (at + TimeDelta::hours(delay), e)
                })
                .collect();
            timeline.sort_by_key(|(arrival, _)| *arrival);
            // Close each day at its end, after ingesting what arrived by then; then 4 more days.
            let mut next = 0;
            for day in 1..=10 {
                let close_at = start + TimeDelta::days(day);
                let arrived: Vec<UsageEvent> = timeline[next..]
                    .iter()
                    .take_while(|(a, _)| *a <= close_at)
                    .map(|(_, e)| e.clone())
                    .collect();
                next += arrived.len();
                w.ingest(&arrived).await;
                let req = CloseRequest {
                    account_id: "acct_1".into(),
                    subscription_id: "sub_1".into(),
                    period_end: close_at,
                };
                w.closer().close_subscription(&req, close_at).await.unwrap();
            }
            let mut ingested: BTreeMap<Meter, Decimal> = BTreeMap::new();
            for (_, e) in &timeline {
                *ingested.entry(e.meter).or_default() += e.quantity;
            }
            let billed = gross_billed_per_meter(&w.billing.invoices(), &w.billing.all_credit_notes());
            let billed: BTreeMap<Meter, Decimal> = billed.into_iter().filter(|(_, q)| !q.is_zero()).collect();
            prop_assert_eq!(billed, ingested);
            for inv in w.billing.invoices() {
                let noted: Decimal = w.billing.all_credit_notes().iter()
                    .filter(|n| n.issued_with == inv.invoice_id).map(|n| n.amount).sum();
                let s = &inv.statements;
                let parts: Decimal = s.statements.iter()
                    .map(|p| p.payout.amount + p.marketplace_fee.amount + p.tax.amount).sum();
                prop_assert_eq!(inv.total - noted, parts);
            }
            Ok(())
        })?;
    }
}

#[test]
fn events_carry_their_ids() {
    let e = BillingEvent {
        source: None,
        detail_type: "X".into(),
        detail: serde_json::json!({"event_id": "x#1"}),
    };
    assert_eq!(e.event_id(), "x#1");
}

#[tokio::test]
async fn a_close_left_unfinished_is_finished_by_its_retry_or_by_the_sweep() {
    use crate::services::closing::sweep_pending;
    let w = World::new(Currency::USD, Cadence::Daily, "2027-01-04T23:00:00Z").await;
    w.ingest(&january()[..1]).await;
    let req = |end: &str| CloseRequest {
        account_id: "acct_1".into(),
        subscription_id: "sub_1".into(),
        period_end: utc(end),
    };
    // A worker writes the draft and dies before numbering it.
    let drafted = w
        .closer()
        .draft_subscription(&req("2027-01-05T23:00:00Z"), utc("2027-01-05T23:01:00Z"))
        .await
        .unwrap();
    let draft = &drafted.committed[0];
    assert_eq!(draft.status, InvoiceStatus::Draft);
    assert_eq!(draft.number, None);
    assert!(w.events.events().is_empty());
    assert!(w
        .billing
        .pending_invoice("acct_1", &draft.invoice_id)
        .await
        .unwrap()
        .is_some());
    // The message is delivered again: the retry numbers and publishes it.
    let retry = w.close("2027-01-05T23:00:00Z", "2027-01-05T23:10:00Z").await;
    assert!(retry.committed.is_empty());
    assert_eq!(retry.events_published, 2);
    let inv = w
        .billing
        .invoice("acct_1", &draft.invoice_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (inv.status, inv.number.as_deref()),
        (InvoiceStatus::Open, Some("ML-000001"))
    );
    assert!(w
        .billing
        .pending_invoice("acct_1", &draft.invoice_id)
        .await
        .unwrap()
        .is_none());

    // The next day's worker dies too, and its message is lost: the sweep finishes it, once.
    let second = w
        .closer()
        .draft_subscription(&req("2027-01-06T23:00:00Z"), utc("2027-01-06T23:01:00Z"))
        .await
        .unwrap();
    let id = second.committed[0].invoice_id.clone();
    let finisher = w.closer();
    let finisher = finisher.finisher();
    // Not yet old enough for a sweep that only takes markers from before the draft.
    assert_eq!(
        sweep_pending(&finisher, utc("2027-01-06T23:00:00Z"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        sweep_pending(&finisher, utc("2027-01-06T23:10:00Z"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        sweep_pending(&finisher, utc("2027-01-06T23:20:00Z"))
            .await
            .unwrap(),
        0
    );
    let inv = w.billing.invoice("acct_1", &id).await.unwrap().unwrap();
    assert_eq!(
        (inv.status, inv.number.as_deref()),
        (InvoiceStatus::Open, Some("ML-000002"))
    );
    let finalized: Vec<String> = w
        .events
        .events()
        .iter()
        .filter(|e| e.detail_type == "InvoiceFinalized")
        .map(|e| e.event_id().to_string())
        .collect();
    assert_eq!(finalized.len(), 2);
    assert_eq!(w.billing.last_number("ML").await.unwrap(), 2);
}

#[tokio::test]
async fn fifty_closes_finished_by_eight_concurrent_workers_are_numbered_one_to_fifty() {
    let w = World::new(Currency::USD, Cadence::Daily, "2027-01-04T23:00:00Z").await;
    for i in 0..50 {
        let account = format!("acct_{i:02}");
        w.billing
            .put_account(&sample::account(&account, Currency::USD))
            .await
            .unwrap();
        w.billing
            .put_subscription(&sample::subscription(
                &format!("sub_{i:02}"),
                &account,
                Cadence::Daily,
                utc("2027-01-04T23:00:00Z"),
            ))
            .await
            .unwrap();
    }
    let closer = w.closer();
    let now = utc("2027-01-05T23:05:00Z");
    // Eight workers, each drafting its batches of messages, then finishing each batch.
    let workers = (0..8).map(|k| {
        let closer = &closer;
        async move {
            let mine: Vec<usize> = (0..50).filter(|i| i % 8 == k).collect();
            for batch in mine.chunks(3) {
                let mut work = Vec::new();
                for i in batch {
                    let req = CloseRequest {
                        account_id: format!("acct_{i:02}"),
                        subscription_id: format!("sub_{i:02}"),
                        period_end: utc("2027-01-05T23:00:00Z"),
                    };
                    work.extend(closer.draft_subscription(&req, now).await.unwrap().to_finish);
                    tokio::task::yield_now().await;
                }
                closer.finish(work).await.unwrap();
            }
        }
    });
    futures::future::join_all(workers).await;
    let mut numbers: Vec<String> = w
        .billing
        .invoices()
        .iter()
        .filter_map(|i| i.number.clone())
        .collect();
    numbers.sort();
    assert_eq!(
        numbers,
        (1..=50).map(|n| format!("ML-{n:06}")).collect::<Vec<_>>()
    );
    assert!(w
        .billing
        .invoices()
        .iter()
        .all(|i| i.status == InvoiceStatus::Open));
    // One numbering write per batch of a worker, not one per close.
    assert_eq!(
        w.billing.numberings(),
        (0..8)
            .map(|k| (0..50).filter(|i| i % 8 == k).count().div_ceil(3))
            .sum::<usize>()
    );
}

#[tokio::test]
async fn late_usage_that_lowers_a_bill_publishes_its_credit_note() {
    let w = World::new(Currency::USD, Cadence::Daily, "2027-01-04T23:00:00Z").await;
    // prov_000's GPU price in volume tiers: more usage can cost less.
    let mut catalog = sample::catalog();
    let mut books = serde_json::to_value(&catalog.books).unwrap();
    books[0]["prices"][1]["model"] = serde_json::json!({"type": "volume", "tiers": [
        {"from": "0", "up_to": "36000", "unit_price": "0.0008"},
        {"from": "36000", "unit_price": "0.0006"}]});
    catalog.books = serde_json::from_value(books).unwrap();
    w.billing.put_catalog(&catalog).await.unwrap();
    w.ingest(&january()[..1]).await; // 36,000 A100 GPU-s on the 5th: 28.80
    w.close("2027-01-05T23:00:00Z", "2027-01-05T23:01:00Z").await;
    // 4,000 more for the 5th arrive late: 40,000 at 0.0006 = 24.00, 4.80 less.
    w.ingest(&[ev(
        "late",
        "prov_000",
        Meter::GpuSeconds,
        "4000",
        "2027-01-05T20:00:00Z",
        &[("gpu_model", "A100")],
    )])
    .await;
    let r = w.close("2027-01-06T23:00:00Z", "2027-01-06T23:01:00Z").await;
    let notes = w.billing.all_credit_notes();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].issued_with, r.committed[0].invoice_id);
    let published: Vec<BillingEvent> = w
        .events
        .events()
        .into_iter()
        .filter(|e| e.detail_type == "CreditNoteIssued")
        .collect();
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0].event_id(),
        format!("credit-note-issued#{}", notes[0].credit_note_id)
    );
    assert_eq!(published[0].detail["amount"], notes[0].amount.to_string());
}

/// The steps of drafting a close, one by one.
mod draft_steps {
    use super::*;
    use crate::services::closing::LoadedCatalog;

    fn request(period_end: &str) -> CloseRequest {
        CloseRequest {
            account_id: "acct_1".into(),
            subscription_id: "sub_1".into(),
            period_end: utc(period_end),
        }
    }

    #[tokio::test]
    async fn the_catalog_is_read_once_per_loaded_catalog() {
        let w = World::new(Currency::USD, Cadence::Daily, "2027-01-04T23:00:00Z").await;
        let mut loaded = LoadedCatalog::default();
        let books = loaded.get(&w.billing).await.unwrap().1.books.len();
        w.billing
            .put_catalog(&crate::domain::pricing::CatalogData::default())
            .await
            .unwrap();
        assert_eq!(loaded.get(&w.billing).await.unwrap().1.books.len(), books);
        assert!(books > 0);
        let mut fresh = LoadedCatalog::default();
        assert!(fresh.get(&w.billing).await.unwrap().1.books.is_empty());
    }

    #[tokio::test]
    async fn draft_next_computes_the_commit_and_writes_nothing() {
        let w = World::new(Currency::USD, Cadence::Daily, "2027-01-04T23:00:00Z").await;
        w.ingest(&january()[..1]).await;
        let sub = w.billing.subscription("acct_1", "sub_1").await.unwrap().unwrap();
        let next = sub.next_close_at.unwrap();
        let commit = w
            .closer()
            .draft_next(
                &sub,
                next,
                utc("2027-01-05T23:01:00Z"),
                &mut LoadedCatalog::default(),
            )
            .await
            .unwrap();
        assert_eq!(commit.expected_next_close, next);
        assert_eq!(commit.next_close, Some(utc("2027-01-06T23:00:00Z")));
        assert_eq!(commit.invoice.status, InvoiceStatus::Draft);
        assert_eq!(commit.invoice.invoice_id, "inv_acct_1~sub_1_20270104T230000Z");
        // 36,000 GPU-s of A100 at 0.0008 and the 10.00 fee.
        assert_eq!(commit.invoice.net_total, d("38.80"));
        assert_eq!(w.billing.commits(), 0);
        assert!(w.billing.invoices().is_empty());
    }

    #[tokio::test]
    async fn history_holds_the_closed_periods_within_the_lookback() {
        let w = World::new(Currency::USD, Cadence::Daily, "2027-01-04T23:00:00Z").await;
        w.close("2027-01-05T23:00:00Z", "2027-01-05T23:01:00Z").await;
        w.close("2027-01-06T23:00:00Z", "2027-01-06T23:01:00Z").await;
        let sub = w.billing.subscription("acct_1", "sub_1").await.unwrap().unwrap();
        let account = w.billing.account("acct_1").await.unwrap().unwrap();
        let period = sub.period_to_close().unwrap().unwrap();
        let h = w.closer().history(&account, &sub, period).await.unwrap();
        let ids: Vec<&str> = h.earlier.iter().map(|i| i.invoice_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "inv_acct_1~sub_1_20270104T230000Z",
                "inv_acct_1~sub_1_20270105T230000Z"
            ]
        );
        assert_eq!(h.from(period), utc("2027-01-04T23:00:00Z"));
        let rows = vec![Vec::new(), Vec::new()];
        assert_eq!(h.prior(&rows).len(), 2);
        // With no lookback, nothing earlier is re-checked.
        let mut closer = w.closer();
        closer.settings.late_usage_lookback = TimeDelta::zero();
        let h = closer.history(&account, &sub, period).await.unwrap();
        assert!(h.earlier.is_empty());
        assert_eq!(h.from(period), period.start);
    }

    #[tokio::test]
    async fn the_exchange_rate_is_read_either_way_round_or_is_missing() {
        let w = World::new(Currency::EUR, Cadence::Daily, "2027-01-04T23:00:00Z").await;
        let sub = w.billing.subscription("acct_1", "sub_1").await.unwrap().unwrap();
        let account = w.billing.account("acct_1").await.unwrap().unwrap();
        let period = sub.period_to_close().unwrap().unwrap();
        let mut loaded = LoadedCatalog::default();
        let cat = &loaded.get(&w.billing).await.unwrap().0;
        let err = w
            .closer()
            .exchange_rate(&account, cat, period.end)
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err}");
        let eur_usd = ExchangeRate::new(
            "EUR/USD".parse().unwrap(),
            d("1.1"),
            utc("2027-01-05T12:00:00Z"),
            vec!["ecb".into()],
            utc("2027-01-05T12:00:00Z"),
        )
        .unwrap();
        w.rates.put(&eur_usd).await.unwrap();
        let got = w.closer().exchange_rate(&account, cat, period.end).await.unwrap();
        assert_eq!(got.map(|r| r.rate), Some(d("1.1")));
        let usd = sample::account("acct_2", Currency::USD);
        assert_eq!(
            w.closer().exchange_rate(&usd, cat, period.end).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn the_requested_period_is_picked_up_only_while_its_marker_is_there() {
        let w = World::new(Currency::USD, Cadence::Daily, "2027-01-04T23:00:00Z").await;
        let req = request("2027-01-05T23:00:00Z");
        let drafted = w
            .closer()
            .draft_subscription(&req, utc("2027-01-05T23:01:00Z"))
            .await
            .unwrap();
        let sub = w.billing.subscription("acct_1", "sub_1").await.unwrap().unwrap();
        // The call that wrote it finishes it itself.
        let found = w
            .closer()
            .requested_unfinished(&req, &sub, &drafted)
            .await
            .unwrap();
        assert!(found.is_none());
        // Another call (a retry) picks it up while its pending marker is there...
        let retry = crate::services::closing::CloseReport::default();
        let found = w.closer().requested_unfinished(&req, &sub, &retry).await.unwrap();
        assert_eq!(
            found.map(|f| f.invoice.invoice_id),
            Some("inv_acct_1~sub_1_20270104T230000Z".to_string())
        );
        // ...and not once it is finished.
        w.closer().finish(drafted.to_finish).await.unwrap();
        let found = w.closer().requested_unfinished(&req, &sub, &retry).await.unwrap();
        assert!(found.is_none());
        // A request for the anchor itself has no period.
        let found = w
            .closer()
            .requested_unfinished(&request("2027-01-04T23:00:00Z"), &sub, &retry)
            .await
            .unwrap();
        assert!(found.is_none());
    }
}

/// Reserved capacity through the close: the upfront on its own invoice, once.
mod upfronts {
    use super::*;
    use crate::domain::billing::upfront::refund_note_id;
    use crate::domain::billing::{InvoiceKind, PlanChange};
    use crate::domain::pricing::LineKind;

    /// `sub_1` monthly from January 2027 (Berlin), with a reservation of 100,000 GPU-s a month
    /// of `prov_000` from 2027-01-10, 1,000.00 upfront and 50.00 a month.
    async fn world(on_cancel: &str) -> World {
        let w = World::new(Currency::USD, Cadence::Monthly, "2026-12-31T23:00:00Z").await;
        let mut sub = w.billing.subscription("acct_1", "sub_1").await.unwrap().unwrap();
        sub.plan.reservations.push(
            serde_json::from_value(serde_json::json!({"id": "r1", "meter": "gpu_seconds",
                "units_per_period": "100000", "term_start": "2027-01-10T00:00:00Z", "term_months": 12,
                "upfront": "partial", "upfront_amount": "1000.00", "monthly_fee": "50.00",
                "provider_id": "prov_000", "on_cancel": on_cancel}))
            .unwrap(),
        );
        w.billing.put_subscription(&sub).await.unwrap();
        w
    }

    fn request(at: &str) -> CloseRequest {
        CloseRequest {
            account_id: "acct_1".into(),
            subscription_id: "sub_1".into(),
            period_end: utc(at),
        }
    }

    #[tokio::test]
    async fn the_scheduler_wakes_the_close_at_the_term_start_and_the_upfront_is_invoiced_once() {
        let w = world("no_refund").await;
        let q = VecQueue::default();
        assert_eq!(
            enqueue_due(&w.billing, &q, utc("2027-01-09T23:59:59Z"))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            enqueue_due(&w.billing, &q, utc("2027-01-10T00:00:00Z"))
                .await
                .unwrap(),
            1
        );
        let req = q.0.lock().unwrap()[0].clone();
        let report = w
            .closer()
            .close_subscription(&req, utc("2027-01-10T00:01:00Z"))
            .await
            .unwrap();
        assert_eq!(report.committed.len(), 1);
        let inv = &report.committed[0];
        assert_eq!(inv.kind, InvoiceKind::ReservationUpfront);
        assert_eq!(inv.number.as_deref(), Some("ML-000001"));
        assert_eq!(
            (inv.net_total, inv.tax_total, inv.total),
            (d("1000.00"), d("190.00"), d("1190.00"))
        );
        statement_identity(inv, Decimal::ZERO);
        let kinds: Vec<String> = w.events.events().iter().map(|e| e.detail_type.clone()).collect();
        assert!(kinds.contains(&"InvoiceFinalized".to_string()), "{kinds:?}");
        // Invoiced: out of the due index; the same request again, or a close, writes nothing.
        assert_eq!(
            enqueue_due(&w.billing, &VecQueue::default(), utc("2027-01-10T00:05:00Z"))
                .await
                .unwrap(),
            0
        );
        let again = w
            .closer()
            .close_subscription(&req, utc("2027-01-10T00:06:00Z"))
            .await
            .unwrap();
        assert!(again.committed.is_empty());
        // January closes with the monthly fee and usage, never a share of the upfront.
        let jan = w.close("2027-01-31T23:00:00Z", "2027-01-31T23:05:00Z").await;
        assert_eq!(jan.committed.len(), 1);
        let period = &jan.committed[0];
        assert_eq!(period.kind, InvoiceKind::Period);
        assert_eq!(period.number.as_deref(), Some("ML-000002"));
        let kinds = |inv: &Invoice| -> Vec<LineKind> {
            inv.lines
                .iter()
                .filter_map(|l| l.rated.as_ref().map(|r| r.kind))
                .collect()
        };
        assert_eq!(kinds(period), [LineKind::RecurringFee]);
        assert_eq!(w.billing.invoices().len(), 2);
        // February (the first period starting in the term): the monthly fee and the unused
        // units; its close does not take the upfront invoice for an earlier period.
        let feb = w.close("2027-02-28T23:00:00Z", "2027-02-28T23:05:00Z").await;
        assert_eq!(
            kinds(&feb.committed[0]),
            [
                LineKind::RecurringFee,
                LineKind::ReservationFee,
                LineKind::ReservedUnused
            ]
        );
        assert!(feb.committed[0].lines.iter().all(|l| l.adjusts.is_none()));
    }

    #[tokio::test]
    async fn a_period_close_invoices_an_upfront_the_wake_up_missed() {
        let w = world("no_refund").await;
        let report = w.close("2027-01-31T23:00:00Z", "2027-01-31T23:05:00Z").await;
        let kinds: Vec<InvoiceKind> = report.committed.iter().map(|i| i.kind).collect();
        assert_eq!(kinds, [InvoiceKind::ReservationUpfront, InvoiceKind::Period]);
        let numbers: Vec<&str> = report
            .committed
            .iter()
            .filter_map(|i| i.number.as_deref())
            .collect();
        assert_eq!(numbers, ["ML-000001", "ML-000002"]);
    }

    #[tokio::test]
    async fn racing_closers_write_one_upfront_invoice() {
        let w = world("no_refund").await;
        let req = request("2027-01-10T00:00:00Z");
        let now = utc("2027-01-10T00:01:00Z");
        let (a, b) = (w.closer(), w.closer());
        let (ra, rb) = futures::join!(a.close_subscription(&req, now), b.close_subscription(&req, now));
        let written = ra.unwrap().committed.len() + rb.unwrap().committed.len();
        assert!(written >= 1);
        let upfronts: Vec<Invoice> = w
            .billing
            .invoices()
            .into_iter()
            .filter(|i| i.kind == InvoiceKind::ReservationUpfront)
            .collect();
        assert_eq!(upfronts.len(), 1);
        assert_eq!(upfronts[0].number.as_deref(), Some("ML-000001"));
    }

    #[tokio::test]
    async fn a_reservation_cancelled_mid_term_is_refunded_once_when_configured() {
        for (on_cancel, refunded) in [("credit_note", true), ("no_refund", false)] {
            let w = world(on_cancel).await;
            w.close("2027-01-31T23:00:00Z", "2027-01-31T23:05:00Z").await;
            // From 15 February the plan has no reservation: term month 2 of 12 is kept.
            let mut sub = w.billing.subscription("acct_1", "sub_1").await.unwrap().unwrap();
            let mut plan = sub.plan.clone();
            plan.reservations.clear();
            sub.plan_changes.push(PlanChange {
                at: utc("2027-02-15T00:00:00Z"),
                plan,
                plan_ref: None,
            });
            w.billing.put_subscription(&sub).await.unwrap();
            let feb = w.close("2027-02-28T23:00:00Z", "2027-02-28T23:05:00Z").await;
            let notes = w.billing.all_credit_notes();
            if !refunded {
                assert!(notes.is_empty(), "no refund by default");
                continue;
            }
            assert_eq!(notes.len(), 1);
            let note = &notes[0];
            let upfront = "inv_acct_1~sub_1_upfront_r1_20270110T000000Z";
            assert_eq!(note.credit_note_id, refund_note_id(upfront));
            assert_eq!(note.issued_with, feb.committed[0].invoice_id);
            // 10 months not started: 1,000.00 − round(1,000 × 2/12) = 833.33, tax 158.33.
            assert_eq!(note.amount, d("991.66"));
            // Applied as credit to February's invoice, and charged to the provider.
            let inv = &feb.committed[0];
            assert_eq!(inv.credit_applied, inv.total.min(d("991.66")));
            statement_identity(inv, d("991.66"));
            // March's close does not refund it again.
            w.close("2027-03-31T22:00:00Z", "2027-03-31T22:05:00Z").await;
            assert_eq!(w.billing.all_credit_notes().len(), 1);
        }
    }
}
