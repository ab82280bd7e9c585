//! Step 1 of rating: the rows' quantities summed per (provider, book version, price, dynamic
//! unit price), in a canonical order independent of the rows' order; usage that cannot be priced
//! summed per (provider, meter, dimensions, reason).

use super::{RatingContext, Unpriced, UnpricedReason, UsageRow};
use crate::domain::meter::Meter;
use crate::domain::pricing::catalog::{Catalog, FxMap};
use crate::domain::pricing::period::Period;
use crate::domain::usage::Dimensions;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::cmp::Ordering;

/// What a group of rows is priced by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct GroupKey {
    /// Index into [`Grouped::provider_names`].
    pub provider: u32,
    /// Book and price indices in the catalog.
    pub book: u32,
    pub price: u32,
    /// The dynamic unit price, normalized; `None` for static prices.
    pub unit: Option<Decimal>,
    pub multiplier: Option<Decimal>,
}

/// A group's quantity and the span of its rows' window starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Acc {
    pub quantity: Decimal,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

impl Acc {
    fn new(q: Decimal, t: DateTime<Utc>) -> Acc {
        Acc {
            quantity: q,
            first: t,
            last: t,
        }
    }

    fn add(&mut self, q: Decimal, t: DateTime<Utc>) {
        self.quantity += q;
        self.first = self.first.min(t);
        self.last = self.last.max(t);
    }
}

type UnpricedKey<'r> = (u32, Meter, &'r Dimensions, UnpricedReason);

/// The rows, grouped.
pub(super) struct Grouped<'r> {
    /// Provider ids in order of first appearance; [`GroupKey::provider`] indexes it.
    pub provider_names: Vec<&'r str>,
    /// In the canonical order of [`canonical_order`].
    pub groups: Vec<(GroupKey, Acc)>,
    unpriced: FxMap<UnpricedKey<'r>, (Decimal, u64)>,
}

impl Grouped<'_> {
    /// The unpriced usage, ordered by provider, meter, dimensions and reason.
    pub fn unpriced(&self) -> Vec<Unpriced> {
        let mut unpriced: Vec<Unpriced> = self
            .unpriced
            .iter()
            .map(|(&(p, meter, dims, reason), &(quantity, rows))| Unpriced {
                provider_id: self.provider_names[p as usize].to_string(),
                meter,
                dimensions: dims.clone(),
                reason,
                quantity,
                rows,
            })
            .collect();
        unpriced.sort_by(|a, b| {
            (&a.provider_id, a.meter, &a.dimensions, a.reason).cmp(&(
                &b.provider_id,
                b.meter,
                &b.dimensions,
                b.reason,
            ))
        });
        unpriced
    }
}

/// The state of one pass over the rows.
struct Grouping<'c, 'r> {
    cat: &'c Catalog,
    providers: FxMap<&'r str, u32>,
    provider_names: Vec<&'r str>,
    provider_versions: Vec<Option<&'c [u32]>>,
    /// The price chosen per (book, meter, dimensions).
    memo: FxMap<(u32, Meter, &'r Dimensions), Option<u32>>,
    groups: FxMap<GroupKey, Acc>,
    unpriced: FxMap<UnpricedKey<'r>, (Decimal, u64)>,
}

/// Sums `rows` per group (see the module documentation).
pub(super) fn group_rows<'r>(ctx: &RatingContext<'_>, rows: &'r [UsageRow], period: Period) -> Grouped<'r> {
    let mut g = Grouping {
        cat: ctx.catalog,
        providers: FxMap::default(),
        provider_names: Vec::new(),
        provider_versions: Vec::new(),
        memo: FxMap::default(),
        groups: FxMap::default(),
        unpriced: FxMap::default(),
    };
    for row in rows {
        let provider = g.provider(&row.provider_id);
        let key = g
            .price_of(row, provider, period)
            .and_then(|(book, price)| dynamic_key(ctx, row, provider, book, price));
        match key {
            Ok(k) => {
                g.groups
                    .entry(k)
                    .and_modify(|a| a.add(row.quantity, row.window_start))
                    .or_insert_with(|| Acc::new(row.quantity, row.window_start));
            }
            Err(reason) => {
                let e = g
                    .unpriced
                    .entry((provider, row.meter, &row.dimensions, reason))
                    .or_insert((Decimal::ZERO, 0));
                e.0 += row.quantity;
                e.1 += 1;
            }
        }
    }
    let mut groups: Vec<(GroupKey, Acc)> = g.groups.into_iter().collect();
    groups.sort_by(|a, b| canonical_order(g.cat, &g.provider_names, &a.0, &b.0));
    Grouped {
        provider_names: g.provider_names,
        groups,
        unpriced: g.unpriced,
    }
}

impl<'c, 'r> Grouping<'c, 'r> {
    /// The index of a provider, numbered in order of first appearance.
    fn provider(&mut self, id: &'r str) -> u32 {
        let (names, versions, cat) = (&mut self.provider_names, &mut self.provider_versions, self.cat);
        *self.providers.entry(id).or_insert_with(|| {
            names.push(id);
            versions.push(cat.provider_versions(id));
            (names.len() - 1) as u32
        })
    }

