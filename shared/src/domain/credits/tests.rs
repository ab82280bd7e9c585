//! Unit tests of the credit ledger's rules.

use super::*;
use crate::domain::meter::Meter;
use crate::domain::money::{Currency, Money};
use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;
use std::collections::BTreeSet;
use std::str::FromStr;

const USD: Currency = Currency::USD;

fn t(hours: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::hours(hours)
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn usd(s: &str) -> Money {
    Money::new(d(s), USD)
}

fn grant(id: &str, amount: &str, priority: u32, expires: Option<i64>) -> CreditGrant {
    CreditGrant {
        id: id.into(),
        account_id: "acct".into(),
        amount: usd(amount),
        kind: GrantKind::Promotional,
        priority,
        effective_at: t(0),
        expires_at: expires.map(t),
        scope: GrantScope::default(),
        source: GrantSource::Operator {
            note: "welcome".into(),
        },
    }
}

fn ledger(grants: &[CreditGrant]) -> CreditLedger {
    let mut l = CreditLedger::new("acct");
    for g in grants {
        l.grant(g, t(0)).unwrap();
    }
    l
}

fn any() -> ChargeScope {
    ChargeScope::usage(Meter::GpuSeconds, "p1")
}

fn draw(id: &str, amount: &str, at: i64) -> DrawDown {
    DrawDown {
        id: id.into(),
        amount: usd(amount),
        scope: any(),
        hold_id: None,
        at: t(at),
    }
}

fn hold(id: &str, amount: &str) -> HoldRequest {
    HoldRequest {
        id: id.into(),
        job: "train-llm".into(),
        amount: usd(amount),
        scope: ChargeScope::job("p1", [Meter::GpuSeconds, Meter::CpuSeconds]),
        at: t(1),
        expires_at: t(5),
    }
}

fn capture(id: &str, hold_id: &str, amount: &str, beyond_hold: bool) -> Capture {
    Capture {
        id: id.into(),
        hold_id: hold_id.into(),
        amount: usd(amount),
        at: t(2),
        beyond_hold,
    }
}

fn taken(entry: &LedgerEntry) -> Vec<(&str, Decimal)> {
    entry
        .portions
        .iter()
        .map(|p| (p.grant_id.as_str(), p.amount))
        .collect()
}

fn available(l: &CreditLedger, grant_id: &str) -> Decimal {
    l.grant_state(grant_id).unwrap().balance.available
}

#[test]
fn a_grant_adds_to_the_balance_with_an_entry() {
    let mut l = CreditLedger::new("acct");
    let e = l.grant(&grant("g1", "25.00", 0, None), t(0)).unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].seq, e[0].kind, e[0].amount),
        (1, EntryKind::Granted, d("25.00"))
    );
    assert_eq!((e[0].available, e[0].held), (d("25.00"), d("0")));
    assert_eq!(l.balance(USD).granted, d("25.00"));
    assert_eq!(l.balance(Currency::EUR), Balance::default());
}

#[test]
fn grants_are_consumed_by_priority_then_earliest_expiry_then_id() {
    let mut l = ledger(&[
        grant("never", "10.00", 1, None),
        grant("late", "10.00", 1, Some(48)),
        grant("soon", "10.00", 1, Some(24)),
        grant("b-first", "5.00", 0, None),
        grant("a-first", "5.00", 0, None),
    ]);
    let e = l.draw_down(&draw("batch-1", "27.00", 1)).unwrap();
    assert_eq!(
        taken(&e[0]),
        vec![
            ("a-first", d("5.00")),
            ("b-first", d("5.00")),
            ("soon", d("10.00")),
            ("late", d("7.00"))
        ]
    );
    assert_eq!((e[0].uncovered, e[0].available), (d("0"), d("13.00")));
    assert_eq!(available(&l, "late"), d("3.00"));
    assert_eq!(available(&l, "never"), d("10.00"));
}

