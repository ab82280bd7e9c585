//! Validation: every rule has a case here, each checked for its JSON path and code.

use super::*;
use serde_json::{json, Value};

fn base() -> Value {
    json!({
        "id": "gpu", "owner": {"kind": "provider", "id": "p1"}, "currency": "USD", "version": 1,
        "effective_from": "2026-01-01T00:00:00Z",
        "prices": [
            {"id": "cpu", "meter": "cpu_seconds", "model": {"type": "per_unit", "unit_price": "0.0001"}},
            {"id": "gpu-tiered", "meter": "gpu_seconds", "model": {"type": "graduated", "tiers": [
                {"from": "0", "up_to": "100", "unit_price": "0.01"},
                {"from": "100", "unit_price": "0.008"}
            ]}},
            {"id": "h100", "meter": "gpu_seconds", "filters": {"gpu_model": "H100"},
             "model": {"type": "per_unit", "unit_price": "0.02"},
             "dynamic": {"time_of_use": {"timezone": "Europe/Berlin", "rules": [
                 {"days": ["mon"], "from_hour": 8, "to_hour": 18, "multiplier": "1.5"}]},
                 "demand": [{"from": "2026-01-01T00:00:00Z", "multiplier": "1.1"}],
                 "spot": {"market": "gpu", "floor": "0.01", "cap": "0.05"}}},
            {"id": "egress", "meter": "network_egress_gib", "model": {"type": "package", "package_size": "10", "package_price": "1"}},
            {"id": "storage", "meter": "storage_gib_hours", "model": {"type": "flat", "amount": "5"},
             "minimum": "1", "maximum": "10"}
        ],
        "volume_discount": {"basis": "spend", "method": "retroactive",
            "thresholds": [{"from": "0", "percent": "0"}, {"from": "100", "percent": "5"}]}
    })
}

fn book(v: Value) -> PriceBook {
    serde_json::from_value(v).expect("structurally valid")
}

fn issues(v: Value) -> Vec<(String, &'static str)> {
    match validate_book(&book(v)) {
        Ok(()) => Vec::new(),
        Err(e) => e.0.into_iter().map(|i| (i.path, i.code)).collect(),
    }
}

/// Sets (or adds) the value at a JSON pointer whose parent exists.
fn set(mut v: Value, pointer: &str, new: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = v.pointer_mut(parent).unwrap_or_else(|| panic!("{pointer}"));
    match parent {
        Value::Array(a) => a[key.parse::<usize>().unwrap()] = new,
        Value::Object(o) => {
            o.insert(key.to_string(), new);
        }
        _ => panic!("{pointer}"),
    }
    v
}

#[test]
fn the_base_book_is_valid() {
    assert_eq!(issues(base()), vec![]);
}

