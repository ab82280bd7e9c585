//! ECB euro foreign exchange reference rates:
//! `GET {base}/stats/eurofxref/eurofxref-daily.xml`.
//!
//! XML with base EUR, published once per working day around 16:00 CET:
//! `<Cube><Cube time="2026-11-24"><Cube currency="USD" rate="1.0512"/>...</Cube></Cube>`.
//! The document is small and flat, so the `Cube` elements' attributes are read with a small
//! scanner rather than an XML library.
//!
//! The quote time is the publication: the `time` date at 16:00 Europe/Berlin. Pairs are served
//! as `EUR/X` directly, `X/EUR` inverted, and `X/Y` (both listed, neither EUR) through EUR:
//! `(EUR/Y) / (EUR/X)`. The ECB lists fiat currencies only.

use super::{check_status, parse_decimal, snippet, Response, SourceError};
use crate::domain::fx::{CurrencyPair, Quote};
use crate::domain::money::Currency;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Europe::Berlin;
use rust_decimal::Decimal;

pub const NAME: &str = "ecb";

/// The request path.
pub const PATH: &str = "/stats/eurofxref/eurofxref-daily.xml";

/// The day's reference rates: one euro buys `rate` units of each currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyRates {
    pub date: NaiveDate,
    /// The publication instant: `date` at 16:00 in Frankfurt.
    pub published_at: DateTime<Utc>,
    pub rates: Vec<(String, Decimal)>,
}

impl DailyRates {
    fn per_euro(&self, c: Currency) -> Option<Decimal> {
        if c == Currency::EUR {
            return Some(Decimal::ONE);
        }
        self.rates
            .iter()
            .find(|(code, _)| code == c.code())
            .map(|(_, r)| *r)
    }
}

/// The attributes of each `<Cube ...>` start tag, in document order.
fn cube_tags(body: &str) -> Vec<Vec<(&str, &str)>> {
    let mut tags = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("<Cube") {
        let after = &rest[start + 5..];
        let Some(end) = after.find('>') else { break };
        tags.push(attributes(&after[..end]));
        rest = &after[end..];
    }
    tags
}

/// `name="value"` or `name='value'` pairs in a start tag's inside.
fn attributes(mut s: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    while let Some(eq) = s.find('=') {
        let name = s[..eq].trim().trim_start_matches('/');
        let after = s[eq + 1..].trim_start();
        let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            break;
        };
        let Some(close) = after[1..].find(quote) else {
            break;
        };
        out.push((name, &after[1..1 + close]));
        s = &after[close + 2..];
    }
    out
}

fn attr<'a>(tag: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    tag.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Reads the daily reference rates document.
#[allow(clippy::expect_used)] // Cannot fail: 16:00:00 is a valid time.
pub fn parse_daily(resp: &Response<'_>) -> Result<DailyRates, SourceError> {
    check_status(resp.status)?;
    let head = resp
        .body
        .trim_start()
        .chars()
        .take(512)
        .collect::<String>()
        .to_ascii_lowercase();
    if head.contains("<html") || head.starts_with("<!doctype html") {
        return Err(SourceError::Html { status: resp.status });
    }
    if resp.status != 200 {
        return Err(SourceError::Status {
            status: resp.status,
            snippet: snippet(resp.body),
        });
    }
    if resp.body.trim().is_empty() {
        return Err(SourceError::Truncated("empty body".into()));
    }
    if !resp.body.trim_end().ends_with("Envelope>") {
        return Err(SourceError::Truncated("no closing </gesmes:Envelope>".into()));
    }
    let tags = cube_tags(resp.body);
    let time = tags
        .iter()
        .find_map(|t| attr(t, "time"))
        .ok_or_else(|| SourceError::Malformed("no <Cube time=...> element".into()))?;
    let date = NaiveDate::parse_from_str(time, "%Y-%m-%d")
        .map_err(|_| SourceError::Malformed(format!("bad date {time:?}")))?;
    let local = date.and_time(NaiveTime::from_hms_opt(16, 0, 0).expect("valid time"));
    let published_at = Berlin
        .from_local_datetime(&local)
        .single()
        .ok_or_else(|| SourceError::Malformed(format!("no 16:00 in Frankfurt on {date}")))?
        .with_timezone(&Utc);
    let mut rates = Vec::new();
    for t in &tags {
        if let (Some(code), Some(rate)) = (attr(t, "currency"), attr(t, "rate")) {
            rates.push((code.to_string(), parse_decimal(&format!("rate of {code}"), rate)?));
        }
    }
    if rates.is_empty() {
        return Err(SourceError::Malformed(
            "no <Cube currency=... rate=...> elements".into(),
        ));
    }
    Ok(DailyRates {
        date,
        published_at,
        rates,
    })
}

/// The quote for `pair` from the daily reference rates document.
pub fn parse(resp: &Response<'_>, pair: CurrencyPair) -> Result<Quote, SourceError> {
    let daily = parse_daily(resp)?;
    quote(&daily, pair, resp.fetched_at)
}