    /// The book and price a row is priced by: the provider's book in force at its time, else the
    /// marketplace book's; or why it cannot be priced.
    fn price_of(
        &mut self,
        row: &'r UsageRow,
        provider: u32,
        period: Period,
    ) -> Result<(u32, u32), UnpricedReason> {
        let t = row.window_start;
        if !period.contains(t) {
            return Err(UnpricedReason::OutsidePeriod);
        }
        let cat = self.cat;
        let pb = cat.version_at(self.provider_versions[provider as usize], t);
        let mb = cat.marketplace_book(t);
        let memo = &mut self.memo;
        let mut lookup = |b: Option<u32>| {
            let b = b?;
            let p = *memo
                .entry((b, row.meter, &row.dimensions))
                .or_insert_with(|| cat.match_price(b, row.meter, &row.dimensions));
            p.map(|p| (b, p))
        };
        match lookup(pb).or_else(|| lookup(mb)) {
            Some(bp) => Ok(bp),
            None if pb.is_none() && mb.is_none() => Err(UnpricedReason::NoPriceBook),
            None => Err(UnpricedReason::NoMatchingPrice),
        }
    }
}

/// The group of a priced row: with a dynamic price, its unit price and multiplier at the row's
/// time (a spot price without a market factor then cannot be priced).
fn dynamic_key(
    ctx: &RatingContext<'_>,
    row: &UsageRow,
    provider: u32,
    book: u32,
    price: u32,
) -> Result<GroupKey, UnpricedReason> {
    let cat = ctx.catalog;
    let (unit, multiplier) = match &cat.books[book as usize].prices[price as usize].dynamic {
        None => (None, None),
        Some(d) => {
            let base = cat.base_unit_price(book, price).unwrap_or_default();
            let p = d
                .price_at(base, row.window_start, ctx.market)
                .ok_or(UnpricedReason::NoMarketFactor)?;
            (Some(p.unit_price.normalize()), Some(p.multiplier.normalize()))
        }
    };
    Ok(GroupKey {
        provider,
        book,
        price,
        unit,
        multiplier,
    })
}

/// The canonical order of groups: provider id, book version (by start, then id), price id, unit
/// price, multiplier.
fn canonical_order(cat: &Catalog, provider_names: &[&str], a: &GroupKey, b: &GroupKey) -> Ordering {
    let (ba, bb) = (&cat.books[a.book as usize].book, &cat.books[b.book as usize].book);
    provider_names[a.provider as usize]
        .cmp(provider_names[b.provider as usize])
        .then(ba.effective_from.cmp(&bb.effective_from))
        .then(ba.id.cmp(&bb.id))
        .then(
            ba.prices[a.price as usize]
                .id
                .cmp(&bb.prices[b.price as usize].id),
        )
        .then(a.unit.cmp(&b.unit))
        .then(a.multiplier.cmp(&b.multiplier))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{book, ctx_with, d, jan, row, t};
    use super::*;
    use serde_json::json;

    fn per_unit(id: &str, meter: &str, price: &str) -> serde_json::Value {
        json!({"id": id, "meter": meter, "model": {"type": "per_unit", "unit_price": price}})
    }

    #[test]
    fn rows_of_one_price_are_summed_with_their_span() {
        let cat = Catalog::new(vec![book("p1", json!([per_unit("cpu", "cpu_seconds", "0.1")]))]).unwrap();
        let rows = [
            row("p1", Meter::CpuSeconds, "2026-01-09T00:00:00Z", "2"),
            row("p1", Meter::CpuSeconds, "2026-01-03T00:00:00Z", "3.5"),
        ];
        ctx_with(&cat, |ctx| {
            let g = group_rows(ctx, &rows, jan());
            assert_eq!(g.provider_names, ["p1"]);
            assert_eq!(g.groups.len(), 1);
            let acc = g.groups[0].1;
            assert_eq!(acc.quantity, d("5.5"));
            assert_eq!(
                (acc.first, acc.last),
                (t("2026-01-03T00:00:00Z"), t("2026-01-09T00:00:00Z"))
            );
            assert!(g.unpriced().is_empty());
        });
    }

    #[test]
    fn unpriceable_rows_are_set_aside_per_reason_in_order() {
        let cat = Catalog::new(vec![book("p1", json!([per_unit("cpu", "cpu_seconds", "0.1")]))]).unwrap();
        let rows = [
            row("p2", Meter::CpuSeconds, "2026-01-05T00:00:00Z", "1"),
            row("p1", Meter::GpuSeconds, "2026-01-05T00:00:00Z", "4"),
            row("p1", Meter::GpuSeconds, "2026-01-06T00:00:00Z", "6"),
            row("p1", Meter::CpuSeconds, "2026-02-05T00:00:00Z", "7"),
        ];
        ctx_with(&cat, |ctx| {
            let g = group_rows(ctx, &rows, jan());
            assert!(g.groups.is_empty());
            let got: Vec<(String, Meter, UnpricedReason, Decimal, u64)> = g
                .unpriced()
                .into_iter()
                .map(|u| (u.provider_id, u.meter, u.reason, u.quantity, u.rows))
                .collect();
            assert_eq!(
                got,
                vec![
                    (
                        "p1".into(),
                        Meter::CpuSeconds,
                        UnpricedReason::OutsidePeriod,
                        d("7"),
                        1
                    ),
                    (
                        "p1".into(),
                        Meter::GpuSeconds,
                        UnpricedReason::NoMatchingPrice,
                        d("10"),
                        2
                    ),
                    (
                        "p2".into(),
                        Meter::CpuSeconds,
                        UnpricedReason::NoPriceBook,
                        d("1"),
                        1
                    ),
                ]
            );
        });
    }

    #[test]
    fn groups_come_in_the_canonical_order_whatever_the_rows_order() {
        let cat = Catalog::new(vec![
            book(
                "p1",
                json!([
                    per_unit("b", "cpu_seconds", "0.1"),
                    per_unit("a", "gpu_seconds", "0.2")
                ]),
            ),
            book("p0", json!([per_unit("z", "cpu_seconds", "0.1")])),
        ])
        .unwrap();
        let rows = [
            row("p1", Meter::CpuSeconds, "2026-01-05T00:00:00Z", "1"),
            row("p1", Meter::GpuSeconds, "2026-01-05T00:00:00Z", "1"),
            row("p0", Meter::CpuSeconds, "2026-01-05T00:00:00Z", "1"),
        ];
        ctx_with(&cat, |ctx| {
            let g = group_rows(ctx, &rows, jan());
            let order: Vec<(&str, &str)> = g
                .groups
                .iter()
                .map(|(k, _)| {
                    let b = &cat.books[k.book as usize].book;
                    (
                        g.provider_names[k.provider as usize],
                        b.prices[k.price as usize].id.as_str(),
                    )
                })
                .collect();
            assert_eq!(order, [("p0", "z"), ("p1", "a"), ("p1", "b")]);
        });
    }
}
