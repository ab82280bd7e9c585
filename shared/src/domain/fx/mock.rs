//! A deterministic provider for local runs and tests: fixed rates, optionally moved by a seeded
//! jitter of at most ±0.5%, the same for the same seed every time.

use super::{CurrencyPair, Quote};
use crate::domain::money::Currency;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// The source name of mock quotes.
pub const NAME: &str = "mock";

/// Made-up rates near real ones, each against USD.
const DEFAULT_RATES: &[(&str, i64, u32)] = &[
    ("BTC/USD", 9_700_000, 2),
    ("ETH/USD", 350_000, 2),
    ("SOL/USD", 18_000, 2),
    ("USDC/USD", 1, 0),
    ("USDT/USD", 1, 0),
    ("EUR/USD", 105, 2),
    ("GBP/USD", 126, 2),
    ("CHF/USD", 113, 2),
    ("USD/JPY", 150, 0),
    ("USD/CAD", 140, 2),
];

/// Fixed (or seeded) rates. A pair is served directly, inverted, or through USD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockRates {
    rates: Vec<(CurrencyPair, Decimal)>,
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Default for MockRates {
    #[allow(clippy::expect_used)] // Cannot fail: the mock pairs are constants in the format `parse` accepts.
    fn default() -> Self {
        let rates = DEFAULT_RATES
            .iter()
            .map(|(p, m, s)| (p.parse().expect("valid pair"), Decimal::new(*m, *s)))
            .collect();
        MockRates { rates }
    }
}

impl MockRates {
    /// Exactly these rates (zero or negative ones are dropped).
    pub fn fixed(rates: impl IntoIterator<Item = (CurrencyPair, Decimal)>) -> MockRates {
        MockRates {
            rates: rates.into_iter().filter(|(_, r)| *r > Decimal::ZERO).collect(),
        }
    }

    /// The default rates, each moved by a jitter in [-0.5%, +0.5%] drawn from `seed`.
    pub fn seeded(seed: u64) -> MockRates {
        let mut m = MockRates::default();
        for (pair, rate) in &mut m.rates {
            let mut h = seed;
            for b in pair.to_string().bytes() {
                h = splitmix64(h ^ u64::from(b));
            }
            // -50..=50 basis points.
            let bp = (h % 101) as i64 - 50;
            *rate *= Decimal::ONE + Decimal::new(bp, 4);
        }
        m
    }

    /// The rate for a pair, if the table can make it.
    pub fn rate(&self, pair: CurrencyPair) -> Option<Decimal> {
        let direct = |p: CurrencyPair| self.rates.iter().find(|(q, _)| *q == p).map(|(_, r)| *r);
        if let Some(r) = direct(pair) {
            return Some(r);
        }
        if let Some(r) = direct(pair.inverse()) {
            return Decimal::ONE.checked_div(r);
        }
        // Through USD: the value of one unit of each currency in USD.
        let in_usd = |c: Currency| {
            if c == Currency::USD {
                return Some(Decimal::ONE);
            }
            direct(CurrencyPair::new(c, Currency::USD)).or_else(|| {
                direct(CurrencyPair::new(Currency::USD, c)).and_then(|r| Decimal::ONE.checked_div(r))
            })
        };
        in_usd(pair.base)?.checked_div(in_usd(pair.quote)?)
    }

    /// A quote for `pair` at `now`, from source `mock`.
    pub fn quote(&self, pair: CurrencyPair, now: DateTime<Utc>) -> Option<Quote> {
        self.rate(pair).map(|r| Quote::new(pair, r, NAME, now, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn pair(s: &str) -> CurrencyPair {
        s.parse().unwrap()
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn default_rates_direct_inverse_and_through_usd() {
        let m = MockRates::default();
        assert_eq!(m.rate(pair("BTC/USD")), Some(d("97000")));
        assert_eq!(m.rate(pair("JPY/USD")), Some(Decimal::ONE / d("150")));
        assert_eq!(m.rate(pair("BTC/EUR")), Some(d("97000") / d("1.05")));
        assert_eq!(
            m.rate(pair("EUR/JPY")),
            Some(d("1.05") / (Decimal::ONE / d("150")))
        );
        assert_eq!(m.rate(pair("BTC/KWD")), None);
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let q = m.quote(pair("ETH/USD"), now).unwrap();
        assert_eq!((q.rate, q.source.as_str(), q.quoted_at), (d("3500"), "mock", now));
    }

    #[test]
    fn seeded_rates_are_deterministic_and_close() {
        assert_eq!(MockRates::seeded(7), MockRates::seeded(7));
        assert_ne!(MockRates::seeded(7), MockRates::seeded(8));
        let base = MockRates::default();
        for seed in 0..50 {
            let r = MockRates::seeded(seed).rate(pair("BTC/USD")).unwrap();
            let dev = ((r - d("97000")) / d("97000")).abs();
            assert!(dev <= d("0.005"), "{seed}: {r}");
            assert!(base.rate(pair("BTC/USD")).is_some());
        }
        let fixed = MockRates::fixed([(pair("BTC/USD"), d("1")), (pair("ETH/USD"), Decimal::ZERO)]);
        assert_eq!(fixed.rate(pair("BTC/USD")), Some(d("1")));
        assert_eq!(fixed.rate(pair("ETH/USD")), None);
    }
}