/// The quote for `pair` from an already parsed document.
pub fn quote(
    daily: &DailyRates,
    pair: CurrencyPair,
    fetched_at: DateTime<Utc>,
) -> Result<Quote, SourceError> {
    let get = |c: Currency| {
        daily.per_euro(c).ok_or_else(|| SourceError::UnknownPair {
            pair,
            detail: format!("{c} is not in the ECB reference rates of {}", daily.date),
        })
    };
    let (base, quote) = (get(pair.base)?, get(pair.quote)?);
    for (c, v) in [(pair.base, base), (pair.quote, quote)] {
        if v <= Decimal::ZERO {
            return Err(SourceError::NonPositiveRate {
                pair: CurrencyPair::new(Currency::EUR, c),
                value: v,
            });
        }
    }
    // One EUR buys `base` units of the base and `quote` units of the quote currency.
    let rate = quote
        .checked_div(base)
        .ok_or_else(|| SourceError::Malformed(format!("cannot divide {quote} by {base}")))?;
    Ok(Quote::new(pair, rate, NAME, daily.published_at, fetched_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fx::parse::test_support::{fetched_at, HTML_PAGE};
    use chrono::TimeZone;

    const OK: &str = include_str!("../fixtures/ecb_daily.xml");

    fn pair(s: &str) -> CurrencyPair {
        s.parse().unwrap()
    }

    fn parse_body(status: u16, body: &str, p: &str) -> Result<Quote, SourceError> {
        parse(&Response::new(status, body, fetched_at()), pair(p))
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn reads_the_cubes_and_the_publication_time() {
        let daily = parse_daily(&Response::new(200, OK, fetched_at())).unwrap();
        assert_eq!(daily.date, NaiveDate::from_ymd_opt(2026, 11, 24).unwrap());
        // 16:00 CET (winter) is 15:00 UTC.
        assert_eq!(
            daily.published_at,
            Utc.with_ymd_and_hms(2026, 11, 24, 15, 0, 0).unwrap()
        );
        assert_eq!(daily.rates.len(), 4);
        let q = parse_body(200, OK, "EUR/USD").unwrap();
        assert_eq!(q.rate, d("1.0512"));
        assert_eq!(q.source, "ecb");
        assert_eq!(q.quoted_at, daily.published_at);
        // Summer time: 16:00 CEST is 14:00 UTC.
        let summer = OK.replace("2026-11-24", "2026-07-01");
        let q = parse_body(200, &summer, "EUR/USD").unwrap();
        assert_eq!(q.quoted_at, Utc.with_ymd_and_hms(2026, 7, 1, 14, 0, 0).unwrap());
    }

    #[test]
    fn inverse_and_cross_through_eur() {
        assert_eq!(
            parse_body(200, OK, "USD/EUR").unwrap().rate,
            Decimal::ONE / d("1.0512")
        );
        assert_eq!(
            parse_body(200, OK, "USD/JPY").unwrap().rate,
            d("162.31") / d("1.0512")
        );
        assert!(matches!(
            parse_body(200, OK, "BTC/EUR"),
            Err(SourceError::UnknownPair { .. })
        ));
        assert!(matches!(
            parse_body(200, OK, "EUR/SEK"),
            Err(SourceError::UnknownPair { .. })
        ));
    }

    #[test]
    fn double_quoted_attributes_as_in_the_notes() {
        let body = r#"<gesmes:Envelope><Cube><Cube time="2026-11-24">
          <Cube currency="USD" rate="1.0512"/><Cube currency="JPY" rate="162.31"/>
        </Cube></Cube></gesmes:Envelope>"#;
        assert_eq!(parse_body(200, body, "EUR/JPY").unwrap().rate, d("162.31"));
    }

    #[test]
    fn bad_documents() {
        assert_eq!(
            parse_body(200, HTML_PAGE, "EUR/USD"),
            Err(SourceError::Html { status: 200 })
        );
        assert!(matches!(
            parse_body(200, &OK[..OK.len() - 40], "EUR/USD"),
            Err(SourceError::Truncated(_))
        ));
        assert!(matches!(
            parse_body(200, "", "EUR/USD"),
            Err(SourceError::Truncated(_))
        ));
        let number = OK.replace("'1.0512'", "'1,0512'");
        assert!(matches!(
            parse_body(200, &number, "EUR/USD"),
            Err(SourceError::MalformedNumber { .. })
        ));
        let zero = OK.replace("'1.0512'", "'0.0000'");
        assert!(matches!(
            parse_body(200, &zero, "EUR/USD"),
            Err(SourceError::NonPositiveRate { .. })
        ));
        let no_time = OK.replace("time='2026-11-24'", "");
        assert!(matches!(
            parse_body(200, &no_time, "EUR/USD"),
            Err(SourceError::Malformed(_))
        ));
        let bad_date = OK.replace("2026-11-24", "24.11.2026");
        assert!(matches!(
            parse_body(200, &bad_date, "EUR/USD"),
            Err(SourceError::Malformed(_))
        ));
        assert_eq!(
            parse_body(503, "", "EUR/USD"),
            Err(SourceError::Unavailable { status: 503 })
        );
        assert_eq!(
            parse_body(429, "", "EUR/USD"),
            Err(SourceError::RateLimited { status: 429 })
        );
        assert!(matches!(
            parse_body(404, "<x/>", "EUR/USD"),
            Err(SourceError::Status { status: 404, .. })
        ));
    }
}
