//! Every input format refuses unknown fields and names them with their path; decimals are
//! strings; times are RFC 3339. The property test renames one field of each format's fullest
//! document and requires a refusal that names the new name.

use super::*;
use crate::domain::pricing::{MarketFactors, PriceBook, Subscription, TaxTable, UsageRow};
use crate::domain::usage::{parse_event, TimeRules, UsageAggregate};
use proptest::prelude::*;
use serde_json::{json, Value};

const BOOK: &str = r#"{
  "id": "b", "owner": {"kind": "provider", "id": "p"}, "currency": "EUR", "version": 1,
  "effective_from": "2026-01-01T00:00:00Z", "effective_to": "2027-01-01T00:00:00Z",
  "tax_mode": "inclusive",
  "volume_discount": {"basis": "quantity", "method": "retroactive", "meter": "cpu_seconds",
    "thresholds": [{"from": "0", "percent": "0"}, {"from": "1000", "percent": "5"}]},
  "prices": [
    {"id": "cpu", "meter": "cpu_seconds", "filters": {"region": "eu"},
     "model": {"type": "per_unit", "unit_price": "0.001"}, "minimum": "1", "maximum": "100",
     "dynamic": {
       "time_of_use": {"timezone": "Europe/Berlin",
         "rules": [{"days": ["mon"], "from_hour": 8, "to_hour": 20, "multiplier": "1.25"}]},
       "demand": [{"from": "2026-01-01T00:00:00Z", "multiplier": "1.1"}],
       "spot": {"market": "cpu", "floor": "0.0005", "cap": "0.002"}}},
    {"id": "gpu", "meter": "gpu_seconds", "model": {"type": "graduated", "tiers": [
       {"from": "0", "up_to": "10", "unit_price": "1", "flat_fee": "2"},
       {"from": "10", "unit_price": "0.5"}]}},
    {"id": "mem", "meter": "memory_gib_seconds", "model": {"type": "volume", "tiers": [
       {"from": "0", "unit_price": "1"}]}},
    {"id": "egress", "meter": "network_egress_gib",
     "model": {"type": "package", "package_size": "100", "package_price": "4.50"}},
    {"id": "wall", "meter": "wall_seconds", "model": {"type": "flat", "amount": "3"}}
  ]
}"#;

const SUBSCRIPTION: &str = r#"{
  "account_id": "acct-1",
  "plan": {
    "name": "Team", "recurring_fee": "49.00", "minimum": "10", "maximum": "1000",
    "tax_mode": "exclusive",
    "active": {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"},
    "allowances": [{"meter": "cpu_seconds", "quantity": "10000", "overage_unit_price": "0.01"}],
    "reservations": [{"id": "r1", "meter": "gpu_seconds", "units_per_period": "3600",
      "term_start": "2026-01-01T00:00:00Z", "term_months": 12, "upfront": "partial",
      "upfront_amount": "100", "monthly_fee": "10"}]
  },
  "tax": {"jurisdiction": {"country": "US", "region": "CA"}, "exemption": "cert-1",
          "reverse_charge_tax_id": "DE123"}
}"#;

const TAXES: &str = r#"{"rates": [
  {"country": "US", "region": "CA", "name": "Sales tax", "rate": "0.0725",
   "effective_from": "2017-01-01T00:00:00Z", "effective_to": "2030-01-01T00:00:00Z"}
]}"#;

const MARKET: &str = r#"{"markets": {"cpu": [
  {"at": "2026-01-01T00:00:00Z", "factor": "0.8", "source": "feed"}
]}}"#;

const ROWS: &str = r#"[
  {"provider_id": "p", "meter": "gpu_seconds", "dimensions": {"gpu_model": "H100"},
   "window_start": "2026-01-05T00:00:00Z", "quantity": "3600"}
]"#;

const AGGREGATES: &str = r#"[
  {"account_id": "a", "provider_id": "p", "granularity": "hour", "window_start": "2026-01-05T00:00:00Z",
   "meter": "gpu_seconds", "dimensions": {"gpu_model": "H100"}, "quantity": "3600", "event_count": 2}
]"#;

const EVENT: &str = r#"{"id": "e1", "account_id": "a", "provider_id": "p", "job_id": "j",
  "meter": "gpu_seconds", "quantity": "3600", "timestamp": "2026-01-05T00:00:00Z",
  "dimensions": {"gpu_model": "H100"}}"#;