#[test]
fn each_rule_reports_its_path_and_code() {
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        ("/id", json!(" "), "id", "empty"),
        ("/owner/id", json!(""), "owner.id", "empty"),
        ("/currency", json!("XXX"), "currency", "unknown_currency"),
        (
            "/effective_to",
            json!("2025-12-31T00:00:00Z"),
            "effective_to",
            "inverted_dates",
        ),
        ("/prices/1/id", json!("cpu"), "prices[1].id", "duplicate_id"),
        ("/prices/0/id", json!(""), "prices[0].id", "empty"),
        (
            "/prices/0/meter",
            json!("gpu_hours"),
            "prices[0].meter",
            "unknown_meter",
        ),
        (
            "/prices/0/filters",
            json!({"region": ""}),
            "prices[0].filters.region",
            "empty_filter",
        ),
        (
            "/prices/0/model/unit_price",
            json!("-1"),
            "prices[0].model.unit_price",
            "negative_price",
        ),
        (
            "/prices/1/model/tiers/1/from",
            json!("120"),
            "prices[1].model.tiers[1].from",
            "tier_gap",
        ),
        (
            "/prices/1/model/tiers/1/from",
            json!("90"),
            "prices[1].model.tiers[1].from",
            "tier_overlap",
        ),
        (
            "/prices/1/model/tiers/0/from",
            json!("1"),
            "prices[1].model.tiers[0].from",
            "tier_gap",
        ),
        (
            "/prices/1/model/tiers/0/up_to",
            json!("0"),
            "prices[1].model.tiers[0].up_to",
            "empty_tier",
        ),
        (
            "/prices/1/model/tiers/1/up_to",
            json!("500"),
            "prices[1].model.tiers[1].up_to",
            "last_tier_bounded",
        ),
        (
            "/prices/1/model/tiers/0/up_to",
            Value::Null,
            "prices[1].model.tiers[0].up_to",
            "unbounded_tier_not_last",
        ),
        (
            "/prices/1/model/tiers/1/unit_price",
            json!("-0.1"),
            "prices[1].model.tiers[1].unit_price",
            "negative_price",
        ),
        (
            "/prices/1/model/tiers/1/flat_fee",
            json!("-3"),
            "prices[1].model.tiers[1].flat_fee",
            "negative_price",
        ),
        (
            "/prices/1/model/tiers",
            json!([]),
            "prices[1].model.tiers",
            "no_tiers",
        ),
        (
            "/prices/3/model/package_size",
            json!("0"),
            "prices[3].model.package_size",
            "package_size",
        ),
        (
            "/prices/3/model/package_size",
            json!("-5"),
            "prices[3].model.package_size",
            "package_size",
        ),
        (
            "/prices/3/model/package_price",
            json!("-1"),
            "prices[3].model.package_price",
            "negative_price",
        ),
        (
            "/prices/4/model/amount",
            json!("-5"),
            "prices[4].model.amount",
            "negative_price",
        ),
        (
            "/prices/4/minimum",
            json!("-1"),
            "prices[4].minimum",
            "negative_price",
        ),
        (
            "/prices/4/minimum",
            json!("11"),
            "prices[4].maximum",
            "min_above_max",
        ),
        (
            "/prices/4/maximum",
            json!("-1"),
            "prices[4].maximum",
            "negative_price",
        ),
        (
            "/prices/2/model",
            json!({"type": "flat", "amount": "1"}),
            "prices[2].dynamic",
            "dynamic_needs_per_unit",
        ),
        (
            "/prices/2/dynamic/time_of_use/timezone",
            json!("Mars/Olympus"),
            "prices[2].dynamic.time_of_use.timezone",
            "unknown_timezone",
        ),
        (
            "/prices/2/dynamic/time_of_use/rules/0/to_hour",
            json!(25),
            "prices[2].dynamic.time_of_use.rules[0].to_hour",
            "bad_hours",
        ),
        (
            "/prices/2/dynamic/time_of_use/rules/0/to_hour",
            json!(8),
            "prices[2].dynamic.time_of_use.rules[0].to_hour",
            "bad_hours",
        ),
        (
            "/prices/2/dynamic/time_of_use/rules/0/multiplier",
            json!("-2"),
            "prices[2].dynamic.time_of_use.rules[0].multiplier",
            "negative_multiplier",
        ),
        (
            "/prices/2/dynamic/time_of_use/rules/0/days/0",
            json!("monday"),
            "prices[2].dynamic.time_of_use.rules[0].days[0]",
            "unknown_day",
        ),
        (
            "/prices/2/dynamic/demand/0/multiplier",
            json!("-1"),
            "prices[2].dynamic.demand[0].multiplier",
            "negative_multiplier",
        ),
        (
            "/prices/2/dynamic/spot/market",
            json!(""),
            "prices[2].dynamic.spot.market",
            "empty",
        ),
        (
            "/prices/2/dynamic/spot/floor",
            json!("-0.01"),
            "prices[2].dynamic.spot.floor",
            "negative_price",
        ),
        (
            "/prices/2/dynamic/spot/cap",
            json!("0.001"),
            "prices[2].dynamic.spot.cap",
            "floor_above_cap",
        ),
        (
            "/volume_discount/thresholds",
            json!([]),
            "volume_discount.thresholds",
            "no_thresholds",
        ),
        (
            "/volume_discount/thresholds/1/from",
            json!("0"),
            "volume_discount.thresholds[1].from",
            "unordered_thresholds",
        ),
        (
            "/volume_discount/thresholds/0/from",
            json!("-1"),
            "volume_discount.thresholds[0].from",
            "negative_price",
        ),
        (
            "/volume_discount/thresholds/1/percent",
            json!("101"),
            "volume_discount.thresholds[1].percent",
            "bad_percent",
        ),
        (
            "/volume_discount/meter",
            json!("gpu_hours"),
            "volume_discount.meter",
            "unknown_meter",
        ),
        (
            "/volume_discount/basis",
            json!("quantity"),
            "volume_discount.meter",
            "meter_required",
        ),
    ];
    for (pointer, value, path, code) in cases {
        let v = set(base(), pointer, value);
        let found = issues(v);
        assert!(
            found.iter().any(|(p, c)| p == path && *c == code),
            "{pointer}: expected {path} {code}, got {found:?}"
        );
    }
}

#[test]
fn overlapping_time_of_use_rules_are_reported() {
    let mut v = base();
    v["prices"][2]["dynamic"]["time_of_use"]["rules"]
        .as_array_mut()
        .unwrap()
        .push(json!({"from_hour": 17, "to_hour": 20, "multiplier": "2"}));
    assert!(issues(v).contains(&(
        "prices[2].dynamic.time_of_use.rules[1]".into(),
        "overlapping_rules"
    )));
}

#[test]
fn unordered_demand_series_is_reported() {
    let mut v = base();
    v["prices"][2]["dynamic"]["demand"]
        .as_array_mut()
        .unwrap()
        .push(json!({"from": "2025-06-01T00:00:00Z", "multiplier": "2"}));
    assert!(issues(v).contains(&("prices[2].dynamic.demand[1].from".into(), "unordered_series")));
}

