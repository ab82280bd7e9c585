//! The `meterline` binary reads no input silently wrongly: every file it reads refuses unknown
//! fields and names the file, line, column and field; negative usage is an error; unpriced
//! usage fails `rate` unless `--allow-unpriced`; amounts print with the currency's minor units;
//! errors never show internal structures. Each test runs the real binary.

// A test file: its helpers fail the test they run in by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const BOOK: &str = r#"{
  "id": "b", "owner": {"kind": "provider", "id": "p"}, "currency": "EUR", "version": 1,
  "effective_from": "2026-01-01T00:00:00Z",
  "prices": [
    {"id": "cpu", "meter": "cpu_seconds", "model": {"type": "per_unit", "unit_price": "0.001"}},
    {"id": "gpu", "meter": "gpu_seconds", "model": {"type": "per_unit", "unit_price": "0.002"}},
    {"id": "gpu-h100", "meter": "gpu_seconds", "filters": {"gpu_model": "H100"},
     "model": {"type": "per_unit", "unit_price": "0.005"}},
    {"id": "spot", "meter": "memory_gib_seconds",
     "model": {"type": "per_unit", "unit_price": "0.001"},
     "dynamic": {"spot": {"market": "mem", "floor": "0.0005", "cap": "0.002"}}}
  ]
}"#;

const ROWS: &str = r#"[
  {"provider_id": "p", "meter": "cpu_seconds", "window_start": "2026-01-05T00:00:00Z", "quantity": "1000"},
  {"provider_id": "p", "meter": "gpu_seconds", "dimensions": {"gpu_model": "H100"},
   "window_start": "2026-01-05T00:00:00Z", "quantity": "100"}
]"#;

const SUBSCRIPTION: &str = r#"{
  "account_id": "acct-1",
  "plan": {"name": "Team", "recurring_fee": "10.00"},
  "tax": {"jurisdiction": {"country": "DE"}}
}"#;