fn err<T: DeserializeOwned + fmt::Debug>(text: &str) -> InputError {
    match from_json_str::<T>(text) {
        Ok(v) => panic!("accepted: {v:?}"),
        Err(e) => e,
    }
}

#[test]
fn the_full_documents_are_read() {
    from_json_str::<PriceBook>(BOOK).unwrap();
    from_json_str::<Subscription>(SUBSCRIPTION).unwrap();
    from_json_str::<TaxTable>(TAXES).unwrap();
    from_json_str::<MarketFactors>(MARKET).unwrap();
    from_json_str::<Vec<UsageRow>>(ROWS).unwrap();
    from_json_str::<Vec<UsageAggregate>>(AGGREGATES).unwrap();
}

#[test]
fn a_subscription_with_a_misspelled_tax_is_refused() {
    let e = err::<Subscription>(&SUBSCRIPTION.replace("\"tax\":", "\"taxx\":"));
    assert_eq!(e.path, "taxx");
    assert!(e.message.starts_with("unknown field `taxx`"), "{e}");
    assert_eq!(e.position.map(|p| p.line), Some(12), "{e:?}");
}

#[test]
fn the_tax_section_refuses_unknown_fields() {
    let e = err::<Subscription>(&SUBSCRIPTION.replace("\"region\"", "\"regoin\""));
    assert_eq!(e.path, "tax.jurisdiction.regoin", "{e}");
    let e = err::<Subscription>(&SUBSCRIPTION.replace("\"exemption\"", "\"exempt\""));
    assert_eq!(e.path, "tax.exempt", "{e}");
}

#[test]
fn a_plan_refuses_unknown_fields_in_its_period() {
    let e = err::<Subscription>(&SUBSCRIPTION.replace("\"end\"", "\"until\""));
    assert_eq!(e.path, "plan.active.until", "{e}");
}

#[test]
fn a_tax_table_refuses_unknown_fields() {
    let e = err::<TaxTable>(&TAXES.replace("\"region\"", "\"regoin\""));
    assert_eq!(e.path, "rates[0].regoin", "{e}");
    let e = err::<TaxTable>(&TAXES.replace("{\"rates\":", "{\"default\": \"0.19\", \"rates\":"));
    assert_eq!(e.path, "default", "{e}");
}

#[test]
fn market_factors_refuse_unknown_fields() {
    let e = err::<MarketFactors>(&MARKET.replace("\"markets\"", "\"market\""));
    assert_eq!(e.path, "market", "{e}");
    let e = err::<MarketFactors>(&MARKET.replace("\"source\"", "\"src\""));
    assert_eq!(e.path, "markets.cpu[0].src", "{e}");
}

#[test]
fn a_usage_row_with_a_misspelled_dimensions_is_refused() {
    let e = err::<Vec<UsageRow>>(&ROWS.replace("\"dimensions\"", "\"dimension\""));
    assert_eq!(e.path, "[0].dimension", "{e}");
    assert_eq!(e.position.map(|p| p.line), Some(2), "{e:?}");
}

#[test]
fn a_negative_usage_row_is_refused() {
    let e = err::<Vec<UsageRow>>(&ROWS.replace("\"3600\"", "\"-1\""));
    assert_eq!(e.path, "[0].quantity", "{e}");
    assert!(e.message.contains("must be zero or more"), "{e}");
}

#[test]
fn a_price_book_names_an_unknown_field_of_a_charge_model_or_an_owner() {
    let e = err::<PriceBook>(&BOOK.replace("\"package_price\"", "\"package_prize\""));
    assert_eq!(e.path, "prices[3].model.package_prize", "{e}");
    let e = err::<PriceBook>(&BOOK.replace(
        "{\"kind\": \"provider\", \"id\": \"p\"}",
        "{\"kind\": \"provider\", \"name\": \"p\"}",
    ));
    assert_eq!(e.path, "owner.name", "{e}");
    // A field of another model is not silently ignored either.
    let e = err::<PriceBook>(&BOOK.replace(
        "\"type\": \"flat\", \"amount\": \"3\"",
        "\"type\": \"flat\", \"amount\": \"3\", \"unit_price\": \"1\"",
    ));
    assert_eq!(e.path, "prices[4].model", "{e}");
    assert!(e.message.contains("`unit_price`"), "{e}");
    let e = err::<PriceBook>(&BOOK.replace(
        "{\"kind\": \"provider\", \"id\": \"p\"}",
        "{\"kind\": \"marketplace\", \"id\": \"p\"}",
    ));
    assert_eq!(e.path, "owner", "{e}");
    assert!(e.message.contains("`id`"), "{e}");
}

