//! A currency pair: how many units of `quote` one unit of `base` buys.

use crate::domain::money::{Currency, UnknownCurrency};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// `BASE/QUOTE`: a rate of 97000 for `BTC/USD` means 1 BTC = 97000 USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CurrencyPair {
    pub base: Currency,
    pub quote: Currency,
}

/// A pair written other than `BASE/QUOTE` with two distinct supported currencies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairParseError {
    #[error("currency pair `{0}` is not written BASE/QUOTE")]
    Format(String),
    #[error(transparent)]
    UnknownCurrency(#[from] UnknownCurrency),
    #[error("currency pair `{0}` has the same currency on both sides")]
    SameCurrency(String),
}

impl CurrencyPair {
    pub fn new(base: Currency, quote: Currency) -> CurrencyPair {
        CurrencyPair { base, quote }
    }

    /// The same two currencies the other way round.
    pub fn inverse(self) -> CurrencyPair {
        CurrencyPair::new(self.quote, self.base)
    }

    /// True if `other` has the same two currencies in either order.
    pub fn same_currencies(self, other: CurrencyPair) -> bool {
        self == other || self == other.inverse()
    }
}

impl fmt::Display for CurrencyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.quote)
    }
}

impl FromStr for CurrencyPair {
    type Err = PairParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (b, q) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| PairParseError::Format(s.to_string()))?;
        let base = Currency::from_code(b.trim())?;
        let quote = Currency::from_code(q.trim())?;
        if base == quote {
            return Err(PairParseError::SameCurrency(s.to_string()));
        }
        Ok(CurrencyPair::new(base, quote))
    }
}

impl Serialize for CurrencyPair {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CurrencyPair {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_parse_print_and_invert() {
        let p: CurrencyPair = "BTC/USD".parse().unwrap();
        assert_eq!(p.base.code(), "BTC");
        assert_eq!(p.quote, Currency::USD);
        assert_eq!(p.to_string(), "BTC/USD");
        assert_eq!(p.inverse().to_string(), "USD/BTC");
        assert!(p.same_currencies(p.inverse()));
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"BTC/USD\"");
        assert_eq!(serde_json::from_str::<CurrencyPair>("\"BTC/USD\"").unwrap(), p);
        assert!(matches!(
            "BTCUSD".parse::<CurrencyPair>(),
            Err(PairParseError::Format(_))
        ));
        assert!(matches!(
            "BTC/XYZ".parse::<CurrencyPair>(),
            Err(PairParseError::UnknownCurrency(_))
        ));
        assert!(matches!(
            "USD/USD".parse::<CurrencyPair>(),
            Err(PairParseError::SameCurrency(_))
        ));
    }
}
