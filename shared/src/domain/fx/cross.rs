//! Derived rates: inversion, and triangulation through a pivot currency.
//!
//! A cross rate is the product of two legs through a currency they share, the pivot: with
//! `EUR/USD` and `BTC/USD`, `EUR/BTC = (EUR/USD) / (BTC/USD)` through USD. Legs may be given in
//! either orientation; the result is computed with a single multiplication or division, so a
//! cross of two direct legs (`A/P` and `P/B`) is their exact product. Only an inversion or a
//! division rounds, at the 28th significant digit of `Decimal`, far below any minor unit.
//!
//! A derived rate is as old as its oldest leg, stale if either leg is, and lists each leg's
//! sources as `PAIR:source`.

use super::{CurrencyPair, ExchangeRate};
use crate::domain::money::Currency;
use rust_decimal::Decimal;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrossError {
    #[error("{leg} is not a leg from {from} through a pivot currency")]
    NotALeg { leg: CurrencyPair, from: Currency },
    #[error("legs {first} and {second} do not chain to {target}")]
    DoNotChain {
        first: CurrencyPair,
        second: CurrencyPair,
        target: CurrencyPair,
    },
    #[error("rate {0} is not positive")]
    NonPositive(Decimal),
    #[error("rate out of range for a decimal")]
    Overflow,
}

