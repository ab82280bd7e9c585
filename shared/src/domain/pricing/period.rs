//! Billing periods and proration by seconds. See `docs/money.md`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A half-open interval of time `[start, end)`, in UTC. Used for billing periods and for the
/// interval during which a subscription is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    #[serde(with = "crate::domain::parse::instant")]
    pub start: DateTime<Utc>,
    #[serde(with = "crate::domain::parse::instant")]
    pub end: DateTime<Utc>,
}

impl std::fmt::Display for Period {
    /// `2026-01-01T00:00:00Z .. 2026-02-01T00:00:00Z`: start, end (exclusive), RFC 3339.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        write!(f, "{} .. {}", t(self.start), t(self.end))
    }
}

impl Period {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Period {
        Period { start, end }
    }

    /// True if `t` lies in `[start, end)`.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }

    /// Length in whole seconds (0 for an empty or inverted period).
    pub fn seconds(&self) -> i64 {
        (self.end - self.start).num_seconds().max(0)
    }

    /// The overlap of two periods, if any.
    pub fn intersect(&self, other: &Period) -> Option<Period> {
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        (start < end).then_some(Period { start, end })
    }
}

/// The share of `amount` for the part of `period` covered by `active`:
///
/// `amount × seconds(period ∩ active) / seconds(period)`
///
/// at full precision (no rounding here: the line that carries the result rounds it once). An
/// empty period or no overlap gives zero; `active` covering the whole period gives `amount`.
pub fn prorate(amount: Decimal, period: Period, active: Period) -> Decimal {
    let total = period.seconds();
    if total == 0 {
        return Decimal::ZERO;
    }
    let covered = period.intersect(&active).map_or(0, |p| p.seconds());
    if covered == total {
        return amount;
    }
    amount * Decimal::from(covered) / Decimal::from(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn prorates_by_seconds_of_overlap() {
        let period = Period::new(t("2026-01-01T00:00:00Z"), t("2026-02-01T00:00:00Z"));
        let active = Period::new(t("2026-01-21T00:00:00Z"), t("2026-03-01T00:00:00Z"));
        assert_eq!(prorate(Decimal::from(31), period, active), Decimal::from(11));
        assert_eq!(prorate(Decimal::from(31), period, period), Decimal::from(31));
        let outside = Period::new(t("2026-02-01T00:00:00Z"), t("2026-03-01T00:00:00Z"));
        assert_eq!(prorate(Decimal::from(31), period, outside), Decimal::ZERO);
        let empty = Period::new(period.start, period.start);
        assert_eq!(prorate(Decimal::from(31), empty, period), Decimal::ZERO);
    }
}
