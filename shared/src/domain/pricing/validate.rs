//! Price book validation: every problem at once, each with its JSON path.

use super::book::{
    ChargeModel, DiscountBasis, DiscountScope, DynamicPricing, Owner, Price, PriceBook, Tier, VolumeDiscount,
};
use super::dynamic::DAY_NAMES;
use crate::domain::meter::Meter;
use crate::domain::money::Currency;
use crate::domain::usage::Dimensions;
use rust_decimal::Decimal;
use serde::Serialize;
use std::fmt;

/// One problem in a price book: where (`prices[3].tiers[1].up_to`), a stable code, and a
/// sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationIssue {
    pub path: String,
    pub code: &'static str,
    pub message: String,
}

impl fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.path, self.message, self.code)
    }
}

/// All the problems found; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} price book problem(s): {}", .0.len(), .0.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("; "))]
pub struct ValidationErrors(pub Vec<ValidationIssue>);

struct Report(Vec<ValidationIssue>);

impl Report {
    fn push(&mut self, path: impl Into<String>, code: &'static str, message: impl Into<String>) {
        self.0.push(ValidationIssue {
            path: path.into(),
            code,
            message: message.into(),
        });
    }

    fn non_negative(&mut self, path: impl Into<String>, v: Decimal) {
        if v.is_sign_negative() && !v.is_zero() {
            self.push(path, "negative_price", format!("must not be negative, got {v}"));
        }
    }
}

/// Checks one price book. Paths are relative to the book (`prices[0].meter`).
pub fn validate_book(book: &PriceBook) -> Result<(), ValidationErrors> {
    let issues = book_issues(book, "");
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(issues))
    }
}

/// Checks a set of books that will be rated together: each book, plus the rules between them
/// (one currency, no two versions of one owner in force at once, no duplicate versions). Paths
/// start with the book's index (`[1].prices[0].meter`).
pub fn validate_books(books: &[PriceBook]) -> Result<(), ValidationErrors> {
    let mut r = Report(Vec::new());
    for (i, b) in books.iter().enumerate() {
        r.0.extend(book_issues(b, &format!("[{i}].")));
    }
    for (j, b) in books.iter().enumerate() {
        if let Some(first) = books.first() {
            if j > 0 && b.currency != first.currency {
                r.push(
                    format!("[{j}].currency"),
                    "mixed_currencies",
                    format!(
                        "books rated together must share one currency: `{}` vs `{}`",
                        b.currency, first.currency
                    ),
                );
            }
        }
        for (i, a) in books[..j].iter().enumerate() {
            if a.id == b.id && a.version == b.version {
                r.push(
                    format!("[{j}].version"),
                    "duplicate_version",
                    format!("book `{}` version {} is also defined at [{i}]", b.id, b.version),
                );
            } else if a.owner == b.owner && overlaps(a, b) {
                r.push(
                    format!("[{j}].effective_from"),
                    "versions_overlap",
                    format!(
                        "in force at the same time as [{i}] (`{}` v{}) for the same owner",
                        a.id, a.version
                    ),
                );
            }
        }
    }
    if r.0.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(r.0))
    }
}

fn overlaps(a: &PriceBook, b: &PriceBook) -> bool {
    let a_before_b_ends = b.effective_to.is_none_or(|to| a.effective_from < to);
    let b_before_a_ends = a.effective_to.is_none_or(|to| b.effective_from < to);
    a_before_b_ends && b_before_a_ends
}

fn book_issues(book: &PriceBook, prefix: &str) -> Vec<ValidationIssue> {
    let mut r = Report(Vec::new());
    let p = prefix;
    if book.id.trim().is_empty() {
        r.push(format!("{p}id"), "empty", "the book needs an id");
    }
    if let super::book::Owner::Provider { id } = &book.owner {
        if id.trim().is_empty() {
            r.push(
                format!("{p}owner.id"),
                "empty",
                "a provider-owned book needs the provider id",
            );
        }
    }
    if Currency::from_code(&book.currency).is_err() {
        r.push(
            format!("{p}currency"),
            "unknown_currency",
            format!("unknown currency `{}`", book.currency),
        );
    }
    if let Some(to) = book.effective_to {
        if to <= book.effective_from {
            r.push(
                format!("{p}effective_to"),
                "inverted_dates",
                format!(
                    "effective_to {to} is not after effective_from {}",
                    book.effective_from
                ),
            );
        }
    }
    for (i, price) in book.prices.iter().enumerate() {
        price_issues(&mut r, price, &format!("{p}prices[{i}]"));
        if let Some(j) = book.prices[..i].iter().position(|q| q.id == price.id) {
            r.push(
                format!("{p}prices[{i}].id"),
                "duplicate_id",
                format!("price id `{}` is also used by prices[{j}]", price.id),
            );
        }
    }
    ambiguity_issues(&mut r, &book.prices, p);
    if let Some(vd) = &book.volume_discount {
        let path = format!("{p}volume_discount");
        discount_issues(&mut r, vd, &path);
        let marketplace = book.owner == Owner::Marketplace;
        match vd.scope {
            Some(DiscountScope::Plan) => r.push(
                format!("{path}.scope"),
                "bad_scope",
                "a price book's discount is `book` or (in a marketplace book) `marketplace`",
            ),
            Some(DiscountScope::Marketplace) if !marketplace => r.push(
                format!("{path}.scope"),
                "bad_scope",
                "only a marketplace book may discount the whole marketplace spend",
            ),
            _ => {}
        }
    }
    r.0
}

