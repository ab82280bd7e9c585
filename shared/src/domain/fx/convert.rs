//! Converting money with a recorded rate.
//!
//! The converted amount is computed at full precision and rounded once, to the target
//! currency's minor units, with [`Currency::round`] (half to even). The result carries the rate
//! exactly as stored, its pair, time and sources, so that an invoice can show which rate it used.
//! A rate stored the other way round (`to/from`) is applied by division, not by first inverting
//! it, so that only the final rounding loses precision.

use super::{CurrencyPair, ExchangeRate};
use crate::domain::money::{Currency, Money};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A converted amount and the rate that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Converted {
    /// The amount converted, as given.
    pub from: Money,
    /// The result, rounded once to the target's minor units.
    pub amount: Money,
    /// The pair of the rate as stored (`from/to`, or `to/from` when `inverted`).
    pub pair: CurrencyPair,
    /// The rate as stored, unrounded.
    #[serde(with = "rust_decimal::serde::str")]
    pub rate: Decimal,
    /// True when the amount was divided by the rate (the rate is stored as `to/from`).
    pub inverted: bool,
    pub as_of: DateTime<Utc>,
    pub sources: Vec<String>,
    /// The rate was stale when used: the caller decides whether that is acceptable.
    pub stale: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("rate for {pair} cannot convert {from} to {to}")]
    WrongPair {
        from: Currency,
        to: Currency,
        pair: CurrencyPair,
    },
    #[error("rate {0} is not positive")]
    NonPositive(Decimal),
    #[error("amount out of range after conversion")]
    Overflow,
}

/// The rate to convert at `instant` (for an invoice, the end of the billing period): among
/// `rates` for the two currencies of `pair` (either orientation), the latest with
/// `as_of <= instant`, aged at `instant` and marked stale if older than `max_age`. A rate
/// published after the instant is never used, so that re-running an invoice gives the same
/// result.
pub fn rate_at<'a>(
    rates: impl IntoIterator<Item = &'a ExchangeRate>,
    pair: CurrencyPair,
    instant: DateTime<Utc>,
    max_age: chrono::TimeDelta,
) -> Option<ExchangeRate> {
    rates
        .into_iter()
        .filter(|r| r.pair.same_currencies(pair) && r.as_of <= instant && r.rate > Decimal::ZERO)
        .max_by_key(|r| r.as_of)
        .map(|r| r.aged(instant, max_age))
}

