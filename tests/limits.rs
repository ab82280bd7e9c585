//! Every input limit of the API at its boundary, through the API function's handler on the
//! local endpoint: the largest value is accepted, the next one is refused with an RFC 9457
//! problem naming the field. The limits are `api::limits`; docs/api.md lists them.

use api::limits::*;
use chrono::{DateTime, Duration, DurationRound, Utc};
use meterline_integration_tests::{
    body_json, on_both_backends, operator_request, with_header, Backend, Stack,
};
use serde_json::{json, Value};

type Api = api::Api;

fn now() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::seconds(1)).unwrap()
}

/// Sends a request; returns the status and the fields the problem names.
async fn send(api: &Api, req: lambda_http::Request) -> (u16, Vec<String>, Value) {
    send_at(api, req, now()).await
}

/// [`send`] at `at`.
async fn send_at(api: &Api, req: lambda_http::Request, at: DateTime<Utc>) -> (u16, Vec<String>, Value) {
    let resp = api.handle(req, at).await;
    let status = resp.status().as_u16();
    let body = body_json(&resp);
    let fields = body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    (status, fields, body)
}

/// `at_max` answers `ok`; `over_max` answers `refused` naming `field`.
async fn boundary(
    api: &Api,
    what: &str,
    at_max: lambda_http::Request,
    ok: u16,
    over_max: lambda_http::Request,
    refused: u16,
    field: &str,
) {
    let (status, fields, body) = send(api, at_max).await;
    assert_eq!(status, ok, "{what} at its limit: {body}");
    assert!(!fields.iter().any(|f| f == field), "{what} at its limit: {body}");
    let (status, fields, body) = send(api, over_max).await;
    assert_eq!(status, refused, "{what} over its limit: {body}");
    assert!(
        fields.iter().any(|f| f == field),
        "{what} over its limit names `{field}`: {body}"
    );
    assert!(body["type"]
        .as_str()
        .unwrap()
        .starts_with("https://meterline.dev/problems/"));
}

fn post(path: &str, body: &str) -> lambda_http::Request {
    operator_request("POST", path, &[], Some(body))
}

fn get(path: &str, query: &[(&str, &str)]) -> lambda_http::Request {
    operator_request("GET", path, query, None)
}

fn event(i: usize) -> Value {
    json!({"id": format!("e{i}"), "account_id": "acct_l", "provider_id": "prov_1", "job_id": "job_1",
           "meter": "gpu_seconds", "quantity": "1", "timestamp": now().to_rfc3339(),
           "dimensions": {"gpu_model": "H100"}})
}

fn with(mut v: Value, field: &str, value: Value) -> Value {
    v[field] = value;
    v
}

/// A JSON body padded with spaces to exactly `len` bytes.
fn padded(v: &Value, len: usize) -> String {
    let text = v.to_string();
    assert!(text.len() <= len);
    format!("{text}{}", " ".repeat(len - text.len()))
}

fn dims(n: usize) -> Value {
    Value::Object((0..n).map(|i| (format!("d{i}"), json!("v"))).collect())
}