fn price_issues(r: &mut Report, price: &Price, p: &str) {
    if price.id.trim().is_empty() {
        r.push(format!("{p}.id"), "empty", "the price needs an id");
    }
    if price.meter.parse::<Meter>().is_err() {
        r.push(
            format!("{p}.meter"),
            "unknown_meter",
            format!(
                "unknown meter `{}`; expected one of {}",
                price.meter,
                Meter::names()
            ),
        );
    }
    for (k, v) in &price.filters {
        if k.is_empty() || v.is_empty() {
            r.push(
                format!("{p}.filters.{k}"),
                "empty_filter",
                "filter names and values must not be empty",
            );
        }
    }
    let m = format!("{p}.model");
    match &price.model {
        ChargeModel::PerUnit { unit_price } => r.non_negative(format!("{m}.unit_price"), *unit_price),
        ChargeModel::Graduated { tiers } | ChargeModel::Volume { tiers } => tier_issues(r, tiers, &m),
        ChargeModel::Package {
            package_size,
            package_price,
        } => {
            if *package_size <= Decimal::ZERO {
                r.push(
                    format!("{m}.package_size"),
                    "package_size",
                    format!("package size must be greater than zero, got {package_size}"),
                );
            }
            r.non_negative(format!("{m}.package_price"), *package_price);
        }
        ChargeModel::Flat { amount } => r.non_negative(format!("{m}.amount"), *amount),
    }
    if let Some(min) = price.minimum {
        r.non_negative(format!("{p}.minimum"), min);
    }
    if let Some(max) = price.maximum {
        r.non_negative(format!("{p}.maximum"), max);
        if price.minimum.is_some_and(|min| min > max) {
            r.push(
                format!("{p}.maximum"),
                "min_above_max",
                "the maximum is below the minimum",
            );
        }
    }
    if let Some(d) = &price.dynamic {
        if !matches!(price.model, ChargeModel::PerUnit { .. }) {
            r.push(
                format!("{p}.dynamic"),
                "dynamic_needs_per_unit",
                "dynamic pricing multiplies a per-unit price; use model type `per_unit`",
            );
        }
        dynamic_issues(r, d, &format!("{p}.dynamic"));
    }
}

fn tier_issues(r: &mut Report, tiers: &[Tier], m: &str) {
    if tiers.is_empty() {
        r.push(
            format!("{m}.tiers"),
            "no_tiers",
            "a tiered model needs at least one tier",
        );
        return;
    }
    let mut expected = Some(Decimal::ZERO);
    let last = tiers.len() - 1;
    for (j, t) in tiers.iter().enumerate() {
        let tp = format!("{m}.tiers[{j}]");
        if let Some(e) = expected {
            if t.from > e {
                r.push(
                    format!("{tp}.from"),
                    "tier_gap",
                    format!(
                        "tiers leave a gap: this tier starts at {} but the previous ends at {e}",
                        t.from
                    ),
                );
            } else if t.from < e {
                r.push(
                    format!("{tp}.from"),
                    "tier_overlap",
                    format!(
                        "tiers overlap: this tier starts at {} but the previous ends at {e}",
                        t.from
                    ),
                );
            }
        }
        match t.up_to {
            Some(u) if u <= t.from => r.push(
                format!("{tp}.up_to"),
                "empty_tier",
                format!("up_to {u} must be greater than from {}", t.from),
            ),
            Some(_) if j == last => r.push(
                format!("{tp}.up_to"),
                "last_tier_bounded",
                "the last tier must have no up_to, so that every quantity is priced",
            ),
            None if j != last => r.push(
                format!("{tp}.up_to"),
                "unbounded_tier_not_last",
                "only the last tier may be unbounded",
            ),
            _ => {}
        }
        r.non_negative(format!("{tp}.unit_price"), t.unit_price);
        if let Some(f) = t.flat_fee {
            r.non_negative(format!("{tp}.flat_fee"), f);
        }
        expected = t.up_to;
    }
}