#[test]
fn a_grant_is_spent_only_within_its_scope_and_its_time() {
    let mut scoped = grant("gpu-p1", "10.00", 0, Some(10));
    scoped.scope = GrantScope {
        meters: BTreeSet::from([Meter::GpuSeconds]),
        providers: BTreeSet::from(["p1".to_string()]),
    };
    let mut later = grant("later", "10.00", 0, None);
    later.effective_at = t(3);
    let mut l = ledger(&[scoped, later]);
    for (scope, at, expected) in [
        (ChargeScope::usage(Meter::CpuSeconds, "p1"), 1, "0"),
        (ChargeScope::usage(Meter::GpuSeconds, "p2"), 1, "0"),
        (ChargeScope::default(), 1, "0"),
        (ChargeScope::usage(Meter::GpuSeconds, "p1"), 1, "10.00"),
        // The scoped grant has expired, the later one has taken effect.
        (ChargeScope::usage(Meter::GpuSeconds, "p1"), 10, "10.00"),
        (ChargeScope::default(), 10, "10.00"),
    ] {
        assert_eq!(l.spendable(USD, &scope, t(at)), d(expected), "{scope:?} at {at}");
    }
    let e = l.draw_down(&draw("b", "4.00", 1)).unwrap();
    assert_eq!(taken(&e[0]), vec![("gpu-p1", d("4.00"))]);
    // The job uses the CPU too: the GPU-only grant cannot hold for it.
    assert_eq!(
        l.place_hold(&hold("h", "1.00")).unwrap_err(),
        CreditError::Shortfall {
            needed: usd("1.00"),
            available: usd("0.00"),
            shortfall: usd("1.00")
        }
    );
    let e = l.draw_down(&draw("c", "20.00", 4)).unwrap();
    assert_eq!(taken(&e[0]), vec![("gpu-p1", d("6.00")), ("later", d("10.00"))]);
    assert_eq!(e[0].uncovered, d("4.00"));
}

#[test]
fn a_hold_is_all_or_nothing_and_names_the_shortfall() {
    let mut l = ledger(&[grant("g1", "30.00", 0, None), grant("g2", "20.00", 1, None)]);
    let before = l.clone();
    let err = l.place_hold(&hold("h1", "50.01")).unwrap_err();
    assert_eq!(
        err,
        CreditError::Shortfall {
            needed: usd("50.01"),
            available: usd("50.00"),
            shortfall: usd("0.01")
        }
    );
    assert_eq!(l, before, "a refused hold changes nothing");
    let e = l.place_hold(&hold("h1", "40.00")).unwrap();
    assert_eq!(e[0].kind, EntryKind::HoldPlaced);
    assert_eq!(taken(&e[0]), vec![("g1", d("30.00")), ("g2", d("10.00"))]);
    assert_eq!((e[0].available, e[0].held), (d("10.00"), d("40.00")));
    assert_eq!(l.hold("h1").unwrap().held(), d("40.00"));
}

#[test]
fn a_capture_charges_the_usage_and_releases_the_rest() {
    let mut l = ledger(&[grant("g1", "30.00", 0, None), grant("g2", "20.00", 1, None)]);
    l.place_hold(&hold("h1", "40.00")).unwrap();
    let e = l.capture(&capture("c1", "h1", "35.00", false)).unwrap();
    assert_eq!(
        e.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EntryKind::HoldCaptured, EntryKind::HoldReleased]
    );
    assert_eq!(taken(&e[0]), vec![("g1", d("30.00")), ("g2", d("5.00"))]);
    assert_eq!(taken(&e[1]), vec![("g2", d("5.00"))]);
    assert_eq!(l.balance(USD).consumed, d("35.00"));
    assert_eq!((e[1].available, e[1].held), (d("15.00"), d("0")));
    assert_eq!(l.hold("h1").unwrap().status, HoldStatus::Captured);
    assert_eq!(
        l.release("h1", t(3)).unwrap_err(),
        CreditError::HoldNotOpen {
            hold_id: "h1".into(),
            status: HoldStatus::Captured
        }
    );
}