async fn usage_limits(backend: Backend) {
    let stack = Stack::on(backend, "limits-usage").await;
    let api = stack.api();
    let one = |e: Value| post("/v1/usage", &e.to_string());

    let mut big = event(0);
    big["dimensions"]["note"] = json!("x".repeat(200));
    let body = json!([big]);
    boundary(
        &api,
        "body bytes",
        post("/v1/usage", &padded(&body, MAX_BODY_BYTES)),
        202,
        post("/v1/usage", &padded(&body, MAX_BODY_BYTES + 1)),
        413,
        "body",
    )
    .await;
    let batch = |n: usize| Value::Array((0..n).map(event).collect());
    boundary(
        &api,
        "events per body",
        post("/v1/usage", &batch(MAX_EVENTS_PER_BATCH).to_string()),
        202,
        post("/v1/usage", &batch(MAX_EVENTS_PER_BATCH + 1).to_string()),
        400,
        "body",
    )
    .await;
    let cases: Vec<(&str, Value, Value, &str)> = vec![
        (
            "event id",
            with(event(1), "id", json!("i".repeat(MAX_EVENT_ID_LEN))),
            with(event(1), "id", json!("i".repeat(MAX_EVENT_ID_LEN + 1))),
            "[0].id",
        ),
        (
            "account id",
            with(event(1), "account_id", json!("a".repeat(MAX_REF_ID_LEN))),
            with(event(1), "account_id", json!("a".repeat(MAX_REF_ID_LEN + 1))),
            "[0].account_id",
        ),
        (
            "quantity scale",
            with(event(2), "quantity", json!("0.000000000001")),
            with(event(2), "quantity", json!("0.0000000000001")),
            "[0].quantity",
        ),
        (
            "quantity size",
            with(event(3), "quantity", json!("1000000000000000")),
            with(event(3), "quantity", json!("1000000000000000.000000000001")),
            "[0].quantity",
        ),
        (
            "dimensions",
            with(event(4), "dimensions", dims(MAX_DIMENSIONS)),
            with(event(4), "dimensions", dims(MAX_DIMENSIONS + 1)),
            "[0].dimensions",
        ),
        (
            "dimension value",
            with(
                event(5),
                "dimensions",
                json!({"gpu_model": "g".repeat(MAX_DIMENSION_VALUE_LEN)}),
            ),
            with(
                event(5),
                "dimensions",
                json!({"gpu_model": "g".repeat(MAX_DIMENSION_VALUE_LEN + 1)}),
            ),
            "[0].dimensions.gpu_model",
        ),
    ];
    for (what, ok, bad, field) in cases {
        boundary(&api, what, one(ok), 202, one(bad), 422, field).await;
    }

    let usage = "/v1/accounts/acct_l/usage";
    let names = |n: usize| (0..n).map(|i| format!("d{i}")).collect::<Vec<_>>().join(",");
    boundary(
        &api,
        "group_by names",
        get(usage, &[("group_by", &names(MAX_DIMENSIONS))]),
        200,
        get(usage, &[("group_by", &names(MAX_DIMENSIONS + 1))]),
        400,
        "group_by",
    )
    .await;
    for (path, max) in [
        (usage, MAX_USAGE_PAGE),
        ("/v1/accounts/acct_l/usage/rejected", MAX_USAGE_PAGE),
        ("/v1/usage/rejected", MAX_USAGE_PAGE),
        ("/v1/api-keys", MAX_KEY_PAGE),
        ("/v1/rates/EUR/USD/history", MAX_HISTORY_PAGE),
    ] {
        boundary(
            &api,
            &format!("limit of {path}"),
            get(path, &[("limit", &max.to_string())]),
            200,
            get(path, &[("limit", &(max + 1).to_string())]),
            400,
            "limit",
        )
        .await;
        let (status, fields, _) = send(&api, get(path, &[("limit", "0")])).await;
        assert_eq!((status, fields), (400, vec!["limit".to_string()]), "{path}");
    }
    // A cursor of the longest length is read (it decodes, to a position past everything); one
    // character more is refused before anything is read.
    boundary(
        &api,
        "cursor",
        get("/v1/usage/rejected", &[("cursor", &"A".repeat(MAX_CURSOR_CHARS))]),
        200,
        get(
            "/v1/usage/rejected",
            &[("cursor", &"A".repeat(MAX_CURSOR_CHARS + 1))],
        ),
        400,
        "cursor",
    )
    .await;
    let (status, fields, _) = send(&api, get("/v1/usage/rejected", &[("cursor", "")])).await;
    assert_eq!((status, fields), (400, vec!["cursor".to_string()]));

    let replay = "/v1/usage/rejected/replay";
    let fps = |n: usize| json!({"fingerprints": (0..n).map(|i| format!("{i:016x}")).collect::<Vec<_>>()});
    boundary(
        &api,
        "replay fingerprints",
        post(replay, &fps(MAX_REPLAY_EVENTS).to_string()),
        200,
        post(replay, &fps(MAX_REPLAY_EVENTS + 1).to_string()),
        400,
        "fingerprints",
    )
    .await;
    boundary(
        &api,
        "replay limit",
        post(replay, &json!({"limit": MAX_REPLAY_EVENTS}).to_string()),
        200,
        post(replay, &json!({"limit": MAX_REPLAY_EVENTS + 1}).to_string()),
        400,
        "limit",
    )
    .await;
    boundary(
        &api,
        "replay code",
        post(replay, &json!({"code": "c".repeat(64)}).to_string()),
        200,
        post(replay, &json!({"code": "c".repeat(65)}).to_string()),
        400,
        "code",
    )
    .await;
    boundary(
        &api,
        "Idempotency-Key",
        with_header(
            post(replay, "{}"),
            "idempotency-key",
            &"k".repeat(MAX_IDEMPOTENCY_KEY_LEN),
        ),
        200,
        with_header(
            post(replay, "{}"),
            "idempotency-key",
            &"k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1),
        ),
        400,
        "Idempotency-Key",
    )
    .await;
}

