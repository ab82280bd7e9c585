//! With reserved capacity, the close, the period-to-date estimate, the forecast's projection and
//! the job quote agree: none carries any share of the upfront, each comes to what the close
//! invoices for the same usage, and the upfront is on its own invoice once.

use super::close::{close_period, estimate, rating_subscription, CloseInput};
use super::upfront::{upfront_invoice, upfronts_due, UpfrontInput};
use super::{sample, BillingSubscription, Cadence, Invoice};
use crate::domain::estimate::{period_to_date, quote_job, JobSpec, PricingModel, QuoteContext};
use crate::domain::meter::Meter;
use crate::domain::money::Currency;
use crate::domain::pricing::{
    Catalog, CatalogData, LineKind, MarketFactors, Period, RatingContext, RatingResult, UsageRow,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::json;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The sample account (USD, DE 19 %) and monthly plan (10.00, 3,600 CPU-s included) from
/// December 2025, with 100,000 GPU-s a month of `prov_000` reserved for 12 months from January
/// 2026 (Berlin), 1,000.00 upfront and 50.00 a month.
fn subscription() -> BillingSubscription {
    let mut sub = sample::subscription("sub_1", "acct_1", Cadence::Monthly, t("2025-11-30T23:00:00Z"));
    sub.plan.reservations.push(
        serde_json::from_value(
            json!({"id": "r1", "meter": "gpu_seconds", "units_per_period": "100000",
            "term_start": "2025-12-31T23:00:00Z", "term_months": 12, "upfront": "partial",
            "upfront_amount": "1000.00", "monthly_fee": "50.00", "provider_id": "prov_000"}),
        )
        .unwrap(),
    );
    sub
}

fn row(meter: Meter, at: &str, q: &str) -> UsageRow {
    UsageRow {
        provider_id: "prov_000".into(),
        meter,
        dimensions: [("gpu_model".to_string(), "A100".to_string())].into(),
        window_start: t(at),
        quantity: d(q),
    }
}

/// January's usage so far: 120,000 GPU-s (20,000 beyond the reservation) and 10,000 CPU-s.
fn usage() -> Vec<UsageRow> {
    vec![
        row(Meter::GpuSeconds, "2026-01-05T10:00:00Z", "120000"),
        row(Meter::CpuSeconds, "2026-01-06T10:00:00Z", "10000"),
    ]
}

/// 2 GPUs and 4 vCPUs for an hour on 20 January.
fn job() -> JobSpec {
    serde_json::from_value(json!({"provider_id": "prov_000", "start": "2026-01-20T10:00:00Z",
        "duration_seconds": 3600, "gpus": 2, "gpu_model": "A100", "vcpus": "4"}))
    .unwrap()
}

struct Fixture {
    data: CatalogData,
    catalog: Catalog,
    account: super::Account,
    sub: BillingSubscription,
}

impl Fixture {
    fn new() -> Fixture {
        let data = sample::catalog();
        Fixture {
            catalog: Catalog::new(data.books.clone()).unwrap(),
            data,
            account: sample::account("acct_1", Currency::USD),
            sub: subscription(),
        }
    }

    fn period(&self) -> super::BillingPeriod {
        self.sub
            .schedule
            .period_containing(t("2026-01-15T00:00:00Z"))
            .unwrap()
    }

    fn input<'a>(&'a self, usage: &'a [UsageRow]) -> CloseInput<'a> {
        CloseInput {
            account: &self.account,
            subscription: &self.sub,
            period: self.period(),
            catalog: &self.catalog,
            taxes: &self.data.taxes,
            fees: &self.data.fees,
            usage,
            prior: Vec::new(),
            rate: None,
            now: self.period().end,
            refunds: Vec::new(),
        }
    }

    fn close(&self, usage: &[UsageRow]) -> Invoice {
        close_period(&self.input(usage)).unwrap().invoice
    }

    /// `f` with the rating context the close rates January with.
    fn rating<R>(&self, f: impl FnOnce(&RatingContext<'_>, Period) -> R) -> R {
        let p = self.period();
        let sub = rating_subscription(&self.account, &self.sub, p);
        let market = MarketFactors::default();
        f(
            &RatingContext {
                catalog: &self.catalog,
                subscription: &sub,
                taxes: &self.data.taxes,
                market: &market,
            },
            Period::new(p.start, p.end),
        )
    }
}

fn kinds_of(r: &RatingResult) -> Vec<LineKind> {
    r.lines.iter().map(|l| l.kind).collect()
}

fn no_upfront(inv: &Invoice) -> bool {
    inv.lines.iter().all(|l| {
        l.rated
            .as_ref()
            .is_none_or(|r| r.kind != LineKind::ReservationUpfront)
    })
}

#[test]
fn the_close_and_the_period_to_date_estimate_agree_without_the_upfront() {
    let f = Fixture::new();
    let rows = usage();
    let invoice = f.close(&rows);
    assert!(no_upfront(&invoice));
    // Fee 10.00, reservation fee 50.00, 20,000 GPU-s × 0.0008 = 16.00, 6,400 CPU-s × 0.00002 =
    // 0.128 → 0.13: net 76.13, tax 14.46 (1.90 + 9.50 + 3.04 + 0.02).
    assert_eq!(
        (invoice.net_total, invoice.tax_total, invoice.total),
        (d("76.13"), d("14.46"), d("90.59"))
    );
    // The close's own estimate of the open period.
    let est = estimate(&f.input(&rows)).unwrap();
    assert_eq!((est.lines, est.total), (invoice.lines.clone(), invoice.total));
    // The period-to-date estimate, on the period's last instant, is the invoice line for line.
    let ptd = f.rating(|ctx, p| period_to_date(ctx, &rows, p, p.end).unwrap());
    assert_eq!(ptd.result.total, invoice.total);
    let rated: Vec<_> = invoice.lines.iter().filter_map(|l| l.rated.clone()).collect();
    assert_eq!(ptd.result.lines, rated);
    assert!(!kinds_of(&ptd.result).contains(&LineKind::ReservationUpfront));
}

#[test]
fn the_job_quote_is_the_difference_of_two_closes() {
    let f = Fixture::new();
    let rows = usage();
    let spec = job();
    let quote = f.rating(|ctx, p| {
        let q = QuoteContext {
            rating: *ctx,
            period: p,
            usage_so_far: &rows,
            account_currency: Currency::USD,
            fx: None,
        };
        quote_job(&q, &spec).unwrap()
    });
    let mut with_job = rows.clone();
    with_job.extend(spec.rows(&Default::default()));
    let (before, after) = (f.close(&rows), f.close(&with_job));
    let plan = quote
        .options
        .iter()
        .find(|o| o.model == PricingModel::Subscription)
        .unwrap();
    assert_eq!(
        (plan.net, plan.tax),
        (
            after.net_total - before.net_total,
            after.tax_total - before.tax_total
        )
    );
    // 7,200 GPU-s beyond the reservation × 0.0008 = 5.76, 14,400 CPU-s × 0.00002 = 0.288;
    // the fees are owed with or without the job.
    assert_eq!(plan.net, d("6.05"));
    for o in &quote.options {
        assert!(
            o.lines.iter().all(|l| l.kind != LineKind::ReservationUpfront),
            "{:?}",
            o.model
        );
    }
}

#[cfg(feature = "forecast")]
#[test]
fn the_forecast_projection_of_a_finished_period_is_the_invoice() {
    use crate::domain::forecast::{estimate_period, ForecastOptions};
    let f = Fixture::new();
    let rows = usage();
    let invoice = f.close(&rows);
    let est = f.rating(|ctx, p| estimate_period(ctx, &rows, p, p.end, &ForecastOptions::daily()).unwrap());
    assert_eq!(est.projected.total, invoice.total);
    assert_eq!(est.spend.point, invoice.total);
    assert!(!kinds_of(&est.projected).contains(&LineKind::ReservationUpfront));
    // Mid-period, the projection adds forecast usage: still the monthly fee once, no upfront.
    let mid = f.rating(|ctx, p| {
        estimate_period(
            ctx,
            &rows,
            p,
            t("2026-01-16T00:00:00Z"),
            &ForecastOptions::daily(),
        )
        .unwrap()
    });
    let kinds = kinds_of(&mid.projected);
    assert_eq!(
        kinds.iter().filter(|k| **k == LineKind::ReservationFee).count(),
        1
    );
    assert!(!kinds.contains(&LineKind::ReservationUpfront));
}

#[test]
fn the_upfront_is_its_own_invoice_and_the_term_adds_up() {
    let f = Fixture::new();
    let now = t("2025-12-31T23:05:00Z");
    let due = upfronts_due(&f.sub, now);
    assert_eq!(due.len(), 1);
    let (plan, r) = due[0];
    let upfront = upfront_invoice(&UpfrontInput {
        account: &f.account,
        subscription: &f.sub,
        plan,
        reservation: r,
        catalog: &f.catalog,
        taxes: &f.data.taxes,
        fees: &f.data.fees,
        payouts: &f.data.upfront_payouts,
        rate: None,
        now,
    })
    .unwrap();
    assert_eq!(upfront.total, d("1190.00"));
    // Over the term the customer pays the upfront once and twelve monthly fees, whatever the
    // usage: with no usage, each January-like month is 10.00 + 50.00 net.
    let empty = f.close(&[]);
    assert_eq!(empty.net_total, d("60.00"));
    assert!(no_upfront(&empty));
}