#[test]
fn more_than_the_hold_is_captured_only_when_the_capture_says_so() {
    let mut l = ledger(&[grant("g1", "50.00", 0, None)]);
    l.place_hold(&hold("h1", "10.00")).unwrap();
    let before = l.clone();
    assert_eq!(
        l.capture(&capture("c1", "h1", "12.50", false)).unwrap_err(),
        CreditError::CaptureExceedsHold {
            hold_id: "h1".into(),
            held: usd("10.00"),
            asked: usd("12.50")
        }
    );
    assert_eq!(l, before);
    let e = l.capture(&capture("c2", "h1", "62.50", true)).unwrap();
    assert_eq!(
        e.iter()
            .map(|e| (e.kind, e.amount, e.uncovered))
            .collect::<Vec<_>>(),
        [
            (EntryKind::HoldCaptured, d("10.00"), d("0")),
            (EntryKind::DrawnDown, d("40.00"), d("12.50"))
        ]
    );
    assert_eq!(l.balance(USD).available, d("0"));
    let captured = l.hold("h1").unwrap().captured.clone().unwrap();
    assert_eq!(
        (
            captured.capture_id.as_str(),
            captured.amount,
            captured.uncovered,
            captured.beyond_hold
        ),
        ("c2", d("62.50"), d("12.50"), true),
        "the hold records what its capture charged"
    );
}

#[test]
fn a_release_frees_the_hold_once() {
    let mut l = ledger(&[grant("g1", "50.00", 0, None)]);
    l.place_hold(&hold("h1", "10.00")).unwrap();
    let first = l.release("h1", t(2)).unwrap();
    assert_eq!(
        (first[0].kind, first[0].amount),
        (EntryKind::HoldReleased, d("10.00"))
    );
    assert_eq!(l.balance(USD).available, d("50.00"));
    let after = l.clone();
    assert_eq!(
        l.release("h1", t(3)).unwrap(),
        first,
        "a repeated release returns its entries"
    );
    assert_eq!(l, after);
    assert!(matches!(
        l.capture(&capture("c", "h1", "1.00", false)),
        Err(CreditError::HoldNotOpen { .. })
    ));
    assert_eq!(
        l.release("nope", t(3)).unwrap_err(),
        CreditError::UnknownHold("nope".into())
    );
}

#[test]
fn a_hold_expires_at_its_instant_and_then_cannot_be_captured() {
    let mut l = ledger(&[grant("g1", "50.00", 0, None)]);
    l.place_hold(&hold("h1", "10.00")).unwrap();
    let mut late = capture("c", "h1", "1.00", false);
    late.at = t(5);
    assert!(matches!(l.capture(&late), Err(CreditError::HoldExpired { .. })));
    assert!(l.expire_due(t(4)).is_empty());
    let e = l.expire_due(t(6));
    assert_eq!(
        (e.len(), e[0].kind, e[0].at, e[0].amount),
        (1, EntryKind::HoldExpired, t(5), d("10.00"))
    );
    assert!(l.expire_due(t(7)).is_empty());
    assert_eq!(l.hold("h1").unwrap().status, HoldStatus::Expired);
    assert_eq!(l.balance(USD).available, d("50.00"));
}

#[test]
fn expiry_forfeits_the_remainder_once_at_the_instant() {
    let mut l = ledger(&[
        grant("promo", "20.00", 0, Some(10)),
        grant("paid", "5.00", 1, None),
    ]);
    l.draw_down(&draw("b1", "8.00", 1)).unwrap();
    // At its expiry instant the grant is no longer usable, swept or not.
    let e = l.draw_down(&draw("b2", "1.00", 10)).unwrap();
    assert_eq!(taken(&e[0]), vec![("paid", d("1.00"))]);
    let e = l.expire_due(t(30));
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].kind, e[0].at, e[0].amount),
        (EntryKind::Expired, t(10), d("12.00"))
    );
    assert_eq!(
        e[0].cause,
        Cause::GrantExpiry {
            grant_id: "promo".into()
        }
    );
    assert!(l.expire_due(t(40)).is_empty(), "forfeited once");
    let b = l.balance(USD);
    assert_eq!(
        (b.forfeited, b.consumed, b.available),
        (d("12.00"), d("9.00"), d("4.00"))
    );
}

#[test]
fn what_a_hold_gives_back_to_an_expired_grant_is_forfeited_then() {
    let mut l = ledger(&[grant("promo", "20.00", 0, Some(3))]);
    let mut h = hold("h1", "15.00");
    h.expires_at = t(8);
    l.place_hold(&h).unwrap();
    let e = l.expire_due(t(4));
    assert_eq!((e[0].kind, e[0].amount), (EntryKind::Expired, d("5.00")));
    let mut c = capture("c1", "h1", "6.00", false);
    c.at = t(6);
    let e = l.capture(&c).unwrap();
    assert_eq!(
        e.iter().map(|e| (e.kind, e.amount)).collect::<Vec<_>>(),
        [
            (EntryKind::HoldCaptured, d("6.00")),
            (EntryKind::HoldReleased, d("9.00")),
            (EntryKind::Expired, d("9.00"))
        ]
    );
    let b = l.balance(USD);
    assert_eq!(
        (b.forfeited, b.consumed, b.available, b.held),
        (d("14.00"), d("6.00"), d("0"), d("0"))
    );
}

