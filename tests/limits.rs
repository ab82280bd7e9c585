//! Every input limit of the API at its boundary, through the API function's handler on the
//! local endpoint: the largest value is accepted, the next one is refused with an RFC 9457
//! problem naming the field. The limits are `api::limits`; docs/api.md lists them.

use api::limits::*;
use chrono::{DateTime, Duration, DurationRound, Utc};
use meterline_integration_tests::{body_json, operator_request, with_header, Stack};
use meterline_shared::aws::{DynamoUsageStore, SqsUsageQueue};
use serde_json::{json, Value};

type Api = api::Api<DynamoUsageStore, SqsUsageQueue>;

fn now() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::seconds(1)).unwrap()
}

/// Sends a request; returns the status and the fields the problem names.
async fn send(api: &Api, req: lambda_http::Request) -> (u16, Vec<String>, Value) {
    let resp = api.handle(req, now()).await;
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

#[tokio::test]
async fn usage_limits() {
    let stack = Stack::create("limits-usage").await;
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

#[tokio::test]
async fn key_estimate_and_budget_limits() {
    let stack = Stack::create("limits-billing").await;
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
