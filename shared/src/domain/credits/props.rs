//! Property tests: any sequence of operations keeps the ledger exact, idempotent, consistent
//! with its entries and in consumption order.

use super::*;
use crate::domain::meter::Meter;
use crate::domain::money::{Currency, Money};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};

fn t(hours: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::hours(hours)
}

fn currencies() -> [Currency; 2] {
    [Currency::USD, Currency::from_code("JPY").unwrap()]
}

fn money(units: i64, jpy: bool) -> Money {
    let c = currencies()[usize::from(jpy)];
    Money::new(Decimal::new(units, c.minor_units()), c)
}

/// The charges operations are generated with.
fn charge(i: u8) -> ChargeScope {
    match i % 5 {
        0 => ChargeScope::usage(Meter::GpuSeconds, "p1"),
        1 => ChargeScope::usage(Meter::CpuSeconds, "p1"),
        2 => ChargeScope::usage(Meter::GpuSeconds, "p2"),
        3 => ChargeScope::default(),
        _ => ChargeScope::job("p1", [Meter::GpuSeconds, Meter::CpuSeconds]),
    }
}

fn grant_scope(i: u8) -> GrantScope {
    match i % 3 {
        0 => GrantScope::default(),
        1 => GrantScope {
            meters: BTreeSet::from([Meter::GpuSeconds]),
            providers: BTreeSet::new(),
        },
        _ => GrantScope {
            meters: BTreeSet::new(),
            providers: BTreeSet::from(["p1".to_string()]),
        },
    }
}