#[test]
fn a_json_number_for_a_decimal_says_to_quote_it_and_why() {
    let e = err::<PriceBook>(&BOOK.replace("\"unit_price\": \"0.001\"", "\"unit_price\": 0.001"));
    assert_eq!(e.path, "prices[0].model.unit_price", "{e}");
    assert!(e.message.contains("\"0.001\""), "{e}");
    assert!(e.message.contains("exactly"), "{e}");
    let e = err::<TaxTable>(&TAXES.replace("\"0.0725\"", "0.0725"));
    assert_eq!(e.path, "rates[0].rate", "{e}");
    let e = err::<Subscription>(&SUBSCRIPTION.replace("\"10000\"", "10000"));
    assert_eq!(e.path, "plan.allowances[0].quantity", "{e}");
    assert!(e.message.contains("\"10000\""), "{e}");
    let e = err::<Vec<UsageRow>>(&ROWS.replace("\"3600\"", "3600"));
    assert_eq!(e.path, "[0].quantity", "{e}");
}

#[test]
fn a_time_that_is_not_rfc_3339_is_named_with_its_value() {
    for (bad, path) in [
        ("2026-01-01", "effective_from"),
        ("2026-01-01 00:00", "effective_from"),
        ("1767225600", "effective_from"),
    ] {
        let e = err::<PriceBook>(&BOOK.replacen("2026-01-01T00:00:00Z", bad, 1));
        assert_eq!(e.path, path, "{e}");
        assert!(e.message.contains(&format!("`{bad}`")), "{e}");
        assert!(e.message.contains("RFC 3339"), "{e}");
    }
    let e = err::<Vec<UsageRow>>(&ROWS.replace("2026-01-05T00:00:00Z", "yesterday"));
    assert_eq!(e.path, "[0].window_start", "{e}");
    assert!(e.message.contains("`yesterday` is not an RFC 3339 time"), "{e}");
}

#[test]
fn the_helpers_read_exact_decimals_and_rfc_3339_times() {
    assert_eq!(parse_decimal("0.10").unwrap().to_string(), "0.10");
    assert_eq!(parse_decimal("1.5e3").unwrap(), Decimal::from(1500));
    for bad in ["", " 1", "+1", "1,5", "0x10", "NaN"] {
        assert_eq!(parse_decimal(bad), Err(not_a_decimal(bad)), "{bad:?}");
    }
    assert_eq!(
        parse_instant("2026-01-01T01:00:00+01:00").unwrap(),
        parse_instant("2026-01-01T00:00:00Z").unwrap()
    );
    assert_eq!(
        parse_instant("2026-13-01T00:00:00Z"),
        Err(not_rfc3339("2026-13-01T00:00:00Z"))
    );
    let e = from_json_value::<PriceBook>(json!({"id": 1})).unwrap_err();
    assert_eq!((e.path.as_str(), e.position), ("id", None), "{e}");
    assert!(from_json_str::<TaxTable>("{\"rates\": []} x").is_err());
}

#[test]
fn the_documents_written_are_read_back_unchanged() {
    let book: PriceBook = from_json_str(BOOK).unwrap();
    let again: PriceBook = from_json_str(&serde_json::to_string(&book).unwrap()).unwrap();
    assert_eq!(again, book);
    let sub: Subscription = from_json_str(SUBSCRIPTION).unwrap();
    assert_eq!(
        from_json_value::<Subscription>(serde_json::to_value(&sub).unwrap()).unwrap(),
        sub
    );
    let taxes: TaxTable = from_json_str(TAXES).unwrap();
    assert_eq!(
        from_json_value::<TaxTable>(serde_json::to_value(&taxes).unwrap()).unwrap(),
        taxes
    );
    let rows: Vec<UsageRow> = from_json_str(ROWS).unwrap();
    let text = serde_json::to_string(&rows).unwrap();
    assert!(
        text.contains("\"window_start\":\"2026-01-05T00:00:00Z\""),
        "{text}"
    );
    assert_eq!(from_json_str::<Vec<UsageRow>>(&text).unwrap(), rows);
}

/// A format: its fullest document and its reader (the error text on refusal).
struct Format {
    name: &'static str,
    text: &'static str,
    read: fn(&str) -> Result<(), String>,
}

fn reader<T: DeserializeOwned>(text: &str) -> Result<(), String> {
    from_json_str::<T>(text).map(|_| ()).map_err(|e| e.to_string())
}