async fn key_estimate_and_budget_limits(backend: Backend) {
    let stack = Stack::on(backend, "limits-billing").await;
    let api = stack.api();
    let key = |name: &str| json!({"role": "operator", "name": name});
    boundary(
        &api,
        "key name",
        post("/v1/api-keys", &key(&"n".repeat(MAX_NAME_CHARS)).to_string()),
        201,
        post("/v1/api-keys", &key(&"n".repeat(MAX_NAME_CHARS + 1)).to_string()),
        400,
        "name",
    )
    .await;
    boundary(
        &api,
        "key body bytes",
        post("/v1/api-keys", &padded(&key("k"), MAX_KEY_BODY_BYTES)),
        201,
        post("/v1/api-keys", &padded(&key("k"), MAX_KEY_BODY_BYTES + 1)),
        413,
        "body",
    )
    .await;

    // An unknown account: a valid request is a 404, an invalid one a 400 first.
    let forecast = "/v1/accounts/acct_l/forecast";
    boundary(
        &api,
        "forecast days",
        get(forecast, &[("days", &MAX_FORECAST_DAYS.to_string())]),
        404,
        get(forecast, &[("days", &(MAX_FORECAST_DAYS + 1).to_string())]),
        400,
        "days",
    )
    .await;

    let job =
        json!({"provider_id": "prov_1", "start": now().to_rfc3339(), "duration_seconds": 3600, "gpus": 1});
    let quote = |field: &str, value: Value| {
        let mut j = job.clone();
        j[field] = value;
        post(
            "/v1/estimates/job",
            &json!({"account_id": "acct_l", "job": j}).to_string(),
        )
    };
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "duration_seconds",
            json!(MAX_JOB_SECONDS),
            json!(MAX_JOB_SECONDS + 1),
        ),
        ("gpus", json!(MAX_JOB_GPUS), json!(MAX_JOB_GPUS + 1)),
        ("vcpus", json!("0.000000000001"), json!("0.0000000000001")),
        ("memory_gib", json!("1000000000000000"), json!("1000000000000001")),
        (
            "gpu_model",
            json!("g".repeat(MAX_REF_ID_LEN)),
            json!("g".repeat(MAX_REF_ID_LEN + 1)),
        ),
        ("dimensions", dims(MAX_DIMENSIONS), dims(MAX_DIMENSIONS + 1)),
    ];
    for (field, ok, bad) in cases {
        boundary(
            &api,
            field,
            quote(field, ok),
            404,
            quote(field, bad),
            400,
            &format!("job.{field}"),
        )
        .await;
    }
    boundary(
        &api,
        "job dimension value",
        quote(
            "dimensions",
            json!({"gpu_model": "g".repeat(MAX_DIMENSION_VALUE_LEN)}),
        ),
        404,
        quote(
            "dimensions",
            json!({"gpu_model": "g".repeat(MAX_DIMENSION_VALUE_LEN + 1)}),
        ),
        400,
        "job.dimensions.gpu_model",
    )
    .await;

    let budgets = "/v1/accounts/acct_l/budgets";
    let budget = json!({"budget_id": "b1", "amount": "100", "currency": "USD", "thresholds": [50, 100]});
    let put = |field: &str, value: Value| post(budgets, &with(budget.clone(), field, value).to_string());
    let pcts = |n: u64| json!((1..=n).collect::<Vec<_>>());
    let cases: Vec<(&str, Value, Value)> = vec![
        ("amount", json!("1000000000000000"), json!("1000000000000000.01")),
        ("amount", json!("0.01"), json!("0.001")),
        (
            "thresholds",
            pcts(MAX_THRESHOLDS as u64),
            pcts(MAX_THRESHOLDS as u64 + 1),
        ),
        (
            "thresholds",
            json!([MAX_THRESHOLD_PERCENT]),
            json!([MAX_THRESHOLD_PERCENT + 1]),
        ),
        (
            "budget_id",
            json!("b".repeat(MAX_REF_ID_LEN)),
            json!("b".repeat(MAX_REF_ID_LEN + 1)),
        ),
    ];
    for (field, ok, bad) in cases {
        boundary(&api, field, put(field, ok), 404, put(field, bad), 400, field).await;
    }
    let one = |id: &str| format!("{budgets}/{id}");
    boundary(
        &api,
        "budget id in the path",
        get(&one(&"b".repeat(MAX_REF_ID_LEN)), &[]),
        404,
        get(&one(&"b".repeat(MAX_REF_ID_LEN + 1)), &[]),
        400,
        "budget_id",
    )
    .await;
}