#[test]
fn usage_is_drawn_from_its_jobs_hold_first() {
    let mut l = ledger(&[grant("g1", "10.00", 0, None), grant("g2", "10.00", 1, None)]);
    l.place_hold(&hold("h1", "6.00")).unwrap();
    let mut b = draw("b1", "8.00", 2);
    b.hold_id = Some("h1".into());
    let e = l.draw_down(&b).unwrap();
    assert_eq!(
        e.iter().map(|e| (e.kind, taken(e))).collect::<Vec<_>>(),
        [
            (EntryKind::DrawnFromHold, vec![("g1", d("6.00"))]),
            (EntryKind::DrawnDown, vec![("g1", d("2.00"))])
        ]
    );
    assert_eq!(l.hold("h1").unwrap().held(), d("0"));
    let e = l.capture(&capture("c1", "h1", "0.00", false)).unwrap();
    assert_eq!((e.len(), e[0].amount), (1, d("0")));
    assert_eq!(l.balance(USD).consumed, d("8.00"));
}

#[test]
fn an_invoice_says_which_grants_paid_which_line() {
    let mut gpu = grant("gpu", "5.00", 0, None);
    gpu.scope.meters = BTreeSet::from([Meter::GpuSeconds]);
    let mut note = grant("note", "3.00", 1, None);
    note.kind = GrantKind::Paid;
    note.source = GrantSource::CreditNote {
        credit_note_id: "cn-1".into(),
    };
    let mut l = ledger(&[gpu, note]);
    let invoice = InvoiceCredit {
        invoice_id: "inv-1".into(),
        currency: USD,
        lines: vec![
            InvoiceCharge {
                amount: d("2.00"),
                scope: ChargeScope::default(),
            },
            InvoiceCharge {
                amount: d("0.00"),
                scope: any(),
            },
            InvoiceCharge {
                amount: d("7.00"),
                scope: any(),
            },
        ],
        at: t(2),
    };
    let e = l.apply_to_invoice(&invoice).unwrap();
    assert_eq!(e.len(), 2);
    assert_eq!(
        e[0].cause,
        Cause::Invoice {
            invoice_id: "inv-1".into(),
            line: 0
        }
    );
    assert_eq!(taken(&e[0]), vec![("note", d("2.00"))]);
    assert_eq!(
        e[1].cause,
        Cause::Invoice {
            invoice_id: "inv-1".into(),
            line: 2
        }
    );
    assert_eq!(taken(&e[1]), vec![("gpu", d("5.00")), ("note", d("1.00"))]);
    assert_eq!((e[1].uncovered, e[1].available), (d("1.00"), d("0.00")));
    let after = l.clone();
    assert_eq!(l.apply_to_invoice(&invoice).unwrap(), e);
    assert_eq!(l, after);
}

#[test]
fn an_id_used_for_another_request_is_refused() {
    let mut l = ledger(&[grant("g1", "10.00", 0, None)]);
    let first = l.draw_down(&draw("b1", "1.00", 1)).unwrap();
    assert_eq!(l.draw_down(&draw("b1", "1.00", 1)).unwrap(), first);
    assert_eq!(
        l.draw_down(&draw("b1", "2.00", 1)).unwrap_err(),
        CreditError::IdReused {
            what: "draw-down batch",
            id: "b1".into()
        }
    );
    assert!(matches!(
        l.grant(&grant("g1", "11.00", 0, None), t(0)),
        Err(CreditError::IdReused { what: "grant", .. })
    ));
    assert_eq!(l.entries().len(), 2);
}

/// Whether an error is the one a case expects.
type IsError = fn(&CreditError) -> bool;