/// A usage event as ingestion reads it (no time window: the contract's field rules only).
fn read_event(text: &str) -> Result<(), String> {
    let now = parse_instant("2026-01-05T00:00:00Z").unwrap();
    parse_event(text, now, &TimeRules::default())
        .map(|_| ())
        .map_err(|r| {
            r.errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })
}

const FORMATS: &[Format] = &[
    Format {
        name: "price book",
        text: BOOK,
        read: reader::<PriceBook>,
    },
    Format {
        name: "subscription",
        text: SUBSCRIPTION,
        read: reader::<Subscription>,
    },
    Format {
        name: "tax table",
        text: TAXES,
        read: reader::<TaxTable>,
    },
    Format {
        name: "market factors",
        text: MARKET,
        read: reader::<MarketFactors>,
    },
    Format {
        name: "usage rows",
        text: ROWS,
        read: reader::<Vec<UsageRow>>,
    },
    Format {
        name: "usage aggregates",
        text: AGGREGATES,
        read: reader::<Vec<UsageAggregate>>,
    },
    Format {
        name: "usage event",
        text: EVENT,
        read: read_event,
    },
];

/// Objects whose keys are data (dimension names, filters, market names), not field names.
const FREE_FORM: &[&str] = &["dimensions", "filters", "markets"];

/// The path (object keys and array indices) of every field name in `v`.
fn field_paths(v: &Value, at: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    match v {
        Value::Object(m) => {
            let free = matches!(at.last(), Some(Value::String(k)) if FREE_FORM.contains(&k.as_str()));
            for (k, child) in m {
                at.push(Value::String(k.clone()));
                if !free {
                    out.push(at.clone());
                }
                field_paths(child, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                at.push(Value::from(i));
                field_paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn rename(doc: &mut Value, path: &[Value], to: &str) {
    let (last, parents) = path.split_last().unwrap();
    let mut v = doc;
    for p in parents {
        v = match p {
            Value::String(k) => &mut v[k.as_str()],
            i => &mut v[i.as_u64().unwrap() as usize],
        };
    }
    let m = v.as_object_mut().unwrap();
    let value = m.remove(last.as_str().unwrap()).unwrap();
    m.insert(to.to_string(), value);
}

/// A misspelling of `name`: a letter inserted, dropped, replaced or doubled, two letters
/// swapped, or a capital.
fn misspell(name: &str, kind: usize, at: usize, letter: char) -> String {
    let chars: Vec<char> = name.chars().collect();
    let i = at % chars.len();
    let mut out = chars.clone();
    match kind {
        0 => out.insert(at % (chars.len() + 1), letter),
        1 => {
            out.remove(i);
        }
        2 => out[i] = letter,
        3 => out.insert(i, chars[i]),
        4 if chars.len() > 1 => out.swap(i, (i + 1) % chars.len()),
        _ => out[i] = chars[i].to_ascii_uppercase(),
    }
    out.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        max_global_rejects: 100_000,
        ..ProptestConfig::default()
    })]

    /// For every format, a document with one field renamed is refused, and the refusal names
    /// the new name: never accepted with a different meaning.
    #[test]
    fn a_document_with_one_field_renamed_is_refused(
        f in 0..FORMATS.len(),
        field in any::<prop::sample::Index>(),
        kind in 0usize..6,
        at in 0usize..64,
        letter in prop::char::range('a', 'z'),
    ) {
        let format = &FORMATS[f];
        let doc: Value = serde_json::from_str(format.text).unwrap();
        prop_assert!((format.read)(format.text).is_ok(), "{} is read", format.name);
        let mut paths = Vec::new();
        field_paths(&doc, &mut Vec::new(), &mut paths);
        let path = field.get(&paths);
        let name = path.last().unwrap().as_str().unwrap();
        let to = misspell(name, kind, at, letter);
        // A name that is a field somewhere in the format would be a different document, not a
        // misspelled one (the fullest document holds every field).
        let known = paths.iter().any(|p| p.last().unwrap().as_str() == Some(to.as_str()));
        prop_assume!(!to.is_empty() && !known);
        let mut renamed = doc.clone();
        rename(&mut renamed, path, &to);
        let text = serde_json::to_string_pretty(&renamed).unwrap();
        match (format.read)(&text) {
            Ok(()) => prop_assert!(false, "{}: `{}` renamed `{}` was accepted", format.name, name, to),
            Err(e) => prop_assert!(e.contains(&to), "{}: `{}` renamed `{}`: {}", format.name, name, to, e),
        }
    }
}