#[derive(Debug, Clone)]
enum Op {
    Grant {
        id: u8,
        units: i64,
        priority: u32,
        from: i64,
        expires: Option<i64>,
        scope: u8,
        jpy: bool,
    },
    Hold {
        id: u8,
        units: i64,
        at: i64,
        hours: i64,
        scope: u8,
        jpy: bool,
    },
    Capture {
        id: u8,
        hold: u8,
        units: i64,
        at: i64,
        beyond: bool,
        jpy: bool,
    },
    Release {
        hold: u8,
        at: i64,
    },
    Draw {
        id: u8,
        units: i64,
        at: i64,
        scope: u8,
        hold: Option<u8>,
        jpy: bool,
    },
    Invoice {
        id: u8,
        lines: Vec<(i64, u8)>,
        at: i64,
        jpy: bool,
    },
    Expire {
        at: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let units = 0i64..3_000;
    prop_oneof![
        4 => (0u8..6, units.clone(), 0u32..3, 0i64..10, proptest::option::of(1i64..60), 0u8..3, any::<bool>())
            .prop_map(|(id, units, priority, from, expires, scope, jpy)| Op::Grant {
                id, units, priority, from, expires: expires.map(|e| from + e), scope, jpy }),
        3 => (0u8..4, 0i64..800, 0i64..30, 0i64..30, 0u8..5, any::<bool>())
            .prop_map(|(id, units, at, hours, scope, jpy)| Op::Hold { id, units, at, hours, scope, jpy }),
        4 => (0u8..8, 0u8..4, 0i64..1_000, 0i64..12, any::<bool>(), any::<bool>())
            .prop_map(|(id, hold, units, at, beyond, jpy)| Op::Capture { id, hold, units, at, beyond, jpy }),
        2 => (0u8..4, 0i64..40).prop_map(|(hold, at)| Op::Release { hold, at }),
        3 => (0u8..8, units.clone(), 0i64..40, 0u8..5, proptest::option::of(0u8..4), any::<bool>())
            .prop_map(|(id, units, at, scope, hold, jpy)| Op::Draw { id, units, at, scope, hold, jpy }),
        1 => (0u8..3, proptest::collection::vec((units, 0u8..5), 0..4), 0i64..40, any::<bool>())
            .prop_map(|(id, lines, at, jpy)| Op::Invoice { id, lines, at, jpy }),
        1 => (0i64..50).prop_map(|at| Op::Expire { at }),
    ]
}

/// Mostly the currency of the hold an operation names, so that captures and draws from holds
/// happen often; with hold `h3` the generated currency is kept, so a mismatch happens too.
fn hold_currency(l: &CreditLedger, hold: u8) -> Option<bool> {
    let h = l.hold(&format!("h{hold}"))?;
    (hold != 3).then(|| h.currency != Currency::USD)
}

/// `hours` after the hold named was placed (so that most captures come before its expiry), or
/// `hours` from the start if there is no such hold.
fn after_hold(l: &CreditLedger, hold: u8, hours: i64) -> DateTime<Utc> {
    l.hold(&format!("h{hold}"))
        .map_or(t(hours), |h| h.placed_at + Duration::hours(hours))
}

fn apply(l: &mut CreditLedger, op: &Op) -> Result<Vec<LedgerEntry>, CreditError> {
    match *op {
        Op::Grant {
            id,
            units,
            priority,
            from,
            expires,
            scope,
            jpy,
        } => {
            let g = CreditGrant {
                id: format!("g{id}"),
                account_id: "acct".into(),
                amount: money(units, jpy),
                kind: GrantKind::Promotional,
                priority,
                effective_at: t(from),
                expires_at: expires.map(t),
                scope: grant_scope(scope),
                source: GrantSource::Operator { note: "test".into() },
            };
            l.grant(&g, t(from))
        }
        Op::Hold {
            id,
            units,
            at,
            hours,
            scope,
            jpy,
        } => l.place_hold(&HoldRequest {
            id: format!("h{id}"),
            job: "job".into(),
            amount: money(units, jpy),
            scope: charge(scope),
            at: t(at),
            expires_at: t(at + hours),
        }),
        Op::Capture {
            id,
            hold,
            units,
            at,
            beyond,
            jpy,
        } => l.capture(&Capture {
            id: format!("c{id}"),
            hold_id: format!("h{hold}"),
            amount: money(units, hold_currency(l, hold).unwrap_or(jpy)),
            at: after_hold(l, hold, at),
            beyond_hold: beyond,
        }),
        Op::Release { hold, at } => l.release(&format!("h{hold}"), t(at)),
        Op::Draw {
            id,
            units,
            at,
            scope,
            hold,
            jpy,
        } => l.draw_down(&DrawDown {
            id: format!("b{id}"),
            amount: money(units, hold.and_then(|h| hold_currency(l, h)).unwrap_or(jpy)),
            scope: charge(scope),
            hold_id: hold.map(|h| format!("h{h}")),
            at: hold.map_or(t(at), |h| after_hold(l, h, at % 12)),
        }),
        Op::Invoice {
            id,
            ref lines,
            at,
            jpy,
        } => l.apply_to_invoice(&InvoiceCredit {
            invoice_id: format!("i{id}"),
            currency: currencies()[usize::from(jpy)],
            lines: lines
                .iter()
                .map(|&(units, scope)| InvoiceCharge {
                    amount: money(units, jpy).amount,
                    scope: charge(scope),
                })
                .collect(),
            at: t(at),
        }),
        Op::Expire { at } => Ok(l.expire_due(t(at))),
    }
}

/// The scope an entry's free-balance draw was made for, if the entry draws from it.
fn scope_of(pre: &CreditLedger, op: &Op, entry: &LedgerEntry) -> Option<ChargeScope> {
    let draws = matches!(
        entry.kind,
        EntryKind::HoldPlaced | EntryKind::DrawnDown | EntryKind::AppliedToInvoice
    );
    match (op, &entry.cause) {
        _ if !draws => None,
        (Op::Hold { scope, .. } | Op::Draw { scope, .. }, _) => Some(charge(*scope)),
        (Op::Invoice { lines, .. }, Cause::Invoice { line, .. }) => Some(charge(lines[*line].1)),
        (Op::Capture { hold, .. }, _) => pre.hold(&format!("h{hold}")).map(|h| h.scope.clone()),
        _ => None,
    }
}

/// Property 5, exactly: every draw from the free balance takes the eligible grants greedily in
/// consumption order (priority, earliest expiry, id), as computed here from the state before
/// the operation and the entries before it.
fn check_order(pre: &CreditLedger, op: &Op, entries: &[LedgerEntry]) -> Result<(), TestCaseError> {
    let mut avail: BTreeMap<String, Decimal> = pre
        .grant_states()
        .map(|g| (g.grant.id.clone(), g.balance.available))
        .collect();
    for e in entries {
        if let Some(scope) = scope_of(pre, op, e) {
            let mut eligible: Vec<&GrantState> = pre
                .grant_states()
                .filter(|g| g.grant.amount.currency == e.currency && !g.expired && g.grant.usable_at(e.at))
                .filter(|g| g.grant.scope.covers(&scope) && avail[&g.grant.id] > Decimal::ZERO)
                .collect();
            // Written out here rather than with the ledger's own key, so that a wrong key fails.
            eligible.sort_by_key(|g| {
                let expiry = g.grant.expires_at.unwrap_or(DateTime::<Utc>::MAX_UTC);
                (g.grant.priority, expiry, g.grant.id.clone())
            });
            let mut left = e.amount + e.uncovered;
            let mut expected = Vec::new();
            for g in eligible {
                if left <= Decimal::ZERO {
                    break;
                }
                let take = avail[&g.grant.id].min(left);
                expected.push(Portion {
                    grant_id: g.grant.id.clone(),
                    amount: take,
                });
                left -= take;
            }
            prop_assert_eq!(&e.portions, &expected, "entry {:?}", e);
            prop_assert_eq!(left, e.uncovered);
        }
        let sign = match e.kind.movement() {
            Movement::IntoAvailable | Movement::HeldToAvailable => Decimal::ONE,
            Movement::HeldToConsumed => Decimal::ZERO,
            _ => -Decimal::ONE,
        };
        for p in &e.portions {
            *avail.entry(p.grant_id.clone()).or_default() += sign * p.amount;
        }
    }
    Ok(())
}

/// Properties 1, 2 and 4 on the state after an operation.
fn check_state(l: &CreditLedger) -> Result<(), TestCaseError> {
    for g in l.grant_states() {
        let b = g.balance;
        prop_assert_eq!(
            b.granted,
            b.available + b.held + b.consumed + b.forfeited,
            "{:?}",
            g
        );
        prop_assert_eq!(b.granted, g.grant.amount.amount);
        for part in [b.available, b.held, b.consumed, b.forfeited] {
            prop_assert!(part >= Decimal::ZERO, "{:?}", g);
        }
    }
    for c in currencies() {
        let b = l.balance(c);
        prop_assert_eq!(b.granted, b.available + b.held + b.consumed + b.forfeited);
        let holds: Decimal = l.holds().filter(|h| h.currency == c).map(Hold::held).sum();
        prop_assert_eq!(holds, b.held);
        prop_assert_eq!(Balance::from_entries(l.entries(), c), b);
        if let Some(last) = l.entries().iter().rev().find(|e| e.currency == c) {
            prop_assert_eq!((last.available, last.held), (b.available, b.held));
        }
    }
    for (i, e) in l.entries().iter().enumerate() {
        prop_assert_eq!(e.seq, i as u64 + 1);
        prop_assert_eq!(e.amount, e.portions.iter().map(|p| p.amount).sum::<Decimal>());
    }
    let mut expiries = BTreeSet::new();
    for e in l.entries() {
        if let Cause::GrantExpiry { grant_id } = &e.cause {
            prop_assert!(expiries.insert(grant_id.clone()), "{} expired twice", grant_id);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_keeps_the_ledger_exact_and_idempotent(ops in proptest::collection::vec(op(), 1..40)) {
        let mut l = CreditLedger::new("acct");
        for op in &ops {
            let pre = l.clone();
            match apply(&mut l, op) {
                Err(_) => prop_assert_eq!(&l, &pre, "a refused {:?} changed the ledger", op),
                Ok(entries) => {
                    check_order(&pre, op, &entries)?;
                    if matches!(op, Op::Expire { .. }) {
                        prop_assert!(entries.windows(2).all(|w| w[0].at <= w[1].at), "{:?}", entries);
                    }
                    let after = l.clone();
                    let again = apply(&mut l, op);
                    if !matches!(op, Op::Expire { .. }) {
                        prop_assert_eq!(again, Ok(entries), "replaying {:?}", op);
                    }
                    prop_assert_eq!(&l, &after, "replaying {:?} changed the ledger", op);
                }
            }
            check_state(&l)?;
        }
    }
}