#[test]
fn bad_amounts_and_grants_are_refused() {
    let mut l = CreditLedger::new("acct");
    let cases: Vec<(CreditGrant, IsError)> = vec![
        (grant("a", "1.001", 0, None), |e| {
            matches!(e, CreditError::NotMinorUnits { .. })
        }),
        (grant("b", "-1.00", 0, None), |e| {
            matches!(e, CreditError::Negative { .. })
        }),
        (grant("c", "0.00", 0, None), |e| matches!(e, CreditError::Zero(_))),
        (grant("", "1.00", 0, None), |e| {
            matches!(e, CreditError::EmptyId(_))
        }),
        (grant("d", "1.00", 0, Some(0)), |e| {
            matches!(e, CreditError::ExpiresBeforeEffective(_))
        }),
        (
            CreditGrant {
                account_id: "other".into(),
                ..grant("e", "1.00", 0, None)
            },
            |e| matches!(e, CreditError::AccountMismatch { .. }),
        ),
        (
            CreditGrant {
                source: GrantSource::TopUp {
                    payment_id: "pay-1".into(),
                },
                ..grant("f", "1.00", 0, None)
            },
            |e| matches!(e, CreditError::SourceIsPaid(_)),
        ),
    ];
    for (g, expected) in cases {
        let err = l.grant(&g, t(0)).unwrap_err();
        assert!(expected(&err), "{} gave {err:?}", g.id);
    }
    assert!(l.entries().is_empty());
    l.grant(&grant("g", "1.00", 0, None), t(0)).unwrap();
    let mut yen = draw("y", "1", 1);
    yen.amount = Money::new(d("1.5"), Currency::from_code("JPY").unwrap());
    assert!(matches!(
        l.draw_down(&yen),
        Err(CreditError::NotMinorUnits { .. })
    ));
    l.place_hold(&hold("h", "1.00")).unwrap();
    let mut eur = capture("c", "h", "1.00", false);
    eur.amount.currency = Currency::EUR;
    assert!(matches!(
        l.capture(&eur),
        Err(CreditError::CurrencyMismatch { .. })
    ));
}

#[test]
fn entries_serialize_with_their_cause() {
    let mut l = ledger(&[grant("g1", "10.00", 0, None)]);
    let e = l.draw_down(&draw("b1", "1.50", 1)).unwrap();
    let json = serde_json::to_value(&e[0]).unwrap();
    assert_eq!(json["kind"], "drawn_down");
    assert_eq!(json["cause"]["type"], "draw_down");
    assert_eq!(json["cause"]["batch_id"], "b1");
    assert_eq!(json["portions"][0]["grant_id"], "g1");
    assert_eq!(json["currency"], "USD");
}

#[test]
fn one_sweep_expires_grants_and_holds_in_the_order_of_their_instants() {
    let mut l = ledger(&[grant("promo", "20.00", 0, Some(3))]);
    l.place_hold(&hold("h1", "15.00")).unwrap();
    let e = l.expire_due(t(6));
    assert_eq!(
        e.iter().map(|e| (e.kind, e.at, e.amount)).collect::<Vec<_>>(),
        [
            (EntryKind::Expired, t(3), d("5.00")),
            (EntryKind::HoldExpired, t(5), d("15.00")),
            (EntryKind::Expired, t(5), d("15.00"))
        ]
    );
    assert_eq!(e[2].cause, Cause::HoldExpiry { hold_id: "h1".into() });
    assert!(e.windows(2).all(|w| w[0].at <= w[1].at));
    let b = l.balance(USD);
    assert_eq!((b.forfeited, b.available, b.held), (d("20.00"), d("0"), d("0")));
}

#[test]
fn a_grant_the_balance_cannot_hold_is_refused_not_a_panic() {
    let jpy = Currency::from_code("JPY").unwrap();
    let mut huge = grant("huge", "1", 0, None);
    huge.amount = Money::new(Decimal::MAX, jpy);
    let mut l = ledger(&[huge]);
    let mut one = grant("one", "1", 0, None);
    one.amount = Money::new(Decimal::ONE, jpy);
    let before = l.clone();
    assert_eq!(
        l.grant(&one, t(0)).unwrap_err(),
        CreditError::TooLarge {
            grant_id: "one".into(),
            currency: jpy
        }
    );
    assert_eq!(l, before);
    // Every other figure is a part of the granted total, so nothing else can overflow.
    let e = l.draw_down(&DrawDown {
        amount: Money::new(Decimal::MAX, jpy),
        ..draw("b", "0", 1)
    });
    assert_eq!(e.unwrap()[0].uncovered, d("0"));
}

