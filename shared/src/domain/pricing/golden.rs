//! The worked examples of `docs/pricing.md`, one test each, asserting the numbers written there.

use super::*;
use crate::domain::meter::Meter;
use rust_decimal::Decimal;
use serde_json::{json, Value};

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().unwrap()
}

fn month(start: &str, end: &str) -> Period {
    Period::new(t(start), t(end))
}

const JAN: (&str, &str) = ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z");

fn jan() -> Period {
    month(JAN.0, JAN.1)
}

/// A provider `p1` book in `currency` from 2026-01-01 with the given prices and extra fields.
fn book(currency: &str, prices: Value, extra: Value) -> PriceBook {
    let mut v = json!({
        "id": "book", "owner": {"kind": "provider", "id": "p1"}, "currency": currency, "version": 1,
        "effective_from": "2026-01-01T00:00:00Z", "prices": prices
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    serde_json::from_value(v).unwrap()
}

fn row(meter: Meter, at: &str, q: &str, dims: &[(&str, &str)]) -> UsageRow {
    UsageRow {
        provider_id: "p1".into(),
        meter,
        dimensions: dims.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        window_start: t(at),
        quantity: d(q),
    }
}

struct Setup {
    books: Vec<PriceBook>,
    sub: Subscription,
    taxes: TaxTable,
    market: MarketFactors,
}

impl Setup {
    fn new(books: Vec<PriceBook>) -> Setup {
        Setup {
            books,
            sub: Subscription::pay_per_use("acc"),
            taxes: TaxTable::default(),
            market: MarketFactors::default(),
        }
    }

    fn rate(&self, rows: &[UsageRow], period: Period) -> RatingResult {
        let catalog = Catalog::new(self.books.clone()).unwrap();
        let ctx = RatingContext {
            catalog: &catalog,
            subscription: &self.sub,
            taxes: &self.taxes,
            market: &self.market,
        };
        let r = rate(&ctx, rows, period).unwrap();
        assert_eq!(r.subtotal, r.lines.iter().map(|l| l.amount).sum::<Decimal>());
        r
    }
}

fn amounts(r: &RatingResult) -> Vec<(LineKind, String)> {
    r.lines.iter().map(|l| (l.kind, l.amount.to_string())).collect()
}

fn per_unit(id: &str, meter: &str, price: &str) -> Value {
    json!({"id": id, "meter": meter, "model": {"type": "per_unit", "unit_price": price}})
}

fn tiers_model(kind: &str) -> Value {
    json!({"type": kind, "tiers": [
        {"from": "0", "up_to": "100", "unit_price": "1.00"},
        {"from": "100", "up_to": "1000", "unit_price": "0.80", "flat_fee": "5"},
        {"from": "1000", "unit_price": "0.50"}
    ]})
}

/// Example 1: per-unit, rounded once half-to-even.
#[test]
fn g01_per_unit() {
    let s = Setup::new(vec![book(
        "USD",
        json!([per_unit("cpu", "cpu_seconds", "0.0001")]),
        json!({}),
    )]);
    let r = s.rate(
        &[
            row(Meter::CpuSeconds, "2026-01-03T10:00:00Z", "12000", &[]),
            row(Meter::CpuSeconds, "2026-01-04T10:00:00Z", "345", &[]),
        ],
        jan(),
    );
    assert_eq!(r.lines.len(), 1);
    assert_eq!(r.lines[0].quantity, d("12345"));
    assert_eq!(r.lines[0].unrounded, d("1.2345"));
    assert_eq!(r.subtotal.to_string(), "1.23");
    assert_eq!(r.total.to_string(), "1.23");
}

/// Example 2: graduated tiers at their boundaries.
#[test]
fn g02_graduated_boundaries() {
    let s = Setup::new(vec![book(
        "USD",
        json!([{"id": "gpu", "meter": "gpu_seconds", "model": tiers_model("graduated")}]),
        json!({}),
    )]);
    let at = |q| s.rate(&[row(Meter::GpuSeconds, "2026-01-05T00:00:00Z", q, &[])], jan());
    assert_eq!(at("100").subtotal.to_string(), "100.00");
    let r = at("1000");
    assert_eq!(r.subtotal.to_string(), "825.00");
    let tiers: Vec<_> = r.lines[0]
        .tiers
        .iter()
        .map(|t| (t.tier, t.quantity, t.amount))
        .collect();
    assert_eq!(
        tiers,
        vec![(0, d("100"), d("100.00")), (1, d("900"), d("725.00"))]
    );
    assert_eq!(at("1001").subtotal.to_string(), "825.50");
}

/// Example 3: volume tiers at their boundaries; a half-cent rounds to even.
#[test]
fn g03_volume_boundaries() {
    let s = Setup::new(vec![book(
        "USD",
        json!([{"id": "gpu", "meter": "gpu_seconds", "model": tiers_model("volume")}]),
        json!({}),
    )]);
    let at = |q| {
        s.rate(&[row(Meter::GpuSeconds, "2026-01-05T00:00:00Z", q, &[])], jan())
            .subtotal
    };
    assert_eq!(at("100").to_string(), "100.00");
    assert_eq!(at("1000").to_string(), "805.00");
    assert_eq!(at("1000.001").to_string(), "500.00");
}

/// Example 4: package pricing, every started package paid.
#[test]
fn g04_package() {
    let s = Setup::new(vec![book(
        "USD",
        json!([{"id": "egress", "meter": "network_egress_gib",
                "model": {"type": "package", "package_size": "10", "package_price": "1.50"}}]),
        json!({}),
    )]);
    let r = s.rate(
        &[row(Meter::NetworkEgressGib, "2026-01-05T00:00:00Z", "25.3", &[])],
        jan(),
    );
    assert_eq!(r.subtotal.to_string(), "4.50");
}

/// Example 5: flat fee, and a price's period minimum and maximum.
#[test]
fn g05_flat_minimum_maximum() {
    let s = Setup::new(vec![book(
        "USD",
        json!([
            {"id": "storage", "meter": "storage_gib_hours", "model": {"type": "flat", "amount": "5.00"}},
            {"id": "mem", "meter": "memory_gib_seconds", "model": {"type": "per_unit", "unit_price": "0.10"},
             "minimum": "2.00", "maximum": "10.00"}
        ]),
        json!({}),
    )]);
    let r = s.rate(
        &[
            row(Meter::StorageGibHours, "2026-01-05T00:00:00Z", "720", &[]),
            row(Meter::MemoryGibSeconds, "2026-01-05T00:00:00Z", "3", &[]),
        ],
        jan(),
    );
    assert_eq!(
        amounts(&r),
        vec![
            (LineKind::Usage, "0.30".into()),
            (LineKind::Usage, "5.00".into()),
            (LineKind::PriceMinimum, "1.70".into())
        ]
    );
    assert_eq!(r.subtotal.to_string(), "7.00");
    let r = s.rate(
        &[row(Meter::MemoryGibSeconds, "2026-01-05T00:00:00Z", "250", &[])],
        jan(),
    );
    assert_eq!(
        amounts(&r),
        vec![
            (LineKind::Usage, "25.00".into()),
            (LineKind::PriceMaximum, "-15.00".into())
        ]
    );
    assert_eq!(r.subtotal.to_string(), "10.00");
}

/// Example 6: a price change mid-period splits the charge into two lines.
#[test]
fn g06_price_change_mid_period() {
    let mut v1 = book("USD", json!([per_unit("cpu", "cpu_seconds", "0.10")]), json!({}));
    v1.effective_to = Some(t("2026-01-16T00:00:00Z"));
    let mut v2 = book("USD", json!([per_unit("cpu", "cpu_seconds", "0.12")]), json!({}));
    v2.version = 2;
    v2.effective_from = t("2026-01-16T00:00:00Z");
    let s = Setup::new(vec![v2, v1]);
    let r = s.rate(
        &[
            row(Meter::CpuSeconds, "2026-01-20T00:00:00Z", "100", &[]),
            row(Meter::CpuSeconds, "2026-01-10T00:00:00Z", "100", &[]),
        ],
        jan(),
    );
    let lines: Vec<_> = r
        .lines
        .iter()
        .map(|l| (l.book.as_ref().unwrap().version, l.amount.to_string()))
        .collect();
    assert_eq!(lines, vec![(1, "10.00".into()), (2, "12.00".into())]);
    assert_eq!(r.subtotal.to_string(), "22.00");
}

/// Example 7: time-of-use (Europe/Berlin) and demand multipliers.
#[test]
fn g07_time_of_use_and_demand() {
    let s = Setup::new(vec![book(
        "EUR",
        json!([{"id": "gpu", "meter": "gpu_seconds", "model": {"type": "per_unit", "unit_price": "0.10"},
            "dynamic": {
                "time_of_use": {"timezone": "Europe/Berlin", "rules": [
                    {"days": ["mon", "tue", "wed", "thu", "fri"], "from_hour": 8, "to_hour": 18, "multiplier": "1.5"}]},
                "demand": [{"from": "2026-01-05T12:00:00Z", "multiplier": "1.2"},
                           {"from": "2026-01-05T14:00:00Z", "multiplier": "1"}]}}]),
        json!({}),
    )]);
    let r = s.rate(
        &[
            row(Meter::GpuSeconds, "2026-01-05T08:00:00Z", "100", &[]),
            row(Meter::GpuSeconds, "2026-01-05T13:00:00Z", "10", &[]),
            row(Meter::GpuSeconds, "2026-01-05T18:00:00Z", "100", &[]),
        ],
        jan(),
    );
    let lines: Vec<_> = r
        .lines
        .iter()
        .map(|l| {
            (
                l.unit_price.unwrap().to_string(),
                l.quantity.to_string(),
                l.amount.to_string(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            ("0.1".into(), "100".into(), "10.00".into()),
            ("0.15".into(), "100".into(), "15.00".into()),
            ("0.18".into(), "10".into(), "1.80".into()),
        ]
    );
    assert_eq!(r.subtotal.to_string(), "26.80");
}

/// Example 8: spot price clamped between floor and cap; no factor means unpriced.
#[test]
fn g08_spot() {
    let mut s = Setup::new(vec![book(
        "USD",
        json!([{"id": "spot", "meter": "gpu_seconds", "model": {"type": "per_unit", "unit_price": "0.001"},
            "dynamic": {"spot": {"market": "gpu-h100", "floor": "0.0005", "cap": "0.002"}}}]),
        json!({}),
    )]);
    for (at, f) in [
        ("2026-01-05T00:00:00Z", "0.4"),
        ("2026-01-05T06:00:00Z", "1.5"),
        ("2026-01-05T12:00:00Z", "3.0"),
    ] {
        s.market.record(
            "gpu-h100",
            FactorPoint {
                at: t(at),
                factor: d(f),
                source: "exchange-a".into(),
            },
        );
    }
    let r = s.rate(
        &[
            row(Meter::GpuSeconds, "2026-01-04T23:00:00Z", "1000", &[]),
            row(Meter::GpuSeconds, "2026-01-05T03:00:00Z", "1000", &[]),
            row(Meter::GpuSeconds, "2026-01-05T07:00:00Z", "1000", &[]),
            row(Meter::GpuSeconds, "2026-01-05T13:00:00Z", "1000", &[]),
        ],
        jan(),
    );
    let lines: Vec<_> = r
        .lines
        .iter()
        .map(|l| (l.unit_price.unwrap(), l.amount.to_string()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (d("0.0005"), "0.50".into()),
            (d("0.0015"), "1.50".into()),
            (d("0.002"), "2.00".into())
        ]
    );
    assert_eq!(r.subtotal.to_string(), "4.00");
    assert_eq!(r.unpriced.len(), 1);
    assert_eq!(r.unpriced[0].reason, UnpricedReason::NoMarketFactor);
    assert_eq!(r.unpriced[0].quantity, d("1000"));
}

/// Example 9: subscription with an allowance and an overage price.
#[test]
fn g09_subscription_overage() {
    let mut s = Setup::new(vec![book(
        "USD",
        json!([per_unit("cpu", "cpu_seconds", "0.0001")]),
        json!({}),
    )]);
    s.sub.plan = serde_json::from_value(json!({
        "name": "Pro", "recurring_fee": "20.00",
        "allowances": [{"meter": "cpu_seconds", "quantity": "10000", "overage_unit_price": "0.0003"}]
    }))
    .unwrap();
    let r = s.rate(
        &[row(Meter::CpuSeconds, "2026-01-05T00:00:00Z", "12500", &[])],
        jan(),
    );
    assert_eq!(
        amounts(&r),
        vec![
            (LineKind::Included, "0.00".into()),
            (LineKind::Overage, "0.75".into()),
            (LineKind::RecurringFee, "20.00".into())
        ]
    );
    assert_eq!(r.lines[0].quantity, d("10000"));
    assert_eq!(r.lines[1].quantity, d("2500"));
    assert_eq!(r.total.to_string(), "20.75");
}

/// Example 10: hybrid — fee, allowance on GPU (overage at the book price), egress pay-per-use.
#[test]
fn g10_hybrid() {
    let mut s = Setup::new(vec![book(
        "USD",
        json!([
            per_unit("gpu", "gpu_seconds", "0.002"),
            per_unit("egress", "network_egress_gib", "0.09")
        ]),
        json!({}),
    )]);
    s.sub.plan = serde_json::from_value(json!({
        "name": "Hybrid", "recurring_fee": "10.00",
        "allowances": [{"meter": "gpu_seconds", "quantity": "3600"}]
    }))
    .unwrap();
    let r = s.rate(
        &[
            row(Meter::GpuSeconds, "2026-01-05T00:00:00Z", "5000", &[]),
            row(Meter::NetworkEgressGib, "2026-01-05T00:00:00Z", "12.5", &[]),
        ],
        jan(),
    );
    assert_eq!(
        amounts(&r),
        vec![
            (LineKind::Usage, "1.12".into()),
            (LineKind::Included, "0.00".into()),
            (LineKind::Usage, "2.80".into()),
            (LineKind::RecurringFee, "10.00".into())
        ]
    );
    assert_eq!(r.total.to_string(), "13.92");
}

/// Example 11: reserved capacity, partial upfront: covered, excess on demand, unused units still
/// owed; the monthly invoices carry the monthly fee, never a share of the upfront.
#[test]
fn g11_reserved_capacity() {
    let mut s = Setup::new(vec![book(
        "USD",
        json!([per_unit("gpu", "gpu_seconds", "0.002")]),
        json!({}),
    )]);
    s.sub.plan = serde_json::from_value(json!({
        "reservations": [{"id": "r1", "meter": "gpu_seconds", "units_per_period": "100000",
            "term_start": "2026-01-01T00:00:00Z", "term_months": 12, "upfront": "partial",
            "upfront_amount": "1000.00", "monthly_fee": "50.00"}]
    }))
    .unwrap();
    let feb = month("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z");
    let r = s.rate(
        &[row(Meter::GpuSeconds, "2026-02-10T00:00:00Z", "120000", &[])],
        feb,
    );
    assert_eq!(
        amounts(&r),
        vec![
            (LineKind::Reserved, "0.00".into()),
            (LineKind::Usage, "40.00".into()),
            (LineKind::ReservationFee, "50.00".into())
        ]
    );
    assert_eq!(r.total.to_string(), "90.00");
    let fee = &r.lines[2];
    assert_eq!((fee.quantity, fee.unit_price), (Decimal::ONE, Some(d("50.00"))));
    let r = s.rate(
        &[row(Meter::GpuSeconds, "2026-01-10T00:00:00Z", "30000", &[])],
        jan(),
    );
    assert_eq!(
        amounts(&r),
        vec![
            (LineKind::Reserved, "0.00".into()),
            (LineKind::ReservationFee, "50.00".into()),
            (LineKind::ReservedUnused, "0.00".into())
        ]
    );
    assert_eq!(r.lines[2].quantity, d("70000"));
    assert!(r.lines[2].description.contains("owed all the same"));
    assert_eq!(r.total.to_string(), "50.00");
    assert!(r.lines.iter().all(|l| l.kind != LineKind::ReservationUpfront));
}

/// Example 21: the reservation's upfront invoice: one line, quantity 1 at 1,000.00, taxed at the
/// purchase (DE 19 %): 1,000.00 + 190.00 = 1,190.00, for the term January 2026 to January 2027.
/// Its amortization (83.33, 83.34, ... adding up to 1,000.00) is the provider's and the revenue
/// report's, not the customer's.
#[test]
fn g21_reservation_upfront_invoice() {
    let mut s = Setup::new(vec![book(
        "USD",
        json!([per_unit("gpu", "gpu_seconds", "0.002")]),
        json!({}),
    )]);
    s.sub.plan = serde_json::from_value(json!({
        "reservations": [{"id": "r1", "meter": "gpu_seconds", "units_per_period": "100000",
            "term_start": "2026-01-01T00:00:00Z", "term_months": 12, "upfront": "partial",
            "upfront_amount": "1000.00", "monthly_fee": "50.00", "provider_id": "p1"}]
    }))
    .unwrap();
    s.sub.tax.jurisdiction = Some(Jurisdiction {
        country: "DE".into(),
        region: None,
    });
    s.taxes = serde_json::from_value(json!({"rates": [
        {"country": "DE", "name": "USt", "rate": "0.19", "effective_from": "2021-01-01T00:00:00Z"}]}))
    .unwrap();
    let catalog = Catalog::new(s.books.clone()).unwrap();
    let ctx = RatingContext {
        catalog: &catalog,
        subscription: &s.sub,
        taxes: &s.taxes,
        market: &s.market,
    };
    let res = &s.sub.plan.reservations[0];
    let r = rate_upfront(&ctx, res).unwrap();
    assert_eq!(r.period, month("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"));
    assert_eq!(
        amounts(&r),
        vec![(LineKind::ReservationUpfront, "1000.00".into())]
    );
    let l = &r.lines[0];
    assert_eq!((l.quantity, l.unit_price), (Decimal::ONE, Some(d("1000.00"))));
    assert_eq!(l.provider_id.as_deref(), Some("p1"));
    assert_eq!(
        (r.net_total, r.tax_total, r.total),
        (d("1000.00"), d("190.00"), d("1190.00"))
    );
    let shares: Vec<Decimal> = (0..12)
        .map(|k| res.amortized(k, crate::domain::money::Currency::USD))
        .collect();
    assert_eq!((shares[0], shares[1]), (d("83.33"), d("83.34")));
    assert_eq!(shares.iter().copied().sum::<Decimal>(), d("1000.00"));
}

fn discount_book(basis: &str, method: &str, price: &str) -> PriceBook {
    book(
        "USD",
        json!([per_unit("cpu", "cpu_seconds", price)]),
        json!({"volume_discount": {"basis": basis, "method": method, "meter": "cpu_seconds", "thresholds": [
            {"from": "0", "percent": "0"}, {"from": "100", "percent": "5"}, {"from": "500", "percent": "10"}]}}),
    )
}

/// Example 12: volume discount by spend, retroactive and incremental.
#[test]
fn g12_volume_discount_by_spend() {
    let rows = [row(Meter::CpuSeconds, "2026-01-05T00:00:00Z", "600", &[])];
    let r = Setup::new(vec![discount_book("spend", "retroactive", "1.00")]).rate(&rows, jan());
    assert_eq!(
        amounts(&r),
        vec![
            (LineKind::Usage, "600.00".into()),
            (LineKind::VolumeDiscount, "-60.00".into())
        ]
    );
    let r = Setup::new(vec![discount_book("spend", "incremental", "1.00")]).rate(&rows, jan());
    assert_eq!(r.subtotal.to_string(), "570.00");
}

/// Example 13: volume discount by quantity, incremental and retroactive.
#[test]
fn g13_volume_discount_by_quantity() {
    let rows = [row(Meter::CpuSeconds, "2026-01-05T00:00:00Z", "1500", &[])];
    let r = Setup::new(vec![discount_book("quantity", "incremental", "0.50")]).rate(&rows, jan());
    assert_eq!(
        amounts(&r),
        vec![
            (LineKind::Usage, "750.00".into()),
            (LineKind::VolumeDiscount, "-60.00".into())
        ]
    );
    let r = Setup::new(vec![discount_book("quantity", "retroactive", "0.50")]).rate(&rows, jan());
    assert_eq!(r.subtotal.to_string(), "675.00");
}

/// Example 14: proration by seconds across a month-end.
#[test]
fn g14_proration_across_month_end() {
    let mut s = Setup::new(vec![book(
        "USD",
        json!([per_unit("cpu", "cpu_seconds", "1")]),
        json!({}),
    )]);
    let period = month("2026-01-15T00:00:00Z", "2026-02-15T00:00:00Z");
    s.sub.plan.recurring_fee = Some(d("100.00"));
    s.sub.plan.active = Some(month("2026-01-28T12:00:00Z", "2026-03-01T00:00:00Z"));
    assert_eq!(period.seconds(), 2_678_400);
    let r = s.rate(&[], period);
    assert_eq!(r.lines[0].unrounded.round_dp(6), d("56.451613"));
    assert_eq!(r.total.to_string(), "56.45");
}

fn de_19() -> TaxTable {
    serde_json::from_value(json!({"rates": [
        {"country": "DE", "name": "USt 16%", "rate": "0.16",
         "effective_from": "2020-07-01T00:00:00Z", "effective_to": "2021-01-01T00:00:00Z"},
        {"country": "DE", "name": "USt", "rate": "0.19", "effective_from": "2021-01-01T00:00:00Z"},
        {"country": "JP", "name": "JCT", "rate": "0.10", "effective_from": "2019-10-01T00:00:00Z"}
    ]}))
    .unwrap()
}

fn in_country(c: &str) -> TaxProfile {
    TaxProfile {
        jurisdiction: Some(Jurisdiction {
            country: c.into(),
            region: None,
        }),
        ..TaxProfile::default()
    }
}

/// Example 15: tax-exclusive prices, tax per line, breakdown by rate.
#[test]
fn g15_tax_exclusive() {
    let mut s = Setup::new(vec![book(
        "EUR",
        json!([
            per_unit("gpu", "gpu_seconds", "0.10"),
            per_unit("cpu", "cpu_seconds", "0.0001")
        ]),
        json!({}),
    )]);
    s.taxes = de_19();
    s.sub.tax = in_country("DE");
    let r = s.rate(
        &[
            row(Meter::GpuSeconds, "2026-01-05T00:00:00Z", "100", &[]),
            row(Meter::CpuSeconds, "2026-01-05T00:00:00Z", "12345", &[]),
        ],
        jan(),
    );
    let taxes: Vec<_> = r
        .lines
        .iter()
        .map(|l| (l.amount.to_string(), l.tax.tax.to_string()))
        .collect();
    assert_eq!(
        taxes,
        vec![("1.23".into(), "0.23".into()), ("10.00".into(), "1.90".into())]
    );
    assert_eq!(
        (
            r.subtotal.to_string(),
            r.tax_total.to_string(),
            r.total.to_string()
        ),
        ("11.23".into(), "2.13".into(), "13.36".into())
    );
    assert_eq!(r.tax_breakdown.len(), 1);
    assert_eq!(r.tax_breakdown[0].rate, d("0.19"));
    assert_eq!(r.tax_breakdown[0].taxable, d("11.23"));
    assert_eq!(r.tax_breakdown[0].tax, d("2.13"));
    let report = tax_report(&r.lines);
    assert_eq!(report.len(), 1);
    assert_eq!((report[0].taxable, report[0].tax), (d("11.23"), d("2.13")));
}

/// Example 16: tax-inclusive prices split back to the gross exactly.
#[test]
fn g16_tax_inclusive() {
    let mut s = Setup::new(vec![book(
        "EUR",
        json!([
            per_unit("gpu", "gpu_seconds", "0.119"),
            per_unit("cpu", "cpu_seconds", "0.01")
        ]),
        json!({"tax_mode": "inclusive"}),
    )]);
    s.taxes = de_19();
    s.sub.tax = in_country("DE");
    let r = s.rate(
        &[
            row(Meter::GpuSeconds, "2026-01-05T00:00:00Z", "100", &[]),
            row(Meter::CpuSeconds, "2026-01-05T00:00:00Z", "100", &[]),
        ],
        jan(),
    );
    let split: Vec<_> = r
        .lines
        .iter()
        .map(|l| {
            (
                l.tax.gross.to_string(),
                l.tax.net.to_string(),
                l.tax.tax.to_string(),
            )
        })
        .collect();
    assert_eq!(
        split,
        vec![
            ("1.00".into(), "0.84".into(), "0.16".into()),
            ("11.90".into(), "10.00".into(), "1.90".into())
        ]
    );
    assert_eq!(
        (
            r.total.to_string(),
            r.net_total.to_string(),
            r.tax_total.to_string()
        ),
        ("12.90".into(), "10.84".into(), "2.06".into())
    );
}

/// Example 17: JPY (no minor units), with 10 % tax.
#[test]
fn g17_jpy() {
    let mut s = Setup::new(vec![book(
        "JPY",
        json!([
            per_unit("cpu", "cpu_seconds", "0.35"),
            per_unit("egress", "network_egress_gib", "0.5")
        ]),
        json!({}),
    )]);
    s.taxes = de_19();
    s.sub.tax = in_country("JP");
    let r = s.rate(
        &[
            row(Meter::CpuSeconds, "2026-01-05T00:00:00Z", "1234", &[]),
            row(Meter::NetworkEgressGib, "2026-01-05T00:00:00Z", "5", &[]),
        ],
        jan(),
    );
    assert_eq!(
        amounts(&r),
        vec![(LineKind::Usage, "432".into()), (LineKind::Usage, "2".into())]
    );
    assert_eq!(
        (
            r.subtotal.to_string(),
            r.tax_total.to_string(),
            r.total.to_string()
        ),
        ("434".into(), "43".into(), "477".into())
    );
}

/// Example 18: BTC (8 decimals), half to even at the 8th.
#[test]
fn g18_btc() {
    let s = Setup::new(vec![book(
        "BTC",
        json!([per_unit("egress", "network_egress_gib", "0.00000123")]),
        json!({}),
    )]);
    let r = s.rate(
        &[row(
            Meter::NetworkEgressGib,
            "2026-01-05T00:00:00Z",
            "1234.5",
            &[],
        )],
        jan(),
    );
    assert_eq!(r.lines[0].unrounded, d("0.001518435"));
    assert_eq!(r.subtotal.to_string(), "0.00151844");
}

/// Example 19: exempt and reverse-charge customers pay no tax, with a note on every line.
#[test]
fn g19_exempt_and_reverse_charge() {
    let mut s = Setup::new(vec![book(
        "EUR",
        json!([per_unit("gpu", "gpu_seconds", "0.10")]),
        json!({}),
    )]);
    s.taxes = de_19();
    s.sub.tax = in_country("DE");
    s.sub.tax.reverse_charge_tax_id = Some("FR12345678901".into());
    let rows = [row(Meter::GpuSeconds, "2026-01-05T00:00:00Z", "100", &[])];
    let r = s.rate(&rows, jan());
    assert_eq!((r.tax_total, r.total), (d("0.00"), d("10.00")));
    assert_eq!(r.lines[0].tax.treatment, TaxTreatment::ReverseCharge);
    assert!(r.lines[0]
        .tax
        .note
        .as_ref()
        .unwrap()
        .starts_with(REVERSE_CHARGE_NOTE));
    s.sub.tax.reverse_charge_tax_id = None;
    s.sub.tax.exemption = Some("EX-2026-001".into());
    let r = s.rate(&rows, jan());
    assert_eq!(r.lines[0].tax.treatment, TaxTreatment::Exempt);
    assert!(r.lines[0].tax.note.as_ref().unwrap().contains("EX-2026-001"));
    assert_eq!(r.total, d("10.00"));
}

/// Example 20: the most specific price wins; usage matching none is reported, not priced at 0.
#[test]
fn g20_specific_prices_and_unpriced_usage() {
    let s = Setup::new(vec![book(
        "USD",
        json!([
            {"id": "h100", "meter": "gpu_seconds", "filters": {"gpu_model": "H100"},
             "model": {"type": "per_unit", "unit_price": "0.002"}},
            {"id": "h100-eu", "meter": "gpu_seconds", "filters": {"gpu_model": "H100", "region": "eu-west"},
             "model": {"type": "per_unit", "unit_price": "0.003"}}
        ]),
        json!({}),
    )]);
    let r = s.rate(
        &[
            row(
                Meter::GpuSeconds,
                "2026-01-05T00:00:00Z",
                "1000",
                &[("gpu_model", "H100"), ("region", "eu-west")],
            ),
            row(
                Meter::GpuSeconds,
                "2026-01-05T00:00:00Z",
                "1000",
                &[("gpu_model", "H100"), ("region", "us-east")],
            ),
            row(
                Meter::GpuSeconds,
                "2026-01-05T00:00:00Z",
                "1000",
                &[("gpu_model", "A100")],
            ),
            row(Meter::CpuSeconds, "2026-02-05T00:00:00Z", "7", &[]),
        ],
        jan(),
    );
    let lines: Vec<_> = r
        .lines
        .iter()
        .map(|l| (l.price_id.clone().unwrap(), l.amount.to_string()))
        .collect();
    assert_eq!(
        lines,
        vec![("h100".into(), "2.00".into()), ("h100-eu".into(), "3.00".into())]
    );
    let unpriced: Vec<_> = r
        .unpriced
        .iter()
        .map(|u| (u.meter, u.reason, u.quantity))
        .collect();
    assert_eq!(
        unpriced,
        vec![
            (Meter::CpuSeconds, UnpricedReason::OutsidePeriod, d("7")),
            (Meter::GpuSeconds, UnpricedReason::NoMatchingPrice, d("1000")),
        ]
    );
    assert_eq!(r.subtotal.to_string(), "5.00");
}

/// Example 22: a marketplace-wide volume discount. The marketplace book discounts the customer's
/// whole marketplace spend, incrementally: 10 % of the spend above 500.00. `p1` sells 351 CPU
/// units at 1.00 (351.00), `p2` 125 GPU units at 2.00 (250.00): neither alone reaches 500, the
/// customer's 601.00 does. Discount (601.00 − 500) × 10 % = 10.10, rounded once, split by spend
/// with the largest remainder: `p1` 10.10 × 351 / 601 = 5.8988… → 5.89, `p2` 4.2013… → 4.20, the
/// cent left to the larger remainder (`p1`): **−5.90** and **−4.20**; total 601.00 − 10.10 =
/// **590.90**.
#[test]
fn g22_marketplace_wide_volume_discount() {
    let provider = |id: &str, price: Value| -> PriceBook {
        let mut b = book("USD", json!([price]), json!({}));
        b.id = format!("book-{id}");
        b.owner = Owner::Provider { id: id.into() };
        b
    };
    let marketplace: PriceBook = serde_json::from_value(json!({
        "id": "marketplace", "owner": {"kind": "marketplace"}, "currency": "USD", "version": 1,
        "effective_from": "2026-01-01T00:00:00Z", "prices": [],
        "volume_discount": {"basis": "spend", "method": "incremental", "scope": "marketplace",
            "thresholds": [{"from": "0", "percent": "0"}, {"from": "500", "percent": "10"}]}
    }))
    .unwrap();
    let s = Setup::new(vec![
        provider("p1", per_unit("cpu", "cpu_seconds", "1.00")),
        provider("p2", per_unit("gpu", "gpu_seconds", "2.00")),
        marketplace,
    ]);
    let mut rows = vec![row(Meter::CpuSeconds, "2026-01-05T00:00:00Z", "351", &[])];
    let mut gpu = row(Meter::GpuSeconds, "2026-01-06T00:00:00Z", "125", &[]);
    gpu.provider_id = "p2".into();
    rows.push(gpu);
    let r = s.rate(&rows, jan());
    let lines: Vec<(LineKind, Option<&str>, String)> = r
        .lines
        .iter()
        .map(|l| (l.kind, l.provider_id.as_deref(), l.amount.to_string()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (LineKind::Usage, Some("p1"), "351.00".into()),
            (LineKind::Usage, Some("p2"), "250.00".into()),
            (LineKind::VolumeDiscount, Some("p1"), "-5.90".into()),
            (LineKind::VolumeDiscount, Some("p2"), "-4.20".into()),
        ]
    );
    assert!(r.lines[2..]
        .iter()
        .all(|l| l.discount_scope == Some(DiscountScope::Marketplace)));
    assert_eq!(r.subtotal.to_string(), "590.90");
    // Per book, the same spend earns nothing: each provider alone is below 500.
    let mut per_book = s.books.clone();
    per_book[2].volume_discount.as_mut().unwrap().scope = None;
    let r = Setup::new(per_book).rate(&rows, jan());
    assert_eq!(r.subtotal.to_string(), "601.00");
}