async fn account_catalog_and_invoice_limits(backend: Backend) {
    let stack = Stack::on(backend, "limits-catalog").await;
    let api = stack.api();
    let mut n = 0;
    // Each accepted account is a new one.
    let mut account = |extra: Value| {
        n += 1;
        let mut a = json!({"account_id": format!("acct_{n}"), "currency": "USD"});
        for (k, v) in extra.as_object().unwrap() {
            a[k] = v.clone();
        }
        post("/v1/accounts", &a.to_string())
    };
    let tax = |field: &str, value: Value| json!({"tax": {field: value}});
    let region = |r: String| json!({"tax": {"jurisdiction": {"country": "US", "region": r}}});
    let terms = |days: u16| json!({"policy": {"terms": {"type": "net", "days": days}, "grace_days": 0}});
    let grace = |days: u16| json!({"policy": {"terms": {"type": "due_on_receipt"}, "grace_days": days}});
    let late = |pct: &str| {
        json!({"policy": {"terms": {"type": "due_on_receipt"}, "grace_days": 0,
               "late_fee": {"type": "percentage", "percent": pct}}})
    };
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "tax.exemption",
            tax("exemption", json!("x".repeat(MAX_TEXT_CHARS))),
            tax("exemption", json!("x".repeat(MAX_TEXT_CHARS + 1))),
        ),
        (
            "tax.reverse_charge_tax_id",
            tax("reverse_charge_tax_id", json!("x".repeat(MAX_TEXT_CHARS))),
            tax("reverse_charge_tax_id", json!("x".repeat(MAX_TEXT_CHARS + 1))),
        ),
        (
            "tax.jurisdiction.region",
            region("R".repeat(MAX_REGION_CHARS)),
            region("R".repeat(MAX_REGION_CHARS + 1)),
        ),
        (
            "policy.terms.days",
            terms(MAX_POLICY_DAYS),
            terms(MAX_POLICY_DAYS + 1),
        ),
        (
            "policy.grace_days",
            grace(MAX_POLICY_DAYS),
            grace(MAX_POLICY_DAYS + 1),
        ),
        ("policy.late_fee.percent", late("1.2345"), late("1.23456")),
        (
            "account_id",
            json!({"account_id": "a".repeat(MAX_REF_ID_LEN)}),
            json!({"account_id": "a".repeat(MAX_REF_ID_LEN + 1)}),
        ),
    ];
    for (field, ok, bad) in cases {
        let (ok, bad) = (account(ok), account(bad));
        boundary(&api, field, ok, 201, bad, 400, field).await;
    }
    let page = |path: &str, max: usize| {
        (
            get(path, &[("limit", &max.to_string())]),
            get(path, &[("limit", &(max + 1).to_string())]),
        )
    };
    for (path, max) in [
        ("/v1/accounts", MAX_ACCOUNT_PAGE),
        ("/v1/accounts/acct_1/subscriptions", MAX_ACCOUNT_PAGE),
        ("/v1/price-books", MAX_ACCOUNT_PAGE),
        ("/v1/plans", MAX_ACCOUNT_PAGE),
        ("/v1/invoices", MAX_INVOICE_PAGE),
        ("/v1/accounts/acct_1/invoices", MAX_INVOICE_PAGE),
        ("/v1/accounts/acct_1/credit-notes", MAX_INVOICE_PAGE),
    ] {
        let (ok, bad) = page(path, max);
        boundary(&api, path, ok, 200, bad, 400, "limit").await;
    }

    // Providers: the name and the fee's decimal places.
    let provider = |id: &str, name: String, fee: &str| {
        post(
            "/v1/providers",
            &json!({"provider_id": id, "name": name, "fee_percent": fee}).to_string(),
        )
    };
    boundary(
        &api,
        "provider name",
        provider("prov_1", "p".repeat(MAX_TEXT_CHARS), "10"),
        201,
        provider("prov_2", "p".repeat(MAX_TEXT_CHARS + 1), "10"),
        400,
        "name",
    )
    .await;
    boundary(
        &api,
        "fee_percent places",
        provider("prov_3", "P".into(), "12.3456"),
        201,
        provider("prov_4", "P".into(), "12.34567"),
        400,
        "fee_percent",
    )
    .await;

    // Price books: the number of prices and the decimal places of amounts.
    let book = |id: &str, owner: &str, prices: usize, unit_price: &str| {
        let prices: Vec<Value> = (0..prices)
            .map(|i| {
                json!({"id": format!("p{i}"), "meter": "gpu_seconds",
                       "model": {"type": "per_unit", "unit_price": unit_price},
                       "filters": {"gpu_model": format!("m{i}")}})
            })
            .collect();
        post(
            "/v1/price-books",
            &json!({"id": id, "owner": {"kind": "provider", "id": owner}, "currency": "USD",
                    "version": 1, "effective_from": (now() + Duration::days(1)).to_rfc3339(), "prices": prices})
            .to_string(),
        )
    };
    boundary(
        &api,
        "prices",
        book("book-many", "prov_1", MAX_PRICES, "1"),
        201,
        book("book-more", "prov_1", MAX_PRICES + 1, "1"),
        400,
        "prices",
    )
    .await;
    let places = |n: u32| format!("0.{}1", "0".repeat(n as usize - 1));
    boundary(
        &api,
        "price places",
        book("book-fine", "prov_3", 1, &places(MAX_CATALOG_SCALE)),
        201,
        book("book-finer", "prov_3", 1, &places(MAX_CATALOG_SCALE + 1)),
        400,
        "prices[0].model.unit_price",
    )
    .await;

    // Plans: the name, allowances, reservations and decimal places.
    let plan = |id: &str, plan: Value| post("/v1/plans", &json!({"plan_id": id, "plan": plan}).to_string());
    // One allowance per meter: the count is reached with reservations.
    let allowances = |n: usize| {
        let r = |i: usize| {
            json!({"id": format!("r{i}"), "meter": "cpu_seconds", "units_per_period": "1",
                   "term_start": "2026-01-01T00:00:00Z", "term_months": 12, "upfront": "none",
                   "monthly_fee": "1"})
        };
        json!({"name": "p", "recurring_fee": "1", "reservations": (0..n).map(r).collect::<Vec<_>>()})
    };
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "plan.name",
            json!({"name": "n".repeat(MAX_TEXT_CHARS), "recurring_fee": "1"}),
            json!({"name": "n".repeat(MAX_TEXT_CHARS + 1), "recurring_fee": "1"}),
        ),
        ("plan", allowances(MAX_PLAN_ITEMS), allowances(MAX_PLAN_ITEMS + 1)),
        (
            "plan.recurring_fee",
            json!({"name": "p", "recurring_fee": places(MAX_CATALOG_SCALE)}),
            json!({"name": "p", "recurring_fee": places(MAX_CATALOG_SCALE + 1)}),
        ),
    ];
    for (i, (field, ok, bad)) in cases.into_iter().enumerate() {
        let (ok, bad) = (plan(&format!("plan_{i}"), ok), plan(&format!("plan_x{i}"), bad));
        boundary(&api, field, ok, 201, bad, 400, field).await;
    }

    // Subscriptions start at most MAX_START_AHEAD ahead (and MAX_START_BACK back).
    let t0 = now();
    let sub = |id: &str, start: DateTime<Utc>| {
        post(
            "/v1/accounts/acct_1/subscriptions",
            &json!({"subscription_id": id, "plan_id": "plan_0", "cadence": "monthly",
                    "start": start.to_rfc3339()})
            .to_string(),
        )
    };
    for (what, ok, bad) in [
        (
            "start ahead",
            t0 + MAX_START_AHEAD,
            t0 + MAX_START_AHEAD + Duration::seconds(1),
        ),
        (
            "start back",
            t0 - MAX_START_BACK,
            t0 - MAX_START_BACK - Duration::seconds(1),
        ),
    ] {
        let id = what.replace(' ', "_");
        let (status, _, body) = send_at(&api, sub(&id, ok), t0).await;
        assert_eq!(status, 201, "{what} at its limit: {body}");
        let (status, fields, body) = send_at(&api, sub(&format!("{id}_x"), bad), t0).await;
        assert_eq!(
            (status, fields),
            (400, vec!["start".to_string()]),
            "{what}: {body}"
        );
    }

    // Invoice actions on an unknown invoice: a valid body is a 404, an invalid one a 400 first.
    let credit = |body: Value| {
        post(
            "/v1/accounts/acct_1/invoices/inv_none/credit-notes",
            &body.to_string(),
        )
    };
    boundary(
        &api,
        "memo",
        credit(json!({"amount": "1", "memo": "m".repeat(MAX_MEMO_CHARS)})),
        404,
        credit(json!({"amount": "1", "memo": "m".repeat(MAX_MEMO_CHARS + 1)})),
        400,
        "memo",
    )
    .await;
    let amount = |len: usize| json!({"amount": format!("1.{}", "0".repeat(len - 2))});
    boundary(
        &api,
        "amount chars",
        credit(amount(MAX_DECIMAL_CHARS)),
        404,
        credit(amount(MAX_DECIMAL_CHARS + 1)),
        400,
        "amount",
    )
    .await;
    let below = (MAX_TOTAL_FILTER - rust_decimal::Decimal::new(1, 2)).to_string();
    for name in ["min_total", "max_total"] {
        boundary(
            &api,
            name,
            get("/v1/accounts/acct_1/invoices", &[(name, &below)]),
            200,
            get(
                "/v1/accounts/acct_1/invoices",
                &[(name, &MAX_TOTAL_FILTER.to_string())],
            ),
            400,
            name,
        )
        .await;
    }

    // Ranges: the tax report and the operator's invoice list span at most MAX_REPORT_DAYS.
    let from = t0 - Duration::days(400);
    let (at, over) = (
        from + Duration::days(MAX_REPORT_DAYS),
        from + Duration::days(MAX_REPORT_DAYS) + Duration::seconds(1),
    );
    let range = |path: &str, a: &str, b: &str, to: DateTime<Utc>| {
        get(path, &[(a, &from.to_rfc3339()), (b, &to.to_rfc3339())])
    };
    boundary(
        &api,
        "tax report range",
        range("/v1/reports/tax", "from", "to", at),
        200,
        range("/v1/reports/tax", "from", "to", over),
        400,
        "to",
    )
    .await;
    boundary(
        &api,
        "issued range",
        range("/v1/invoices", "issued_from", "issued_to", at),
        200,
        range("/v1/invoices", "issued_from", "issued_to", over),
        400,
        "issued_to",
    )
    .await;
}

on_both_backends!(
    usage_limits,
    key_estimate_and_budget_limits,
    account_catalog_and_invoice_limits,
);
