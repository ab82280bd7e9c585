//! Draw-down of a billing period's metered usage as it is ingested: the period rated to date
//! (exactly as its close rates it), its metered lines summed per provider and meter, and the
//! part of each sum not drawn yet drawn from the free balance.
//!
//! What a period has drawn is derived from the draw-downs' ids, which carry the to-date total
//! they drew up to (`usage#<period start>#<provider>#<meter>#<total>`): drawing again for the
//! same total is the same operation, so a replayed batch draws nothing more. Only the latest
//! draw-down of each period, provider and meter is kept among the ledger's applied operations
//! (an earlier one is never asked for again: the to-date total only grows with usage), so the
//! state grows with the periods and meters, not with the batches.

use super::entry::LedgerEntry;
use super::error::CreditError;
use super::grant::ChargeScope;
use super::ledger::CreditLedger;
use super::spend::DrawDown;
use crate::domain::meter::Meter;
use crate::domain::money::{Currency, Money};
use crate::domain::pricing::{LineItem, LineKind, RatingResult};
use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// The line kinds that charge metered usage: what the draw-down draws. Fees, commitments
/// (minimums), caps and discounts are the close's: they depend on the whole period.
pub const METERED: [LineKind; 4] = [
    LineKind::Usage,
    LineKind::Included,
    LineKind::Reserved,
    LineKind::Overage,
];

/// True for a line the draw-down draws ([`METERED`]).
pub fn is_metered(line: &LineItem) -> bool {
    METERED.contains(&line.kind)
}

/// What a period's metered usage of one meter at one provider costs so far (gross, rounded
/// per line as the close rounds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCharge {
    pub provider_id: String,
    pub meter: Meter,
    pub total: Decimal,
}

/// The metered lines of a rating, summed per provider and meter (gross amounts).
pub fn usage_charges(result: &RatingResult) -> Vec<UsageCharge> {
    let mut sums: BTreeMap<(String, Meter), Decimal> = BTreeMap::new();
    for line in result.lines.iter().filter(|l| is_metered(l)) {
        let (Some(provider), Some(meter)) = (&line.provider_id, line.meter) else {
            continue;
        };
        *sums.entry((provider.clone(), meter)).or_default() += line.tax.gross;
    }
    sums.into_iter()
        .map(|((provider_id, meter), total)| UsageCharge {
            provider_id,
            meter,
            total,
        })
        .collect()
}

/// The metered usage of one billing period to draw: the period's start (its identity in the
/// ids), the currency it was rated in, the charges to date and the instant of the draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodUsage {
    pub period_start: DateTime<Utc>,
    pub currency: Currency,
    pub charges: Vec<UsageCharge>,
    pub at: DateTime<Utc>,
}

fn prefix(period_start: DateTime<Utc>, provider: &str, meter: Meter) -> String {
    format!(
        "usage#{}#{provider}#{}#",
        period_start.to_rfc3339_opts(SecondsFormat::Secs, true),
        meter.as_str()
    )
}

/// The id of the draw-down that brings a period's usage of `meter` at `provider` to `total`.
pub fn usage_draw_down_id(
    period_start: DateTime<Utc>,
    provider: &str,
    meter: Meter,
    total: Decimal,
) -> String {
    format!("{}{}", prefix(period_start, provider, meter), total.normalize())
}

impl CreditLedger {
    /// What the ledger has drawn for the period's usage of `meter` at `provider`.
    pub fn usage_drawn(&self, period_start: DateTime<Utc>, provider: &str, meter: Meter) -> Decimal {
        let p = prefix(period_start, provider, meter);
        self.draw_down_ids()
            .filter_map(|id| id.strip_prefix(p.as_str()))
            .filter_map(|total| total.parse::<Decimal>().ok())
            .max()
            .unwrap_or(Decimal::ZERO)
    }

    /// What the ledger has drawn for the period's usage in all.
    pub fn period_drawn(&self, period_start: DateTime<Utc>) -> Decimal {
        let p = format!(
            "usage#{}#",
            period_start.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        let mut latest: BTreeMap<&str, Decimal> = BTreeMap::new();
        for id in self.draw_down_ids().filter(|id| id.starts_with(p.as_str())) {
            let Some((key, total)) = id.rsplit_once('#') else {
                continue;
            };
            if let Ok(total) = total.parse::<Decimal>() {
                let e = latest.entry(key).or_default();
                *e = (*e).max(total);
            }
        }
        latest.values().copied().sum()
    }

    /// Draws what each charge of the period has grown by since it was last drawn, from the
    /// free balance the charge's scope may use (what no grant covers is the entry's
    /// `uncovered`). A charge that did not grow draws nothing; so does a repeat. Returns the
    /// entries written. All or nothing: an amount the ledger refuses changes nothing.
    pub fn draw_usage(&mut self, usage: &PeriodUsage) -> Result<Vec<LedgerEntry>, CreditError> {
        let mut draws = Vec::new();
        for c in &usage.charges {
            let drawn = self.usage_drawn(usage.period_start, &c.provider_id, c.meter);
            if c.total <= drawn {
                continue;
            }
            let amount = Money::new(c.total - drawn, usage.currency);
            super::grant::minor_units("usage total", amount)?;
            let previous = (drawn > Decimal::ZERO)
                .then(|| usage_draw_down_id(usage.period_start, &c.provider_id, c.meter, drawn));
            let req = DrawDown {
                id: usage_draw_down_id(usage.period_start, &c.provider_id, c.meter, c.total),
                amount,
                scope: ChargeScope::usage(c.meter, &c.provider_id),
                hold_id: None,
                at: usage.at,
            };
            draws.push((req, previous));
        }
        let mut entries = Vec::new();
        for (req, previous) in draws {
            entries.extend(self.draw_down(&req)?);
            if let Some(previous) = previous {
                self.forget_draw_down(&previous);
            }
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests;