fn dynamic_issues(r: &mut Report, d: &DynamicPricing, p: &str) {
    if let Some(tou) = &d.time_of_use {
        if tou.timezone.parse::<chrono_tz::Tz>().is_err() {
            r.push(
                format!("{p}.time_of_use.timezone"),
                "unknown_timezone",
                format!("`{}` is not an IANA timezone", tou.timezone),
            );
        }
        let mut owner = [[None::<usize>; 24]; 7];
        for (k, rule) in tou.rules.iter().enumerate() {
            let rp = format!("{p}.time_of_use.rules[{k}]");
            if rule.from_hour >= rule.to_hour || rule.to_hour > 24 {
                r.push(
                    format!("{rp}.to_hour"),
                    "bad_hours",
                    format!(
                        "hours must satisfy from_hour < to_hour <= 24, got {}..{}",
                        rule.from_hour, rule.to_hour
                    ),
                );
                continue;
            }
            if rule.multiplier.is_sign_negative() && !rule.multiplier.is_zero() {
                r.push(
                    format!("{rp}.multiplier"),
                    "negative_multiplier",
                    "multipliers must not be negative",
                );
            }
            let mut days = Vec::new();
            for (n, name) in rule.days.iter().enumerate() {
                match DAY_NAMES.iter().position(|d| d == name) {
                    Some(i) => days.push(i),
                    None => r.push(
                        format!("{rp}.days[{n}]"),
                        "unknown_day",
                        format!("`{name}` is not one of {}", DAY_NAMES.join(", ")),
                    ),
                }
            }
            if rule.days.is_empty() {
                days = (0..7).collect();
            }
            let mut clash = None;
            for &day in &days {
                for h in rule.from_hour..rule.to_hour {
                    match owner[day][h as usize] {
                        Some(other) => clash = clash.or(Some((other, day, h))),
                        None => owner[day][h as usize] = Some(k),
                    }
                }
            }
            if let Some((other, day, h)) = clash {
                r.push(
                    rp,
                    "overlapping_rules",
                    format!("overlaps rules[{other}] on {} at {h:02}:00", DAY_NAMES[day]),
                );
            }
        }
    }
    for (k, point) in d.demand.iter().enumerate() {
        if k > 0 && point.from <= d.demand[k - 1].from {
            r.push(
                format!("{p}.demand[{k}].from"),
                "unordered_series",
                "demand points must be in strictly increasing time order",
            );
        }
        if point.multiplier.is_sign_negative() && !point.multiplier.is_zero() {
            r.push(
                format!("{p}.demand[{k}].multiplier"),
                "negative_multiplier",
                "multipliers must not be negative",
            );
        }
    }
    if let Some(spot) = &d.spot {
        if spot.market.trim().is_empty() {
            r.push(
                format!("{p}.spot.market"),
                "empty",
                "a spot price needs a market name",
            );
        }
        r.non_negative(format!("{p}.spot.floor"), spot.floor);
        if spot.floor > spot.cap {
            r.push(
                format!("{p}.spot.cap"),
                "floor_above_cap",
                format!("cap {} is below floor {}", spot.cap, spot.floor),
            );
        }
    }
}

/// Two prices of one meter that could both be the most specific match for some usage: equally
/// many filters and no filter name on which they want different values.
fn ambiguity_issues(r: &mut Report, prices: &[Price], p: &str) {
    for (j, b) in prices.iter().enumerate() {
        for (i, a) in prices[..j].iter().enumerate() {
            if a.meter != b.meter || a.filters.len() != b.filters.len() {
                continue;
            }
            if a.filters == b.filters {
                r.push(
                    format!("{p}prices[{j}].filters"),
                    "duplicate_price",
                    format!("prices[{i}] prices the same meter with the same filters"),
                );
            } else if !conflict(&a.filters, &b.filters) {
                r.push(
                    format!("{p}prices[{j}].filters"),
                    "ambiguous_price",
                    format!(
                        "usage matching both this and prices[{i}] (equally specific) would have two prices"
                    ),
                );
            }
        }
    }
}

fn conflict(a: &Dimensions, b: &Dimensions) -> bool {
    a.iter().any(|(k, v)| b.get(k).is_some_and(|w| w != v))
}

/// Checks a volume discount's own rules (meter, thresholds); paths start at `p`.
pub(crate) fn discount_rules(vd: &VolumeDiscount, p: &str) -> Vec<ValidationIssue> {
    let mut r = Report(Vec::new());
    discount_issues(&mut r, vd, p);
    r.0
}

fn discount_issues(r: &mut Report, vd: &VolumeDiscount, p: &str) {
    match &vd.meter {
        Some(m) if m.parse::<Meter>().is_err() => r.push(
            format!("{p}.meter"),
            "unknown_meter",
            format!("unknown meter `{m}`; expected one of {}", Meter::names()),
        ),
        None if vd.basis == DiscountBasis::Quantity => r.push(
            format!("{p}.meter"),
            "meter_required",
            "a quantity-based discount counts one meter; name it",
        ),
        _ => {}
    }
    if vd.thresholds.is_empty() {
        r.push(
            format!("{p}.thresholds"),
            "no_thresholds",
            "a discount needs at least one threshold",
        );
    }
    for (k, t) in vd.thresholds.iter().enumerate() {
        let tp = format!("{p}.thresholds[{k}]");
        r.non_negative(format!("{tp}.from"), t.from);
        if k > 0 && t.from <= vd.thresholds[k - 1].from {
            r.push(
                format!("{tp}.from"),
                "unordered_thresholds",
                "thresholds must be in strictly increasing order",
            );
        }
        if t.percent < Decimal::ZERO || t.percent > Decimal::ONE_HUNDRED {
            r.push(
                format!("{tp}.percent"),
                "bad_percent",
                format!("percent must be between 0 and 100, got {}", t.percent),
            );
        }
    }
}