#[test]
fn a_hold_must_end_after_it_is_placed() {
    let mut l = ledger(&[grant("g1", "50.00", 0, None)]);
    let mut h = hold("h1", "1.00");
    h.expires_at = h.at;
    assert_eq!(
        l.place_hold(&h).unwrap_err(),
        CreditError::HoldEndsBeforeStart { hold_id: "h1".into() }
    );
}

/// A ledger saved as its snapshot (through JSON, as storage keeps it) and restored goes on as
/// the ledger itself would: same entries, same seqs, same balances, repeats change nothing.
#[test]
fn a_restored_ledger_goes_on_as_the_saved_one() {
    let mut kept = ledger(&[grant("a", "10.00", 0, Some(3)), grant("b", "5.00", 1, None)]);
    kept.place_hold(&hold("h1", "12.00")).unwrap();
    let json = serde_json::to_string(&kept.snapshot()).unwrap();
    let snapshot: LedgerSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(snapshot.entry_count(), 3);
    let mut restored = CreditLedger::restore(snapshot);
    assert!(restored.entries().is_empty());
    assert_eq!(restored.entry_count(), 3);
    // A repeat of an operation from before the restore changes nothing and returns nothing.
    assert_eq!(restored.place_hold(&hold("h1", "12.00")).unwrap(), vec![]);
    assert!(matches!(
        restored.place_hold(&hold("h1", "1.00")),
        Err(CreditError::IdReused { .. })
    ));
    let ops = |l: &mut CreditLedger| {
        let mut out = l.expire_due(t(4));
        out.extend(
            l.capture(&capture("c1", "h1", "11.00", false))
                .unwrap_or_default(),
        );
        out.extend(l.grant(&grant("c", "2.00", 0, None), t(4)).unwrap());
        out
    };
    let (a, b) = (ops(&mut kept), ops(&mut restored));
    assert_eq!(a, b);
    assert_eq!(b.first().map(|e| e.seq), Some(4));
    assert_eq!(restored.entries(), &b[..]);
    assert_eq!(kept.balance(USD), restored.balance(USD));
    assert_eq!(kept.snapshot(), restored.snapshot());
}

mod pricing {
    use super::*;
    use crate::domain::estimate::{JobSpec, PricingModel, Quote, QuoteOption};
    use crate::domain::pricing::Period;

    fn option(model: PricingModel, total: &str) -> QuoteOption {
        QuoteOption {
            model,
            net: d(total),
            tax: Decimal::ZERO,
            total: d(total),
            range: None,
            units_left: Default::default(),
            lines: vec![],
            unpriced: vec![],
        }
    }

    fn quote(options: Vec<QuoteOption>) -> Quote {
        Quote {
            account_id: "acct".into(),
            provider_id: "p1".into(),
            period: Period::new(t(0), t(24)),
            currency: USD,
            book_currency: USD,
            fx_rate: None,
            options,
        }
    }

    #[test]
    fn a_hold_is_the_billed_option_rounded_up_to_minor_units() {
        let both = quote(vec![
            option(PricingModel::PayPerUse, "9.001"),
            option(PricingModel::Subscription, "7.3301"),
        ]);
        assert_eq!(hold_amount(&both), Ok(usd("7.34")));
        let ppu = quote(vec![
            option(PricingModel::Spot, "1"),
            option(PricingModel::PayPerUse, "9.001"),
        ]);
        assert_eq!(hold_amount(&ppu), Ok(usd("9.01")));
        assert_eq!(
            hold_amount(&quote(vec![option(PricingModel::Spot, "1")])),
            Err(HoldPriceError::NoOption)
        );
    }

    #[test]
    fn a_job_scope_names_its_provider_and_the_meters_it_uses() {
        let spec: JobSpec = serde_json::from_value(serde_json::json!({
            "provider_id": "p1", "start": "2026-01-01T00:00:00Z", "duration_seconds": 60,
            "gpus": 2, "memory_gib": "4"
        }))
        .unwrap();
        assert_eq!(
            job_scope(&spec),
            ChargeScope::job("p1", [Meter::GpuSeconds, Meter::MemoryGibSeconds])
        );
    }
}