/// Converts `money` into `to` with `rate`, which must be `money.currency/to` or
/// `to/money.currency`. The amount is rounded once, to `to`'s minor units.
pub fn convert(money: Money, to: Currency, rate: &ExchangeRate) -> Result<Converted, ConvertError> {
    if rate.rate <= Decimal::ZERO {
        return Err(ConvertError::NonPositive(rate.rate));
    }
    let inverted = if rate.pair == CurrencyPair::new(money.currency, to) {
        false
    } else if rate.pair == CurrencyPair::new(to, money.currency) {
        true
    } else {
        return Err(ConvertError::WrongPair {
            from: money.currency,
            to,
            pair: rate.pair,
        });
    };
    let full = if inverted {
        money.amount.checked_div(rate.rate)
    } else {
        money.amount.checked_mul(rate.rate)
    }
    .ok_or(ConvertError::Overflow)?;
    Ok(Converted {
        from: money,
        amount: Money::new(to.round(full), to),
        pair: rate.pair,
        rate: rate.rate,
        inverted,
        as_of: rate.as_of,
        sources: rate.sources.clone(),
        stale: rate.stale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn c(code: &str) -> Currency {
        Currency::from_code(code).unwrap()
    }

    fn rate(pair: &str, r: Decimal) -> ExchangeRate {
        let t = Utc.with_ymd_and_hms(2026, 11, 30, 23, 59, 59).unwrap();
        ExchangeRate::new(
            pair.parse().unwrap(),
            r,
            t,
            vec!["coinbase".into(), "kraken".into()],
            t,
        )
        .unwrap()
    }

    #[test]
    fn converts_and_rounds_once_half_to_even() {
        let r = rate("EUR/USD", d("1.0505"));
        let out = convert(Money::new(d("10.00"), Currency::EUR), Currency::USD, &r).unwrap();
        // 10.505 -> 10.50 (half to even), rounded once.
        assert_eq!(out.amount, Money::new(d("10.50"), Currency::USD));
        assert_eq!(out.amount.amount.to_string(), "10.50");
        assert_eq!(out.rate, d("1.0505"));
        assert!(!out.inverted);
        assert_eq!(out.as_of, r.as_of);
        assert_eq!(out.sources, ["coinbase", "kraken"]);
        let out = convert(Money::new(d("30.00"), Currency::EUR), Currency::USD, &r).unwrap();
        assert_eq!(out.amount.amount, d("31.52")); // 31.515 -> 31.52
    }

    #[test]
    fn a_rate_stored_the_other_way_round_divides() {
        let r = rate("BTC/USD", d("97000"));
        let out = convert(Money::new(d("12.34"), Currency::USD), c("BTC"), &r).unwrap();
        assert!(out.inverted);
        assert_eq!(out.pair.to_string(), "BTC/USD");
        // 12.34 / 97000 = 0.000127216494..., 8 places.
        assert_eq!(out.amount.amount.to_string(), "0.00012722");
        let back = convert(Money::new(d("0.5"), c("BTC")), Currency::USD, &r).unwrap();
        assert_eq!(back.amount.amount.to_string(), "48500.00");
        let jpy = convert(
            Money::new(d("1"), c("BTC")),
            c("JPY"),
            &rate("BTC/JPY", d("15012345.5")),
        )
        .unwrap();
        assert_eq!(jpy.amount.amount.to_string(), "15012346");
        let eth = convert(
            Money::new(d("1"), Currency::USD),
            c("ETH"),
            &rate("ETH/USD", d("3500")),
        )
        .unwrap();
        assert_eq!(eth.amount.amount.to_string(), "0.000285714285714286");
    }

    #[test]
    fn the_rate_must_join_the_two_currencies_and_be_positive() {
        let r = rate("BTC/USD", d("97000"));
        assert!(matches!(
            convert(Money::new(d("1"), Currency::EUR), Currency::USD, &r),
            Err(ConvertError::WrongPair { .. })
        ));
        let mut zero = r.clone();
        zero.rate = Decimal::ZERO;
        assert_eq!(
            convert(Money::new(d("1"), c("BTC")), Currency::USD, &zero),
            Err(ConvertError::NonPositive(Decimal::ZERO))
        );
        let mut stale = r;
        stale.stale = true;
        assert!(
            convert(Money::new(d("1"), c("BTC")), Currency::USD, &stale)
                .unwrap()
                .stale
        );
    }

    #[test]
    fn the_rate_for_a_period_end_is_the_latest_published_before_it() {
        let end = Utc.with_ymd_and_hms(2026, 11, 30, 23, 59, 59).unwrap();
        let at = |h: i64, r: &str| {
            let t = end + chrono::TimeDelta::hours(h);
            ExchangeRate::new("BTC/USD".parse().unwrap(), d(r), t, vec!["kraken".into()], t).unwrap()
        };
        let history = [at(-3, "1"), at(-1, "2"), at(1, "3"), at(-2, "4")];
        let btc_usd: CurrencyPair = "BTC/USD".parse().unwrap();
        let hour = chrono::TimeDelta::hours(1);
        let r = rate_at(&history, btc_usd, end, hour * 2).unwrap();
        assert_eq!((r.rate, r.age, r.stale), (d("2"), hour, false));
        assert!(rate_at(&history, btc_usd.inverse(), end, hour / 2).unwrap().stale);
        assert!(rate_at(&history, btc_usd, end - hour * 4, hour).is_none());
        assert!(rate_at(&history, "ETH/USD".parse().unwrap(), end, hour).is_none());
    }

    fn cents() -> impl Strategy<Value = Decimal> {
        (0i64..=100_000_000_000).prop_map(|m| Decimal::new(m, 2))
    }

    proptest! {
        /// USD -> BTC -> USD comes back within one cent: a satoshi is worth far less than a cent.
        #[test]
        fn usd_btc_usd_round_trip_is_within_one_minor_unit(
            amount in cents(),
            r in (100_000i64..=50_000_000).prop_map(|m| Decimal::new(m, 2)),
        ) {
            let rate = rate("BTC/USD", r);
            let btc = convert(Money::new(amount, Currency::USD), c("BTC"), &rate).unwrap();
            let back = convert(btc.amount, Currency::USD, &rate).unwrap();
            prop_assert!((back.amount.amount - amount).abs() <= Currency::USD.minor_unit(),
                "{} -> {} -> {}", amount, btc.amount, back.amount);
        }

        /// Any pair: the round trip loses at most half a minor unit of the intermediate currency
        /// (worth `minor_B / 2r` in A) plus half a minor unit of A; within one minor unit of A
        /// when B's minor unit is worth no more than A's.
        #[test]
        fn round_trip_error_is_bounded_by_the_two_roundings(
            a in prop::sample::select(vec!["USD", "JPY", "KWD", "BTC", "USDC"]),
            b in prop::sample::select(vec!["EUR", "JPY", "BHD", "BTC", "USDT"]),
            hundredths in 0i64..=10_000_000_000,
            r in (1i64..=1_000_000_000).prop_map(|m| Decimal::new(m, 4).normalize()),
        ) {
            prop_assume!(a != b);
            let (ca, cb) = (c(a), c(b));
            let amount = ca.round(Decimal::new(hundredths, 2));
            let rate = rate(&format!("{a}/{b}"), r);
            let there = convert(Money::new(amount, ca), cb, &rate).unwrap();
            let back = convert(there.amount, ca, &rate).unwrap();
            let err = (back.amount.amount - amount).abs();
            let bound = cb.minor_unit() / Decimal::TWO / r + ca.minor_unit() / Decimal::TWO;
            prop_assert!(err <= bound + Decimal::new(1, 20), "{} {} -> {} -> {}: {} > {}",
                amount, a, there.amount, back.amount, err, bound);
            if cb.minor_unit() <= r * ca.minor_unit() {
                prop_assert!(err <= ca.minor_unit());
            }
        }
    }
}