#[test]
fn equal_filters_are_duplicates_and_compatible_filters_are_ambiguous() {
    let mut v = base();
    let prices = v["prices"].as_array_mut().unwrap();
    prices.push(
        json!({"id": "h100-again", "meter": "gpu_seconds", "filters": {"gpu_model": "H100"},
        "model": {"type": "per_unit", "unit_price": "0.03"}}),
    );
    prices.push(
        json!({"id": "eu", "meter": "gpu_seconds", "filters": {"region": "eu-west"},
        "model": {"type": "per_unit", "unit_price": "0.03"}}),
    );
    // Conflicts with `h100` (never both match), but not with `eu`.
    prices.push(
        json!({"id": "a100", "meter": "gpu_seconds", "filters": {"gpu_model": "A100"},
        "model": {"type": "per_unit", "unit_price": "0.01"}}),
    );
    // More specific than both: fine.
    prices.push(
        json!({"id": "h100-eu", "meter": "gpu_seconds", "filters": {"gpu_model": "H100", "region": "eu-west"},
        "model": {"type": "per_unit", "unit_price": "0.01"}}),
    );
    let found = issues(v);
    assert!(
        found.contains(&("prices[5].filters".into(), "duplicate_price")),
        "{found:?}"
    );
    assert!(
        found.contains(&("prices[6].filters".into(), "ambiguous_price")),
        "{found:?}"
    );
    let at = |p: &str| found.iter().filter(|(q, _)| q == p).count();
    assert_eq!(at("prices[7].filters"), 1, "{found:?}");
    assert_eq!(at("prices[8].filters"), 0, "{found:?}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut v = set(base(), "/currency", json!("XXX"));
    v = set(v, "/prices/0/meter", json!("nope"));
    v = set(v, "/prices/3/model/package_size", json!("0"));
    assert_eq!(issues(v).len(), 3);
}

#[test]
fn books_rated_together_are_checked_against_each_other() {
    let a = book(base());
    let mut b = book(base());
    b.version = 2;
    b.effective_from = "2026-02-01T00:00:00Z".parse().unwrap();
    let mut c = book(base());
    c.currency = "EUR".into();
    c.owner = Owner::Marketplace;
    let codes = |books: &[PriceBook]| -> Vec<(String, &'static str)> {
        validate_books(books)
            .err()
            .map(|e| e.0.into_iter().map(|i| (i.path, i.code)).collect())
            .unwrap_or_default()
    };
    assert!(codes(&[a.clone(), b.clone()]).contains(&("[1].effective_from".into(), "versions_overlap")));
    let mut a_closed = a.clone();
    a_closed.effective_to = Some(b.effective_from);
    assert_eq!(codes(&[a_closed.clone(), b.clone()]), vec![]);
    assert!(codes(&[a.clone(), a.clone()]).contains(&("[1].version".into(), "duplicate_version")));
    assert!(codes(&[a_closed, c]).contains(&("[1].currency".into(), "mixed_currencies")));
    let mut bad = a;
    bad.prices[0].meter = "x".into();
    assert!(codes(&[bad]).contains(&("[0].prices[0].meter".into(), "unknown_meter")));
}

#[test]
fn plan_rules_are_checked() {
    let plan: Plan = serde_json::from_value(json!({
        "recurring_fee": "-1",
        "active": {"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
        "allowances": [
            {"meter": "cpu_seconds", "quantity": "-1", "overage_unit_price": "-2"},
            {"meter": "cpu_seconds", "quantity": "1"}
        ],
        "reservations": [
            {"id": "r", "meter": "gpu_seconds", "units_per_period": "0", "term_start": "2026-01-01T00:00:00Z",
             "term_months": 0, "upfront": "all", "upfront_amount": "0", "monthly_fee": "-1"}
        ],
        "minimum": "10", "maximum": "5"
    }))
    .unwrap();
    let found: Vec<(String, &str)> = plan
        .validate()
        .unwrap_err()
        .0
        .into_iter()
        .map(|i| (i.path, i.code))
        .collect();
    for expected in [
        ("recurring_fee", "negative_price"),
        ("active.end", "inverted_dates"),
        ("allowances[0].quantity", "negative_quantity"),
        ("allowances[0].overage_unit_price", "negative_price"),
        ("allowances[1].meter", "duplicate_allowance"),
        ("reservations[0].units_per_period", "non_positive"),
        ("reservations[0].term_months", "non_positive"),
        ("reservations[0].upfront_amount", "negative_price"),
        ("reservations[0].upfront", "upfront_mismatch"),
        ("maximum", "min_above_max"),
    ] {
        assert!(
            found.contains(&(expected.0.to_string(), expected.1)),
            "{expected:?} in {found:?}"
        );
    }
}

#[test]
fn amounts_must_be_json_strings_not_floats() {
    let v = set(base(), "/prices/0/model/unit_price", json!(0.1));
    assert!(serde_json::from_value::<PriceBook>(v).is_err());
}