const TAXES: &str = r#"{"rates": [
  {"country": "DE", "name": "USt", "rate": "0.19", "effective_from": "2021-01-01T00:00:00Z"}
]}"#;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A fresh directory for one test's files.
fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meterline-strict-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn meterline(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_meterline"))
        .args(args)
        .output()
        .expect("the binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `meterline rate` over the given files (any of them may be replaced), in `dir`.
fn rate(d: &Path, files: &[(&str, &str)], extra: &[&str]) -> Run {
    let mut docs = vec![
        ("book.json", BOOK),
        ("usage.json", ROWS),
        ("subscription.json", SUBSCRIPTION),
        ("taxes.json", TAXES),
    ];
    for (name, text) in files {
        match docs.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = text,
            None => docs.push((name, text)),
        }
    }
    let path = |name: &str| {
        let text = docs.iter().find(|(n, _)| *n == name).unwrap().1;
        write(d, name, text)
    };
    let (book, usage, sub, taxes) = (
        path("book.json"),
        path("usage.json"),
        path("subscription.json"),
        path("taxes.json"),
    );
    let mut args = vec![
        "rate",
        "--price-book",
        &book,
        "--usage",
        &usage,
        "--subscription",
        &sub,
        "--taxes",
        &taxes,
    ];
    let market;
    if docs.iter().any(|(n, _)| *n == "market.json") {
        market = path("market.json");
        args.extend(["--market", market.as_str()]);
    }
    args.extend(extra);
    meterline(&args)
}

fn assert_no_internals(r: &Run) {
    for s in [&r.stdout, &r.stderr] {
        for internal in [
            "Period {",
            "Some(",
            "None",
            "{}",
            "Unpriced",
            "Standard",
            "NoPriceBook",
        ] {
            assert!(!s.contains(internal), "`{internal}` printed:\n{s}");
        }
    }
}

#[test]
fn the_good_files_rate_and_exit_zero() {
    let d = dir("good");
    let r = rate(&d, &[], &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // 1000 × 0.001 + 100 × 0.005 + 10.00 fee = 11.50 net, 19 % tax 2.19 (0.19 + 0.10 + 1.90).
    assert!(r.stdout.contains("subtotal 11.50 EUR"), "{}", r.stdout);
    assert!(r.stdout.contains("total 13.69 EUR"), "{}", r.stdout);
    assert_no_internals(&r);
}

#[test]
fn a_misspelled_tax_section_is_refused_with_its_file_line_column_and_path() {
    let d = dir("taxx");
    let sub = SUBSCRIPTION.replace("\"tax\":", "\"taxx\":");
    let r = rate(&d, &[("subscription.json", &sub)], &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(
        r.stderr.contains("subscription.json:4:"),
        "file and line: {}",
        r.stderr
    );
    assert!(r.stderr.contains("taxx: unknown field `taxx`"), "{}", r.stderr);
}

#[test]
fn a_misspelled_field_inside_the_tax_section_is_refused() {
    let d = dir("region");
    let sub = SUBSCRIPTION.replace(r#""country": "DE""#, r#""country": "DE", "regoin": "BY""#);
    let r = rate(&d, &[("subscription.json", &sub)], &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("tax.jurisdiction.regoin: unknown field `regoin`"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_misspelled_dimensions_in_a_usage_row_is_refused() {
    let d = dir("dimension");
    let rows = ROWS.replace("\"dimensions\"", "\"dimension\"");
    let r = rate(&d, &[("usage.json", &rows)], &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("usage.json:3:"), "{}", r.stderr);
    assert!(
        r.stderr.contains("[1].dimension: unknown field `dimension`"),
        "{}",
        r.stderr
    );
}

#[test]
fn usage_rows_one_per_line_name_the_line_of_the_bad_row() {
    let d = dir("ndjson");
    let rows = "{\"provider_id\": \"p\", \"meter\": \"cpu_seconds\", \"window_start\": \"2026-01-05T00:00:00Z\", \"quantity\": \"1\"}\n\
                \n\
                {\"provider_id\": \"p\", \"meter\": \"cpu_seconds\", \"window_start\": \"2026-01-05T00:00:00Z\", \"quantiy\": \"1\"}\n";
    let r = rate(&d, &[("usage.json", rows)], &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("usage.json:3:"), "{}", r.stderr);
    assert!(
        r.stderr.contains("quantiy: unknown field `quantiy`"),
        "{}",
        r.stderr
    );
}

#[test]
fn misspelled_fields_in_tax_tables_market_factors_and_price_books_are_refused() {
    let d = dir("configs");
    let taxes = TAXES.replace("\"name\"", "\"regoin\": \"x\", \"name\"");
    let r = rate(&d, &[("taxes.json", &taxes)], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("taxes.json:2:") && r.stderr.contains("rates[0].regoin: unknown field"),
        "{}",
        r.stderr
    );

    let market = r#"{"market": {"mem": [{"at": "2026-01-01T00:00:00Z", "factor": "1", "source": "x"}]}}"#;
    let r = rate(&d, &[("market.json", market)], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("market.json:1:"), "{}", r.stderr);
    assert!(
        r.stderr.contains("market: unknown field `market`"),
        "{}",
        r.stderr
    );

    let book = BOOK.replace("\"unit_price\": \"0.002\"", "\"unit_prize\": \"0.002\"");
    let r = rate(&d, &[("book.json", &book)], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("book.json:6:"), "{}", r.stderr);
    assert!(r.stderr.contains("prices[1].model"), "{}", r.stderr);
    assert!(r.stderr.contains("unit_prize"), "{}", r.stderr);

    let book_file = write(&d, "validate.json", &book);
    let r = meterline(&["price-book", "validate", &book_file]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("validate.json:6:"), "{}", r.stderr);
}

#[test]
fn a_json_number_for_a_decimal_is_refused_with_a_reason() {
    let d = dir("number");
    let rows = ROWS.replace("\"quantity\": \"1000\"", "\"quantity\": 1000.5");
    let r = rate(&d, &[("usage.json", &rows)], &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("[0].quantity"), "{}", r.stderr);
    assert!(r.stderr.contains("\"1000.5\""), "the quoted form: {}", r.stderr);
    assert!(r.stderr.contains("exact"), "why: {}", r.stderr);
}

#[test]
fn a_time_that_is_not_rfc_3339_is_refused_with_its_value() {
    let d = dir("time");
    let rows = ROWS.replacen("2026-01-05T00:00:00Z", "2026-01-05 00:00", 1);
    let r = rate(&d, &[("usage.json", &rows)], &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("[0].window_start"), "{}", r.stderr);
    assert!(r.stderr.contains("`2026-01-05 00:00`"), "{}", r.stderr);
    assert!(r.stderr.contains("RFC 3339"), "{}", r.stderr);
}

#[test]
fn negative_usage_is_an_error_not_a_row_that_disappears() {
    let d = dir("negative");
    let rows = ROWS.replace("\"quantity\": \"100\"", "\"quantity\": \"-100\"");
    let r = rate(&d, &[("usage.json", &rows)], &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("usage.json:4:"), "{}", r.stderr);
    assert!(r.stderr.contains("[1].quantity"), "{}", r.stderr);
    assert!(r.stderr.contains("must be zero or more"), "{}", r.stderr);
}

#[test]
fn unpriced_usage_fails_rate_unless_allowed() {
    let d = dir("unpriced");
    // A spot price with no market factor, and a meter no price covers.
    let rows = r#"[
      {"provider_id": "p", "meter": "cpu_seconds", "window_start": "2026-01-05T00:00:00Z", "quantity": "1000"},
      {"provider_id": "p", "meter": "memory_gib_seconds", "window_start": "2026-01-05T00:00:00Z", "quantity": "10"},
      {"provider_id": "p", "meter": "wall_seconds", "dimensions": {"region": "eu"}, "window_start": "2026-01-05T00:00:00Z", "quantity": "60"}
    ]"#;
    let r = rate(&d, &[("usage.json", rows)], &[]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("2 unpriced"), "{}", r.stderr);
    assert!(r.stderr.contains("--allow-unpriced"), "{}", r.stderr);
    assert!(r.stderr.contains("no market factor"), "{}", r.stderr);
    assert!(r.stderr.contains("no matching price"), "{}", r.stderr);
    assert_no_internals(&r);

    let r = rate(&d, &[("usage.json", rows)], &["--allow-unpriced"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("unpriced: p wall_seconds region=eu"),
        "{}",
        r.stdout
    );
    assert_no_internals(&r);

    let r = rate(&d, &[("usage.json", rows)], &["--allow-unpriced", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["unpriced"].as_array().unwrap().len(), 2);
}

#[test]
fn amounts_print_with_the_currencys_minor_units() {
    let d = dir("minor");
    // Every row unpriced: the totals are zero, and still `0.00`.
    let rows = r#"[{"provider_id": "q", "meter": "cpu_seconds", "window_start": "2026-01-05T00:00:00Z", "quantity": "5"}]"#;
    let sub = r#"{"account_id": "acct-1"}"#;
    let r = rate(
        &d,
        &[("usage.json", rows), ("subscription.json", sub)],
        &["--allow-unpriced"],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("subtotal 0.00 EUR"), "{}", r.stdout);
    assert!(r.stdout.contains("tax 0.00  total 0.00 EUR"), "{}", r.stdout);
    let r = rate(
        &d,
        &[("usage.json", rows), ("subscription.json", sub)],
        &["--allow-unpriced", "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    for field in ["subtotal", "net_total", "tax_total", "total"] {
        assert_eq!(v[field], "0.00", "{field}: {}", r.stdout);
    }
}

#[test]
fn errors_never_print_internal_structures() {
    let d = dir("internals");
    let r = rate(
        &d,
        &[],
        &["--from", "2026-02-01T00:00:00Z", "--to", "2026-01-01T00:00:00Z"],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("2026-02-01"), "{}", r.stderr);
    assert_no_internals(&r);

    let sub = r#"{"account_id": "a", "plan": {"reservations": [{"id": "r", "meter": "cpu_seconds",
      "units_per_period": "10", "term_start": "2026-01-01T00:00:00Z", "term_months": 12,
      "upfront": "all", "upfront_amount": "0"}]}}"#;
    let r = rate(&d, &[("subscription.json", sub)], &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("reservations[0].upfront"), "{}", r.stderr);
    assert!(!r.stderr.contains("All upfront"), "a Debug name: {}", r.stderr);
    assert_no_internals(&r);
}

#[test]
fn a_missing_file_is_named() {
    let d = dir("missing");
    let book = write(&d, "book.json", BOOK);
    let r = meterline(&[
        "rate",
        "--price-book",
        &book,
        "--usage",
        "/nonexistent/usage.json",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("/nonexistent/usage.json"), "{}", r.stderr);
}