fn tagged_sources(legs: &[&ExchangeRate]) -> Vec<String> {
    let mut out: Vec<String> = legs
        .iter()
        .flat_map(|l| {
            l.sources.iter().map(move |s| {
                // Already tagged sources (a derived leg) keep their tag.
                if s.contains(':') {
                    s.clone()
                } else {
                    format!("{}:{s}", l.pair)
                }
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn check_positive(r: &ExchangeRate) -> Result<(), CrossError> {
    if r.rate <= Decimal::ZERO {
        return Err(CrossError::NonPositive(r.rate));
    }
    Ok(())
}

/// The same rate the other way round: `1 / rate` for the inverse pair.
pub fn invert(rate: &ExchangeRate) -> Result<ExchangeRate, CrossError> {
    check_positive(rate)?;
    let inv = Decimal::ONE.checked_div(rate.rate).ok_or(CrossError::Overflow)?;
    if inv <= Decimal::ZERO {
        // Smaller than a Decimal can hold.
        return Err(CrossError::Overflow);
    }
    Ok(ExchangeRate {
        pair: rate.pair.inverse(),
        rate: inv,
        sources: tagged_sources(&[rate]),
        ..rate.clone()
    })
}

/// The rate for `target` through the currency the two legs share.
///
/// `first` must join `target.base` and the pivot, `second` the pivot and `target.quote`, each in
/// either orientation.
pub fn triangulate(
    target: CurrencyPair,
    first: &ExchangeRate,
    second: &ExchangeRate,
) -> Result<ExchangeRate, CrossError> {
    check_positive(first)?;
    check_positive(second)?;
    let chain_err = || CrossError::DoNotChain {
        first: first.pair,
        second: second.pair,
        target,
    };
    // Orientation of each leg: true if given as base→pivot / pivot→quote.
    let (pivot, first_direct) = if first.pair.base == target.base {
        (first.pair.quote, true)
    } else if first.pair.quote == target.base {
        (first.pair.base, false)
    } else {
        return Err(CrossError::NotALeg {
            leg: first.pair,
            from: target.base,
        });
    };
    let second_direct = if second.pair == CurrencyPair::new(pivot, target.quote) {
        true
    } else if second.pair == CurrencyPair::new(target.quote, pivot) {
        false
    } else {
        return Err(chain_err());
    };
    if pivot == target.quote || pivot == target.base {
        return Err(chain_err());
    }
    let (a, b) = (first.rate, second.rate);
    let rate = match (first_direct, second_direct) {
        (true, true) => a.checked_mul(b),
        (true, false) => a.checked_div(b),
        (false, true) => b.checked_div(a),
        (false, false) => a.checked_mul(b).and_then(|p| Decimal::ONE.checked_div(p)),
    }
    .ok_or(CrossError::Overflow)?;
    if rate <= Decimal::ZERO {
        return Err(CrossError::Overflow);
    }
    Ok(ExchangeRate {
        pair: target,
        rate,
        as_of: first.as_of.min(second.as_of),
        sources: tagged_sources(&[first, second]),
        stale: first.stale || second.stale,
        age: first.age.max(second.age),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeDelta, TimeZone, Utc};
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }

    fn rate(pair: &str, r: Decimal, source: &str, secs_ago: i64) -> ExchangeRate {
        let as_of = t0() - TimeDelta::seconds(secs_ago);
        ExchangeRate::new(pair.parse().unwrap(), r, as_of, vec![source.into()], t0()).unwrap()
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn eur_to_btc_through_usd() {
        let eur_usd = rate("EUR/USD", d("1.05"), "ecb", 3600);
        let btc_usd = rate("BTC/USD", d("97000"), "kraken", 10);
        let eur_btc = triangulate("EUR/BTC".parse().unwrap(), &eur_usd, &btc_usd).unwrap();
        assert_eq!(eur_btc.rate, d("1.05") / d("97000"));
        assert_eq!(eur_btc.as_of, eur_usd.as_of);
        assert_eq!(eur_btc.age, TimeDelta::hours(1));
        assert_eq!(eur_btc.sources, ["BTC/USD:kraken", "EUR/USD:ecb"]);
        // The other way round, from the same legs.
        let btc_eur = triangulate("BTC/EUR".parse().unwrap(), &btc_usd, &eur_usd).unwrap();
        assert_eq!(btc_eur.rate, d("97000") / d("1.05"));
        // Both legs inverted.
        let usd_eur = invert(&eur_usd).unwrap();
        let usd_btc = invert(&btc_usd).unwrap();
        let x = triangulate("EUR/BTC".parse().unwrap(), &usd_eur, &usd_btc).unwrap();
        assert!((x.rate - eur_btc.rate).abs() < Decimal::new(1, 20));
        assert_eq!(x.sources, ["BTC/USD:kraken", "EUR/USD:ecb"]);
    }

    #[test]
    fn stale_legs_make_a_stale_cross_and_legs_must_chain() {
        let mut eth_btc = rate("ETH/BTC", d("0.036"), "binance", 5);
        eth_btc.stale = true;
        let btc_usd = rate("BTC/USD", d("97000"), "kraken", 10);
        let eth_usd = triangulate("ETH/USD".parse().unwrap(), &eth_btc, &btc_usd).unwrap();
        assert_eq!(eth_usd.rate, d("3492.000"));
        assert!(eth_usd.stale);
        let eur_usd = rate("EUR/USD", d("1.05"), "ecb", 1);
        assert!(matches!(
            triangulate("ETH/USD".parse().unwrap(), &eur_usd, &btc_usd),
            Err(CrossError::NotALeg { .. })
        ));
        assert!(matches!(
            triangulate("ETH/GBP".parse().unwrap(), &eth_btc, &btc_usd),
            Err(CrossError::DoNotChain { .. })
        ));
        // A "pivot" that is the target's own currency is not a triangle.
        let eth_usd2 = rate("ETH/USD", d("3500"), "kraken", 1);
        assert!(triangulate("ETH/USD".parse().unwrap(), &eth_usd2, &btc_usd).is_err());
    }

    #[test]
    fn invert_swaps_the_pair() {
        let r = rate("EUR/USD", d("1.25"), "ecb", 0);
        let i = invert(&r).unwrap();
        assert_eq!(i.pair.to_string(), "USD/EUR");
        assert_eq!(i.rate, d("0.8"));
        assert_eq!(i.sources, ["EUR/USD:ecb"]);
    }

    /// A rate from 0.000001 to 99 999 999.999999 (8 integer and 6 fractional digits), the
    /// span of real rates between the currencies supported.
    fn positive_rate() -> impl Strategy<Value = Decimal> {
        (1i64..=99_999_999_999_999).prop_map(|m| Decimal::new(m, 6).normalize())
    }

    proptest! {
        #[test]
        fn triangulated_rate_is_the_exact_product_of_direct_legs(a in positive_rate(), b in positive_rate()) {
            let first = rate("EUR/USD", a, "x", 0);
            let second = rate("USD/BTC", b, "y", 0);
            let cross = triangulate("EUR/BTC".parse().unwrap(), &first, &second).unwrap();
            // The product computed on integers: mantissas multiplied, scales added.
            let exact = Decimal::from_i128_with_scale(a.mantissa() * b.mantissa(), a.scale() + b.scale());
            prop_assert_eq!(cross.rate, exact);
        }

        #[test]
        fn inverting_twice_gives_the_rate_back_to_28_digits(a in positive_rate()) {
            let r = rate("EUR/USD", a, "x", 0);
            let back = invert(&invert(&r).unwrap()).unwrap();
            prop_assert_eq!(back.pair, r.pair);
            let rel = ((back.rate - a) / a).abs();
            prop_assert!(rel < Decimal::new(1, 18), "{} -> {} ({})", a, back.rate, rel);
        }

        #[test]
        fn triangulation_agrees_whatever_the_legs_orientation(a in positive_rate(), b in positive_rate()) {
            let first = rate("EUR/USD", a, "x", 0);
            let second = rate("USD/BTC", b, "y", 0);
            let target = "EUR/BTC".parse().unwrap();
            let direct = triangulate(target, &first, &second).unwrap().rate;
            let inv_first = invert(&first).unwrap();
            let inv_second = invert(&second).unwrap();
            for (l1, l2) in [(&inv_first, &second), (&first, &inv_second), (&inv_first, &inv_second)] {
                let other = triangulate(target, l1, l2).unwrap().rate;
                // A cross as small as 1e-16 keeps only 12 significant digits in a Decimal.
                let rel = ((other - direct) / direct).abs();
                prop_assert!(rel < Decimal::new(1, 10), "{} vs {} ({})", other, direct, rel);
            }
        }
    }
}
