//! Accounts, providers, price books, plans and subscriptions through the API handler against
//! the local endpoint (moto_server) and on the in-memory adapters (each test runs on both): each route's happy path, problems naming the field, and
//! tenant isolation (another tenant's ids are 404, another role's routes 403). A plan change
//! previewed, applied and closed: the invoice carries the previewed fees.

use chrono::{DateTime, Utc};
use meterline_integration_tests::{
    api_request, body_json, on_both_backends, operator_request, with_key, Backend, Stack,
};
use meterline_shared::adapters::memory::InMemoryRateStore;
use meterline_shared::adapters::memory::MemoryEventPublisher;
use meterline_shared::domain::billing::sample;
use meterline_shared::domain::pricing::LineKind;
use meterline_shared::ports::billing::BillingStore;
use meterline_shared::ports::billing::CloseRequest;
use meterline_shared::ports::directory::DirectoryStore;
use meterline_shared::services::closing::{CloseSettings, Closer};
use rust_decimal::Decimal;
use serde_json::{json, Value};

type Api = api::Api;

#[path = "support/schema.rs"]
mod schema;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Calls the API as the operator at `now`; returns status and body.
async fn op(
    api: &Api,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Option<Value>,
    now: DateTime<Utc>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    let resp = api
        .handle(operator_request(method, path, query, body.as_deref()), now)
        .await;
    (resp.status().as_u16(), body_json(&resp))
}

/// Calls the API with `key`.
async fn as_key(
    api: &Api,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    now: DateTime<Utc>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    let resp = api
        .handle(
            with_key(api_request(method, path, &[], body.as_deref()), key),
            now,
        )
        .await;
    (resp.status().as_u16(), body_json(&resp))
}

async fn new_key(api: &Api, body: Value) -> String {
    let (status, b) = op(api, "POST", "/v1/api-keys", &[], Some(body), Utc::now()).await;
    assert_eq!(status, 201, "{b}");
    b["key"].as_str().unwrap().to_string()
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn accounts_are_created_listed_read_and_updated_by_their_owners_only(backend: Backend) {
    let stack = Stack::on(backend, "accounts").await;
    let api = stack.api();
    let now = Utc::now();
    for id in ["acct_a", "acct_b", "acct_c"] {
        let (s, b) = op(
            &api,
            "POST",
            "/v1/accounts",
            &[],
            Some(json!({"account_id": id, "currency": "EUR",
            "timezone": "Europe/Berlin", "auto_pay": true,
            "policy": {"terms": {"type": "net", "days": 14}, "grace_days": 3},
            "tax": {"jurisdiction": {"country": "DE"}}})),
            now,
        )
        .await;
        assert_eq!(s, 201, "{b}");
        assert_eq!(b["currency"], "EUR");
        assert_eq!(b["credit_balance"], "0");
    }
    let (s, b) = op(
        &api,
        "POST",
        "/v1/accounts",
        &[],
        Some(json!({"account_id": "acct_a", "currency": "EUR"})),
        now,
    )
    .await;
    assert_eq!((s, b["status"].as_u64()), (409, Some(409)));
    let (s, b) = op(
        &api,
        "POST",
        "/v1/accounts",
        &[],
        Some(json!({"account_id": "acct_d", "currency": "EURO",
        "timezone": "Nowhere/City", "policy": {"terms": {"type": "net", "days": 400}, "grace_days": 0}})),
        now,
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(fields(&b), ["currency", "timezone", "policy.terms.days"]);

    // Pages of two, in id order, with an opaque cursor.
    let (s, page1) = op(&api, "GET", "/v1/accounts", &[("limit", "2")], None, now).await;
    assert_eq!(s, 200);
    let ids = |p: &Value| {
        p["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["account_id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&page1), ["acct_a", "acct_b"]);
    let cursor = page1["next_cursor"].as_str().unwrap().to_string();
    let (_, page2) = op(
        &api,
        "GET",
        "/v1/accounts",
        &[("limit", "2"), ("cursor", &cursor)],
        None,
        now,
    )
    .await;
    assert_eq!(ids(&page2), ["acct_c"]);
    assert!(page2["next_cursor"].is_null());
    let (s, b) = op(&api, "GET", "/v1/accounts", &[("limit", "1000")], None, now).await;
    assert_eq!((s, fields(&b)), (400, vec!["limit".to_string()]));

    // The customer reads and updates its own account; another's is a 404, the list a 403.
    let customer = new_key(&api, json!({"role": "customer", "account_id": "acct_a"})).await;
    stack.create_tenants(&[], &["prov_a"]).await;
    let provider = new_key(&api, json!({"role": "provider", "provider_id": "prov_a"})).await;
    let (s, b) = as_key(&api, &customer, "GET", "/v1/accounts/acct_a", None, now).await;
    assert_eq!((s, b["timezone"].as_str()), (200, Some("Europe/Berlin")));
    assert_eq!(
        as_key(&api, &customer, "GET", "/v1/accounts/acct_b", None, now)
            .await
            .0,
        404
    );
    assert_eq!(
        as_key(&api, &customer, "GET", "/v1/accounts", None, now).await.0,
        403
    );
    assert_eq!(
        as_key(&api, &provider, "GET", "/v1/accounts/acct_a", None, now)
            .await
            .0,
        403
    );
    let (s, b) = as_key(
        &api,
        &customer,
        "POST",
        "/v1/accounts/acct_a",
        Some(json!({"timezone": "UTC", "currency": "USD", "tax": {"exemption": "EX-1"}})),
        now,
    )
    .await;
    assert_eq!(
        (s, fields(&b)),
        (403, vec!["currency".to_string(), "tax".to_string()]),
        "terms are the operator's"
    );
    let (s, b) = as_key(
        &api,
        &customer,
        "POST",
        "/v1/accounts/acct_a",
        Some(json!({"timezone": "America/New_York", "auto_pay": false})),
        now,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = op(
        &api,
        "POST",
        "/v1/accounts/acct_a",
        &[],
        Some(json!({"currency": "USD", "tax": {"exemption": "EX-1"}})),
        now,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (
            b["timezone"].as_str(),
            b["auto_pay"].as_bool(),
            b["currency"].as_str()
        ),
        (Some("America/New_York"), Some(false), Some("USD"))
    );
    assert_eq!(b["tax"]["exemption"], "EX-1");
    let stored = stack.billing().account("acct_a").await.unwrap().unwrap();
    assert_eq!(stored.timezone, chrono_tz::America::New_York);
    let (s, b) = as_key(
        &api,
        &customer,
        "POST",
        "/v1/accounts/acct_a",
        Some(json!({"account_id": "acct_b", "auto_pay": "yes"})),
        now,
    )
    .await;
    assert_eq!(
        (s, fields(&b)),
        (400, vec!["account_id".to_string(), "auto_pay".to_string()])
    );
    let policy = json!({"policy": {"terms": {"type": "net", "days": 0}, "grace_days": 400}});
    let (s, b) = op(&api, "POST", "/v1/accounts/acct_a", &[], Some(policy), now).await;
    assert_eq!((s, fields(&b)), (400, vec!["policy.grace_days".to_string()]));
    let policy = json!({"policy": {"terms": {"type": "due_on_receipt"}, "grace_days": 5}});
    let (s, b) = op(&api, "POST", "/v1/accounts/acct_a", &[], Some(policy), now).await;
    assert_eq!(
        (s, b["policy"]["terms"]["type"].as_str()),
        (200, Some("due_on_receipt"))
    );
    assert_eq!(
        as_key(
            &api,
            &customer,
            "POST",
            "/v1/accounts/acct_b",
            Some(json!({"auto_pay": true})),
            now
        )
        .await
        .0,
        404
    );
}

async fn providers_and_price_book_versions(backend: Backend) {
    let stack = Stack::on(backend, "pricebooks").await;
    let api = stack.api();
    let now = t("2026-06-01T00:00:00Z");
    let (s, b) = op(
        &api,
        "POST",
        "/v1/providers",
        &[],
        Some(json!({"provider_id": "prov_a", "name": "GPU Co", "fee_percent": "12.5"})),
        now,
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        op(
            &api,
            "POST",
            "/v1/providers",
            &[],
            Some(json!({"provider_id": "prov_a", "name": "Again", "fee_percent": "1"})),
            now
        )
        .await
        .0,
        409
    );
    let (s, b) = op(
        &api,
        "POST",
        "/v1/providers",
        &[],
        Some(json!({"provider_id": "prov_b", "name": "", "fee_percent": "101"})),
        now,
    )
    .await;
    assert_eq!(
        (s, fields(&b)),
        (400, vec!["name".to_string(), "fee_percent".to_string()])
    );
    op(
        &api,
        "POST",
        "/v1/providers",
        &[],
        Some(json!({"provider_id": "prov_b", "name": "CPU Co", "fee_percent": "10"})),
        now,
    )
    .await;
    let catalog = stack.billing().catalog().await.unwrap();
    assert_eq!(
        catalog.fees["prov_a"],
        Decimal::new(125, 1),
        "the close reads the fee"
    );

    let prov_a = new_key(&api, json!({"role": "provider", "provider_id": "prov_a"})).await;
    stack.create_tenants(&["acct_a"], &[]).await;
    let customer = new_key(&api, json!({"role": "customer", "account_id": "acct_a"})).await;
    let (s, b) = as_key(&api, &prov_a, "GET", "/v1/providers/prov_a", None, now).await;
    assert_eq!((s, b["fee_percent"].as_str()), (200, Some("12.5")));
    assert_eq!(
        as_key(&api, &prov_a, "GET", "/v1/providers/prov_b", None, now)
            .await
            .0,
        404
    );
    assert_eq!(
        as_key(&api, &customer, "GET", "/v1/providers/prov_a", None, now)
            .await
            .0,
        403
    );

    let book = |version: u32, from: &str, price: &str| {
        json!({"id": "prov-a-usd", "owner": {"kind": "provider", "id": "prov_a"}, "currency": "USD",
            "version": version, "effective_from": from,
            "prices": [{"id": "gpu", "meter": "gpu_seconds", "model": {"type": "per_unit", "unit_price": price}}]})
    };
    let (s, b) = op(
        &api,
        "POST",
        "/v1/price-books",
        &[],
        Some(book(1, "2026-06-01T00:00:00Z", "0.001")),
        now,
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let mut bad = book(2, "2026-07-01T00:00:00Z", "-0.001");
    bad["prices"][0]["meter"] = json!("gpu_hours");
    let (s, b) = op(&api, "POST", "/v1/price-books", &[], Some(bad), now).await;
    assert_eq!(s, 400, "{b}");
    assert!(fields(&b).contains(&"prices[0].meter".to_string()), "{b}");
    let (s, b) = op(
        &api,
        "POST",
        "/v1/price-books",
        &[],
        Some(book(2, "2026-07-01T00:00:00Z", "0.0000000000001")),
        now,
    )
    .await;
    assert_eq!(
        (s, fields(&b)),
        (400, vec!["prices[0].model.unit_price".to_string()])
    );
    let (s, b) = op(
        &api,
        "POST",
        "/v1/price-books",
        &[],
        Some(book(2, "2026-05-01T00:00:00Z", "0.002")),
        now,
    )
    .await;
    assert_eq!((s, fields(&b)), (400, vec!["effective_from".to_string()]));
    let (s, b) = op(
        &api,
        "POST",
        "/v1/price-books",
        &[],
        Some(book(2, "2026-07-01T00:00:00Z", "0.002")),
        now,
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, _) = op(
        &api,
        "POST",
        "/v1/price-books",
        &[],
        Some(book(2, "2026-08-01T00:00:00Z", "0.003")),
        now,
    )
    .await;
    assert_eq!(s, 409, "versions are immutable");
    assert_eq!(
        as_key(
            &api,
            &customer,
            "POST",
            "/v1/price-books",
            Some(book(3, "2026-08-01T00:00:00Z", "0.003")),
            now
        )
        .await
        .0,
        403
    );

    let (s, b) = op(&api, "GET", "/v1/price-books", &[], None, now).await;
    assert_eq!(s, 200);
    assert_eq!(b["data"].as_array().unwrap().len(), 1);
    assert_eq!(b["data"][0]["version"], 2);
    let (_, b) = op(
        &api,
        "GET",
        "/v1/price-books/prov-a-usd/versions",
        &[("limit", "1")],
        None,
        now,
    )
    .await;
    assert_eq!(b["data"][0]["version"], 1);
    assert_eq!(
        b["data"][0]["effective_to"], "2026-07-01T00:00:00Z",
        "superseded by version 2"
    );
    let cursor = b["next_cursor"].as_str().unwrap().to_string();
    let (_, b) = op(
        &api,
        "GET",
        "/v1/price-books/prov-a-usd/versions",
        &[("limit", "1"), ("cursor", &cursor)],
        None,
        now,
    )
    .await;
    assert_eq!(b["data"][0]["version"], 2);
    let (s, b) = op(
        &api,
        "GET",
        "/v1/price-books/prov-a-usd/versions/2",
        &[],
        None,
        now,
    )
    .await;
    assert_eq!(
        (s, b["prices"][0]["model"]["unit_price"].as_str()),
        (200, Some("0.002"))
    );
    assert_eq!(
        op(
            &api,
            "GET",
            "/v1/price-books/prov-a-usd/versions/9",
            &[],
            None,
            now
        )
        .await
        .0,
        404
    );
    assert_eq!(
        op(
            &api,
            "GET",
            "/v1/price-books/prov-a-usd/versions/x",
            &[],
            None,
            now
        )
        .await
        .0,
        400
    );
    let (s, b) = as_key(
        &api,
        &prov_a,
        "GET",
        "/v1/providers/prov_a/price-books",
        None,
        now,
    )
    .await;
    assert_eq!((s, b["data"].as_array().unwrap().len()), (200, 2));
    assert_eq!(
        as_key(
            &api,
            &prov_a,
            "GET",
            "/v1/providers/prov_b/price-books",
            None,
            now
        )
        .await
        .0,
        404
    );
    // The close reads the same catalog.
    let catalog = stack.billing().catalog().await.unwrap();
    assert_eq!(catalog.books.len(), 2);
    meterline_shared::domain::pricing::Catalog::new(catalog.books).unwrap();
}

async fn plan(api: &Api, id: &str, fee: &str, now: DateTime<Utc>) -> Value {
    let (s, b) = op(
        api,
        "POST",
        "/v1/plans",
        &[],
        Some(json!({"plan_id": id, "plan": {"name": id, "recurring_fee": fee,
        "allowances": [{"meter": "cpu_seconds", "quantity": "3600"}]}})),
        now,
    )
    .await;
    assert_eq!(s, 201, "{b}");
    b
}

/// An account in another currency than the price books: the preview converts at the latest rate
/// the exchange-rate table holds (the API function reads it), says so, and names the rate; with
/// no rate for the pair it answers 503 rather than guess.
async fn a_plan_change_preview_in_another_currency_converts_at_the_latest_stored_rate(backend: Backend) {
    let stack = Stack::on(backend, "planchange-fx").await;
    let api = stack.api();
    stack.billing().put_catalog(&sample::catalog()).await.unwrap();
    let start = t("2026-03-01T00:00:00Z");
    plan(&api, "builder", "10.00", start).await;
    plan(&api, "pro", "31.00", start).await;
    let account = json!({"account_id": "acct_eur", "currency": "EUR", "timezone": "UTC"});
    assert_eq!(
        op(&api, "POST", "/v1/accounts", &[], Some(account), start)
            .await
            .0,
        201
    );
    let sub = json!({"subscription_id": "sub_1", "plan_id": "builder", "cadence": "monthly"});
    let (s, b) = op(
        &api,
        "POST",
        "/v1/accounts/acct_eur/subscriptions",
        &[],
        Some(sub),
        start,
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let preview = |at| {
        let path = "/v1/accounts/acct_eur/subscriptions/sub_1/change/preview";
        op(
            &api,
            "POST",
            path,
            &[],
            Some(json!({"plan_id": "pro", "at": "now"})),
            at,
        )
    };
    let change_at = t("2026-03-11T00:00:00Z");
    let (s, b) = preview(change_at).await;
    assert_eq!(s, 503, "{b}");
    assert!(b["type"].as_str().unwrap().ends_with("/no-exchange-rate"), "{b}");

    let as_of = change_at - chrono::Duration::hours(1);
    let rate = meterline_shared::domain::fx::ExchangeRate::new(
        "USD/EUR".parse().unwrap(),
        "0.5".parse().unwrap(),
        as_of,
        vec!["ecb".into()],
        as_of,
    )
    .unwrap();
    stack.rates().put(&rate).await.unwrap();
    let (s, b) = preview(change_at).await;
    assert_eq!(s, 200, "{b}");
    let p = &b["preview"];
    assert_eq!(p["indicative"], true);
    assert_eq!(p["rate"]["pair"], "USD/EUR");
    assert_eq!(p["rate"]["rate"], "0.5");
    // The same change as in USD (a 31-day March, ten days on builder), at half the amounts.
    assert_eq!(
        (p["currency"].as_str(), p["charge"].as_str()),
        (Some("EUR"), Some("10.50"))
    );
}

async fn plans_and_subscriptions_with_cancellation(backend: Backend) {
    let stack = Stack::on(backend, "subscriptions").await;
    let api = stack.api();
    let now = t("2026-03-10T12:00:00Z");
    assert_eq!(plan(&api, "builder", "10.00", now).await["version"], 1);
    assert_eq!(plan(&api, "builder", "12.00", now).await["version"], 2);
    plan(&api, "pro", "31.00", now).await;
    let (s, b) = op(
        &api,
        "POST",
        "/v1/plans",
        &[],
        Some(json!({"plan_id": "bad", "plan": {"recurring_fee": "-1", "colour": 1}})),
        now,
    )
    .await;
    assert_eq!(
        (s, fields(&b)),
        (
            400,
            vec!["plan.colour".to_string(), "plan.recurring_fee".to_string()]
        )
    );
    let (s, b) = op(
        &api,
        "POST",
        "/v1/plans",
        &[],
        Some(json!({"plan_id": "bad", "plan": {"recurring_fee": "-1"}})),
        now,
    )
    .await;
    assert_eq!((s, fields(&b)), (400, vec!["plan.recurring_fee".to_string()]));
    let (s, _) = op(
        &api,
        "POST",
        "/v1/plans",
        &[],
        Some(json!({"plan_id": "builder", "version": 2, "plan": {}})),
        now,
    )
    .await;
    assert_eq!(s, 409, "version 2 exists");
    for id in ["acct_a", "acct_b"] {
        op(
            &api,
            "POST",
            "/v1/accounts",
            &[],
            Some(json!({"account_id": id, "currency": "USD"})),
            now,
        )
        .await;
    }
    let customer = new_key(&api, json!({"role": "customer", "account_id": "acct_a"})).await;
    let (s, b) = as_key(&api, &customer, "GET", "/v1/plans", None, now).await;
    assert_eq!(s, 200);
    let listed: Vec<(String, u64)> = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["plan_id"].as_str().unwrap().to_string(),
                p["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, [("builder".to_string(), 2), ("pro".to_string(), 1)]);
    let resp = api
        .handle(
            with_key(
                api_request("GET", "/v1/plans/builder", &[("version", "1")], None),
                &customer,
            ),
            now,
        )
        .await;
    assert_eq!(body_json(&resp)["plan"]["recurring_fee"], "10.00");
    let (_, b) = op(&api, "GET", "/v1/plans/builder/versions", &[], None, now).await;
    assert_eq!(b["data"].as_array().unwrap().len(), 2);
    assert_eq!(op(&api, "GET", "/v1/plans/nope", &[], None, now).await.0, 404);

    let base = "/v1/accounts/acct_a/subscriptions";
    let (s, b) = as_key(
        &api,
        &customer,
        "POST",
        base,
        Some(json!({"subscription_id": "sub_1", "plan_id": "builder",
        "plan_version": 1, "cadence": "monthly", "start": "2026-03-05T00:00:00Z"})),
        now,
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["next_close_at"], "2026-04-01T00:00:00Z");
    assert_eq!(b["plan_ref"], json!({"plan_id": "builder", "version": 1}));
    assert_eq!(b["status"], "active");
    let (s, b) = as_key(
        &api,
        &customer,
        "POST",
        base,
        Some(json!({"subscription_id": "sub 2", "plan_id": "nope",
        "cadence": "yearly", "start": "2020-01-01T00:00:00Z"})),
        now,
    )
    .await;
    assert_eq!(
        (s, fields(&b)),
        (
            400,
            ["subscription_id", "cadence", "start", "plan_id"]
                .map(String::from)
                .to_vec()
        )
    );
    assert_eq!(
        as_key(
            &api,
            &customer,
            "POST",
            base,
            Some(json!({"subscription_id": "sub_1", "plan_id": "pro", "cadence": "daily"})),
            now
        )
        .await
        .0,
        409
    );
    as_key(
        &api,
        &customer,
        "POST",
        base,
        Some(json!({"subscription_id": "sub_2", "plan_id": "pro", "cadence": "daily"})),
        now,
    )
    .await;
    let other = json!({"subscription_id": "sub_1", "plan_id": "pro", "cadence": "daily"});
    let (s, _) = op(
        &api,
        "POST",
        "/v1/accounts/acct_b/subscriptions",
        &[],
        Some(other),
        now,
    )
    .await;
    assert_eq!(s, 201, "subscription ids are per account: another's id is free");
    let (s, b) = as_key(&api, &customer, "GET", base, None, now).await;
    assert_eq!((s, b["data"].as_array().unwrap().len()), (200, 2));
    let resp = api
        .handle(
            with_key(api_request("GET", base, &[("limit", "1")], None), &customer),
            now,
        )
        .await;
    let b = body_json(&resp);
    assert_eq!(b["data"][0]["subscription_id"], "sub_1");
    assert!(b["next_cursor"].is_string());
    assert_eq!(
        as_key(
            &api,
            &customer,
            "GET",
            "/v1/accounts/acct_b/subscriptions",
            None,
            now
        )
        .await
        .0,
        404
    );
    assert_eq!(
        as_key(
            &api,
            &customer,
            "GET",
            "/v1/accounts/acct_b/subscriptions/sub_1",
            None,
            now
        )
        .await
        .0,
        404
    );
    let (s, b) = as_key(&api, &customer, "GET", &format!("{base}/sub_1"), None, now).await;
    assert_eq!((s, b["plan"]["name"].as_str()), (200, Some("builder")));
    assert_eq!(
        as_key(&api, &customer, "GET", &format!("{base}/sub_9"), None, now)
            .await
            .0,
        404
    );

    // Cancel: a bad body names `at`; at period end; then now keeps the sooner instant.
    let (s, b) = as_key(
        &api,
        &customer,
        "POST",
        &format!("{base}/sub_1/cancel"),
        Some(json!({"at": "tomorrow"})),
        now,
    )
    .await;
    assert_eq!((s, fields(&b)), (400, vec!["at".to_string()]));
    let (s, b) = as_key(
        &api,
        &customer,
        "POST",
        &format!("{base}/sub_1/cancel"),
        Some(json!({"at": "period_end"})),
        now,
    )
    .await;
    assert_eq!(
        (s, b["cancelled_at"].as_str(), b["status"].as_str()),
        (200, Some("2026-04-01T00:00:00Z"), Some("cancelling"))
    );
    let (_, b) = as_key(
        &api,
        &customer,
        "POST",
        &format!("{base}/sub_1/cancel"),
        Some(json!({"at": "now"})),
        now,
    )
    .await;
    assert_eq!(b["cancelled_at"], "2026-03-10T12:00:00Z");
    let stored = stack
        .billing()
        .subscription("acct_a", "sub_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.cancelled_at, Some(now));
    let (s, _) = as_key(
        &api,
        &customer,
        "POST",
        &format!("{base}/sub_1/change"),
        Some(json!({"plan_id": "pro", "at": "now"})),
        now + chrono::Duration::hours(1),
    )
    .await;
    assert_eq!(s, 409, "a cancelled subscription does not change plan");
    assert_eq!(
        as_key(
            &api,
            &customer,
            "POST",
            "/v1/accounts/acct_b/subscriptions/sub_1/cancel",
            Some(json!({"at": "now"})),
            now
        )
        .await
        .0,
        404
    );
}

async fn a_plan_change_preview_is_what_the_close_invoices(backend: Backend) {
    let stack = Stack::on(backend, "planchange").await;
    let api = stack.api();
    let billing = stack.billing();
    billing.put_catalog(&sample::catalog()).await.unwrap();
    let start = t("2026-03-01T00:00:00Z");
    plan(&api, "builder", "10.00", start).await;
    plan(&api, "pro", "31.00", start).await;
    op(
        &api,
        "POST",
        "/v1/accounts",
        &[],
        Some(json!({"account_id": "acct_a", "currency": "USD", "timezone": "UTC"})),
        start,
    )
    .await;
    let base = "/v1/accounts/acct_a/subscriptions/sub_1";
    let (s, b) = op(
        &api,
        "POST",
        "/v1/accounts/acct_a/subscriptions",
        &[],
        Some(json!({"subscription_id": "sub_1",
        "plan_id": "builder", "cadence": "monthly"})),
        start,
    )
    .await;
    assert_eq!(s, 201, "{b}");

    // Ten of March's 31 days on builder, 21 on pro.
    let change_at = t("2026-03-11T00:00:00Z");
    let (s, b) = op(
        &api,
        "POST",
        &format!("{base}/change/preview"),
        &[],
        Some(json!({"plan_id": "pro", "at": "now"})),
        change_at,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let preview = b["preview"].clone();
    assert_eq!(preview["fees_before"], "10.00");
    assert_eq!(preview["credit"], "6.77");
    assert_eq!(preview["charge"], "21.00");
    assert_eq!(preview["fees_after"], "24.23");
    assert_eq!(preview["indicative"], false, "books and account both in USD");
    assert!(preview.get("rate").is_none());
    let untouched = billing.subscription("acct_a", "sub_1").await.unwrap().unwrap();
    assert!(untouched.plan_changes.is_empty(), "a preview writes nothing");
    let (s, b) = op(
        &api,
        "POST",
        &format!("{base}/change/preview"),
        &[],
        Some(json!({"plan_id": "gold", "at": "later"})),
        change_at,
    )
    .await;
    assert_eq!(
        (s, fields(&b)),
        (400, vec!["at".to_string(), "plan_id".to_string()])
    );

    let (s, b) = op(
        &api,
        "POST",
        &format!("{base}/change"),
        &[],
        Some(json!({"plan_id": "pro", "at": "now"})),
        change_at,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["preview"], preview);
    assert_eq!(b["subscription"]["plan_changes"][0]["at"], "2026-03-11T00:00:00Z");

    let publisher = MemoryEventPublisher::new();
    let rates = InMemoryRateStore::new();
    let (worker_billing, usage) = (
        stack.billing_of("CloseWorkerFunction"),
        stack.usage_of("CloseWorkerFunction"),
    );
    let closer = Closer {
        billing: worker_billing.as_ref(),
        usage: usage.as_ref(),
        rates: &rates,
        publisher: &publisher,
        settings: CloseSettings::default(),
    };
    let req = CloseRequest {
        account_id: "acct_a".into(),
        subscription_id: "sub_1".into(),
        period_end: t("2026-04-01T00:00:00Z"),
    };
    let report = closer
        .close_subscription(&req, t("2026-04-01T00:05:00Z"))
        .await
        .unwrap();
    let invoice = &report.committed[0];
    let fees: Vec<Value> = invoice
        .lines
        .iter()
        .filter(|l| l.rated.as_ref().is_some_and(|r| r.kind == LineKind::RecurringFee))
        .map(|l| json!(l.net.to_string()))
        .collect();
    assert_eq!(fees, [json!("3.23"), json!("21.00")]);
    let previewed: Vec<Value> = preview["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["net"].clone())
        .collect();
    assert_eq!(fees, previewed);
    assert_eq!(
        invoice.net_total.to_string(),
        preview["fees_after"].as_str().unwrap()
    );

    // The next period is on pro alone.
    let (_, b) = op(
        &api,
        "POST",
        &format!("{base}/change/preview"),
        &[],
        Some(json!({"plan_id": "builder", "at": "period_end"})),
        t("2026-04-02T00:00:00Z"),
    )
    .await;
    assert_eq!(b["preview"]["fees_before"], "31.00");
    assert_eq!(b["preview"]["period"]["start"], "2026-05-01T00:00:00Z");
}

/// The DynamoDB directory's conditions, as the memory adapter's unit test checks them.
#[tokio::test]
async fn the_dynamodb_directory_writes_conditionally() {
    use meterline_shared::domain::billing::Cadence;
    use meterline_shared::domain::money::Currency;
    use meterline_shared::ports::directory::{PlanDoc, ProviderDoc, Written};
    let stack = Stack::create("directory").await;
    let dir = stack.billing_store();
    let a = sample::account("a1", Currency::USD);
    assert_eq!(dir.create_account(&a).await.unwrap(), Written::Yes);
    assert_eq!(dir.create_account(&a).await.unwrap(), Written::Conflict);
    let mut moved = a.clone();
    moved.credit_balance.amount = Decimal::ONE;
    assert_eq!(
        dir.update_account(&moved).await.unwrap(),
        Written::Conflict,
        "the balance moved"
    );
    assert_eq!(dir.update_account(&a).await.unwrap(), Written::Yes);
    for b in ["a0", "a2"] {
        dir.create_account(&sample::account(b, Currency::USD))
            .await
            .unwrap();
    }
    let p = dir.account_ids(None, 2).await.unwrap();
    assert_eq!(p.items, ["a0", "a1"]);
    let p = dir.account_ids(p.next.as_deref(), 2).await.unwrap();
    assert_eq!(p.items, ["a2"]);
    // Batched reads: 100 ids per BatchGetItem, in the order asked, missing ids left out.
    let mut ids: Vec<String> = (0..150).map(|i| format!("missing_{i:03}")).collect();
    ids.insert(0, "a2".into());
    ids.insert(120, "a0".into());
    ids.push("a1".into());
    let read: Vec<String> = dir
        .accounts(&ids)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.account_id)
        .collect();
    assert_eq!(read, ["a2", "a0", "a1"]);
    assert_eq!(dir.accounts(&[]).await.unwrap(), vec![]);

    let doc = |v| PlanDoc {
        plan_id: "pro".into(),
        version: v,
        plan: Default::default(),
        created_at: t("2026-01-01T00:00:00Z"),
    };
    assert_eq!(dir.put_plan_version(&doc(2)).await.unwrap(), Written::Conflict);
    assert_eq!(dir.put_plan_version(&doc(1)).await.unwrap(), Written::Yes);
    assert_eq!(dir.put_plan_version(&doc(1)).await.unwrap(), Written::Conflict);
    assert_eq!(dir.put_plan_version(&doc(2)).await.unwrap(), Written::Yes);
    assert_eq!(dir.plan("pro", None).await.unwrap().unwrap().version, 2);
    assert_eq!(dir.plan_versions("pro").await.unwrap().len(), 2);

    let (cat, rev) = dir.catalog_revision().await.unwrap();
    assert_eq!(dir.replace_catalog(&cat, rev).await.unwrap(), Written::Yes);
    assert_eq!(
        dir.replace_catalog(&cat, rev).await.unwrap(),
        Written::Conflict,
        "stale revision"
    );

    let start = t("2026-01-01T00:00:00Z");
    let sub = sample::subscription("s1", "a1", Cadence::Daily, start);
    assert_eq!(dir.create_subscription(&sub).await.unwrap(), Written::Yes);
    assert_eq!(
        dir.create_subscription(&sub).await.unwrap(),
        Written::Conflict,
        "the id is taken in its account"
    );
    let elsewhere = sample::subscription("s1", "a2", Cadence::Daily, start);
    assert_eq!(
        dir.create_subscription(&elsewhere).await.unwrap(),
        Written::Yes,
        "subscription ids are per account"
    );
    let mut closed = sub.clone();
    closed.next_close_at = closed
        .next_close_after(closed.period_to_close().unwrap().unwrap())
        .unwrap();
    dir.put_subscription(&closed).await.unwrap();
    assert_eq!(
        dir.replace_subscription(&sub).await.unwrap(),
        Written::Conflict,
        "a close ran"
    );
    assert_eq!(dir.replace_subscription(&closed).await.unwrap(), Written::Yes);
    assert!(!dir.has_invoices("a1").await.unwrap());

    let prov = |fee: i64| ProviderDoc {
        provider_id: "p1".into(),
        name: "P".into(),
        fee_percent: Decimal::from(fee),
        upfront_payout: Default::default(),
        created_at: t("2026-01-01T00:00:00Z"),
        updated_at: None,
    };
    let (mut cat, rev) = dir.catalog_revision().await.unwrap();
    assert_eq!(
        dir.update_provider(&prov(5), &cat, rev).await.unwrap(),
        Written::Conflict,
        "no such provider"
    );
    cat.fees.insert("p1".into(), Decimal::TEN);
    assert_eq!(
        dir.create_provider(&prov(10), &cat, rev).await.unwrap(),
        Written::Yes
    );
    cat.fees.insert("p1".into(), Decimal::from(5));
    assert_eq!(
        dir.update_provider(&prov(5), &cat, rev).await.unwrap(),
        Written::Conflict,
        "stale revision"
    );
    assert_eq!(
        dir.provider("p1").await.unwrap().unwrap().fee_percent,
        Decimal::TEN
    );
    assert_eq!(
        dir.update_provider(&prov(5), &cat, rev + 1).await.unwrap(),
        Written::Yes
    );
    assert_eq!(dir.catalog().await.unwrap().fees["p1"], Decimal::from(5));
    let page = dir.providers(None, 10).await.unwrap();
    assert_eq!(page.items, vec![prov(5)]);
}

/// Providers are listed by the operator; a fee change is the operator's, conditional on the
/// catalog's revision, and applies to the periods closed after it: the statements of closed
/// invoices keep the fee they were closed with.
async fn a_provider_fee_change_applies_to_later_closes_only(backend: Backend) {
    use meterline_shared::domain::usage::{AggregateRef, DimensionSet, EventRef, Granularity};
    let stack = Stack::on(backend, "providerfee").await;
    let api = stack.api();
    let billing = stack.billing();
    let mut catalog = sample::catalog();
    catalog.fees.clear();
    billing.put_catalog(&catalog).await.unwrap();
    let start = t("2026-03-01T00:00:00Z");
    for (id, fee) in [("prov_001", "12.5"), ("prov_000", "15")] {
        let (s, b) = op(
            &api,
            "POST",
            "/v1/providers",
            &[],
            Some(json!({"provider_id": id, "name": id, "fee_percent": fee})),
            start,
        )
        .await;
        assert_eq!(s, 201, "{b}");
    }
    let (s, b) = op(&api, "GET", "/v1/providers", &[("limit", "1")], None, start).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"][0]["provider_id"], "prov_000");
    let cursor = b["next_cursor"].as_str().unwrap().to_string();
    let (_, b) = op(
        &api,
        "GET",
        "/v1/providers",
        &[("limit", "1"), ("cursor", &cursor)],
        None,
        start,
    )
    .await;
    assert_eq!(b["data"][0]["provider_id"], "prov_001");
    assert_eq!(b["next_cursor"], Value::Null);

    plan(&api, "builder", "10.00", start).await;
    op(
        &api,
        "POST",
        "/v1/accounts",
        &[],
        Some(json!({"account_id": "acct_a", "currency": "USD", "timezone": "UTC"})),
        start,
    )
    .await;
    let (s, b) = op(
        &api,
        "POST",
        "/v1/accounts/acct_a/subscriptions",
        &[],
        Some(json!({"subscription_id": "sub_1", "plan_id": "builder", "cadence": "daily"})),
        start,
    )
    .await;
    assert_eq!(s, 201, "{b}");

    // 100,000 CPU-seconds on prov_001 each day.
    let usage = stack.usage();
    let dims = DimensionSet::new(Default::default());
    let use_at = |at: DateTime<Utc>| AggregateRef {
        account_id: "acct_a",
        provider_id: "prov_001",
        granularity: Granularity::Hour,
        window_start: at,
        meter: meterline_shared::domain::meter::Meter::CpuSeconds,
        dimensions: &dims,
        quantity: Decimal::from(100_000),
        event_count: 1,
    };
    let none: [EventRef<'_>; 0] = [];
    usage
        .commit(&none, &[use_at(t("2026-03-01T05:00:00Z"))], start)
        .await
        .unwrap();
    usage
        .commit(&none, &[use_at(t("2026-03-02T05:00:00Z"))], start)
        .await
        .unwrap();
    let publisher = MemoryEventPublisher::new();
    let rates = InMemoryRateStore::new();
    let (worker_billing, worker_usage) = (
        stack.billing_of("CloseWorkerFunction"),
        stack.usage_of("CloseWorkerFunction"),
    );
    let closer = Closer {
        billing: worker_billing.as_ref(),
        usage: worker_usage.as_ref(),
        rates: &rates,
        publisher: &publisher,
        settings: CloseSettings::default(),
    };
    let close = |end: &str| CloseRequest {
        account_id: "acct_a".into(),
        subscription_id: "sub_1".into(),
        period_end: t(end),
    };
    let first = closer
        .close_subscription(&close("2026-03-02T00:00:00Z"), t("2026-03-02T00:05:00Z"))
        .await
        .unwrap()
        .committed[0]
        .clone();
    let fee_of = |inv: &meterline_shared::domain::billing::Invoice| {
        inv.statements
            .statements
            .iter()
            .find(|s| s.provider_id == "prov_001")
            .unwrap()
            .fee_percent
    };
    assert_eq!(fee_of(&first), Decimal::new(125, 1));
    let entries_before = stack
        .provider_statements("prov_001", start, t("2026-04-01T00:00:00Z"))
        .await;

    // Validation names the field; a provider key may change its name, not its fee; another
    // provider's key gets 404.
    let changed_at = t("2026-03-02T01:00:00Z");
    let path = "/v1/providers/prov_001";
    let (s, b) = op(
        &api,
        "POST",
        path,
        &[],
        Some(json!({"fee_percent": "120"})),
        changed_at,
    )
    .await;
    assert_eq!((s, fields(&b)), (400, vec!["fee_percent".to_string()]));
    let (s, b) = op(
        &api,
        "POST",
        path,
        &[],
        Some(json!({"colour": "red"})),
        changed_at,
    )
    .await;
    assert_eq!((s, fields(&b)), (400, vec!["colour".to_string()]));
    let own = new_key(&api, json!({"role": "provider", "provider_id": "prov_001"})).await;
    let other = new_key(&api, json!({"role": "provider", "provider_id": "prov_000"})).await;
    let (s, b) = as_key(
        &api,
        &own,
        "POST",
        path,
        Some(json!({"fee_percent": "0"})),
        changed_at,
    )
    .await;
    assert_eq!((s, fields(&b)), (403, vec!["fee_percent".to_string()]));
    let (s, _) = as_key(
        &api,
        &other,
        "POST",
        path,
        Some(json!({"name": "Mine"})),
        changed_at,
    )
    .await;
    assert_eq!(s, 404);
    let (s, b) = as_key(
        &api,
        &own,
        "POST",
        path,
        Some(json!({"name": "CPU Co"})),
        changed_at,
    )
    .await;
    assert_eq!(
        (s, b["name"].as_str(), b["fee_percent"].as_str()),
        (200, Some("CPU Co"), Some("12.5"))
    );
    let (s, b) = op(
        &api,
        "POST",
        path,
        &[],
        Some(json!({"fee_percent": "20"})),
        changed_at,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["fee_percent"], "20");
    assert_eq!(b["name"], "CPU Co");
    assert_eq!(b["updated_at"], "2026-03-02T01:00:00Z");
    assert_eq!(b["fee_applies_to"], "periods_closed_after_change");
    let (cat, rev) = stack.directory().catalog_revision().await.unwrap();
    assert_eq!(cat.fees["prov_001"], Decimal::from(20));
    assert_eq!(
        rev, 4,
        "two providers, the name, the fee: each a conditional catalog write"
    );

    // The closed invoice and its statements are untouched; the next close uses the new fee.
    let stored = billing
        .invoice("acct_a", &first.invoice_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, first);
    assert_eq!(
        stack
            .provider_statements("prov_001", start, t("2026-04-01T00:00:00Z"))
            .await,
        entries_before
    );
    let second = closer
        .close_subscription(&close("2026-03-03T00:00:00Z"), t("2026-03-03T00:05:00Z"))
        .await
        .unwrap()
        .committed[0]
        .clone();
    assert_eq!(fee_of(&second), Decimal::from(20));
}

/// Every 200/201 body of these routes matches its schema in the document the API serves,
/// strictly: no field the document does not list, none it requires missing.
async fn account_and_catalog_bodies_match_their_documented_schemas(backend: Backend) {
    let stack = Stack::on(backend, "accounts-schema").await;
    let api = stack.api();
    let now = t("2026-03-01T00:00:00Z");
    let (_, doc) = op(&api, "GET", "/openapi.json", &[], None, now).await;
    let check = |template: &str, method: &str, (status, body): (u16, Value)| {
        assert!(
            status == 200 || status == 201,
            "{method} {template}: {status} {body}"
        );
        let schema = schema::response_schema(&doc, template, method, &status.to_string());
        let problems = schema::violations(&doc, &schema, &body);
        assert!(
            problems.is_empty(),
            "{method} {template} {status}: {problems:#?}\n{body}"
        );
        body
    };
    // No jurisdiction: the plan change is priced without tax rates.
    let account = json!({"account_id": "acct_s", "currency": "USD", "timezone": "Europe/Berlin",
        "auto_pay": true, "policy": {"terms": {"type": "net", "days": 14}, "grace_days": 3},
        "tax": {"exemption": "EX-1"}, "issuer": {"prefix": "S", "digits": 6}});
    check(
        "/v1/accounts",
        "post",
        op(&api, "POST", "/v1/accounts", &[], Some(account), now).await,
    );
    check(
        "/v1/accounts",
        "get",
        op(&api, "GET", "/v1/accounts", &[], None, now).await,
    );
    let acct = "/v1/accounts/{account_id}";
    check(
        acct,
        "get",
        op(&api, "GET", "/v1/accounts/acct_s", &[], None, now).await,
    );
    check(
        acct,
        "post",
        op(
            &api,
            "POST",
            "/v1/accounts/acct_s",
            &[],
            Some(json!({"auto_pay": false})),
            now,
        )
        .await,
    );

    let provider = json!({"provider_id": "prov_s", "name": "S", "fee_percent": "12.5"});
    check(
        "/v1/providers",
        "post",
        op(&api, "POST", "/v1/providers", &[], Some(provider), now).await,
    );
    check(
        "/v1/providers/{provider_id}",
        "get",
        op(&api, "GET", "/v1/providers/prov_s", &[], None, now).await,
    );
    let book = json!({"id": "book-s", "owner": {"kind": "provider", "id": "prov_s"}, "currency": "USD",
        "version": 1, "effective_from": "2026-03-02T00:00:00Z",
        "prices": [{"id": "gpu", "meter": "gpu_seconds", "model": {"type": "per_unit", "unit_price": "0.001"}}]});
    check(
        "/v1/price-books",
        "post",
        op(&api, "POST", "/v1/price-books", &[], Some(book), now).await,
    );
    check(
        "/v1/price-books",
        "get",
        op(&api, "GET", "/v1/price-books", &[], None, now).await,
    );
    check(
        "/v1/providers/{provider_id}/price-books",
        "get",
        op(&api, "GET", "/v1/providers/prov_s/price-books", &[], None, now).await,
    );
    check(
        "/v1/price-books/{book_id}/versions",
        "get",
        op(&api, "GET", "/v1/price-books/book-s/versions", &[], None, now).await,
    );
    check(
        "/v1/price-books/{book_id}/versions/{version}",
        "get",
        op(&api, "GET", "/v1/price-books/book-s/versions/1", &[], None, now).await,
    );

    check(
        "/v1/plans",
        "post",
        (201, plan(&api, "basic", "10.00", now).await),
    );
    plan(&api, "plus", "20.00", now).await;
    check(
        "/v1/plans",
        "get",
        op(&api, "GET", "/v1/plans", &[], None, now).await,
    );
    check(
        "/v1/plans/{plan_id}",
        "get",
        op(&api, "GET", "/v1/plans/basic", &[], None, now).await,
    );
    check(
        "/v1/plans/{plan_id}/versions",
        "get",
        op(&api, "GET", "/v1/plans/basic/versions", &[], None, now).await,
    );

    let subs = "/v1/accounts/{account_id}/subscriptions";
    let sub = json!({"subscription_id": "sub_s", "plan_id": "basic", "cadence": "monthly"});
    check(
        subs,
        "post",
        op(
            &api,
            "POST",
            "/v1/accounts/acct_s/subscriptions",
            &[],
            Some(sub),
            now,
        )
        .await,
    );
    check(
        subs,
        "get",
        op(&api, "GET", "/v1/accounts/acct_s/subscriptions", &[], None, now).await,
    );
    let one = format!("{subs}/{{subscription_id}}");
    let base = "/v1/accounts/acct_s/subscriptions/sub_s";
    let later = t("2026-03-11T00:00:00Z");
    let change = json!({"plan_id": "plus", "at": "now"});
    check(
        &format!("{one}/change/preview"),
        "post",
        op(
            &api,
            "POST",
            &format!("{base}/change/preview"),
            &[],
            Some(change.clone()),
            later,
        )
        .await,
    );
    check(
        &format!("{one}/change"),
        "post",
        op(&api, "POST", &format!("{base}/change"), &[], Some(change), later).await,
    );
    check(&one, "get", op(&api, "GET", base, &[], None, later).await);
    check(
        &format!("{one}/cancel"),
        "post",
        op(
            &api,
            "POST",
            &format!("{base}/cancel"),
            &[],
            Some(json!({"at": "period_end"})),
            later,
        )
        .await,
    );
}

async fn a_providers_upfront_payout_setting_reaches_the_catalog_the_close_reads(backend: Backend) {
    let stack = Stack::on(backend, "upfront-payout").await;
    let api = stack.api();
    let now = t("2026-06-01T00:00:00Z");
    let (s, b) = op(
        &api,
        "POST",
        "/v1/providers",
        &[],
        Some(
            json!({"provider_id": "prov_u", "name": "GPU Co", "fee_percent": "10",
            "upfront_payout": "at_purchase"}),
        ),
        now,
    )
    .await;
    assert_eq!(
        (s, b["upfront_payout"].as_str()),
        (201, Some("at_purchase")),
        "{b}"
    );
    let catalog = stack.billing().catalog().await.unwrap();
    assert_eq!(
        catalog.upfront_payouts.get("prov_u"),
        Some(&meterline_shared::domain::pricing::UpfrontPayout::AtPurchase)
    );
    // A wrong value names the field; a provider key may not change it.
    let (s, b) = op(
        &api,
        "POST",
        "/v1/providers/prov_u",
        &[],
        Some(json!({"upfront_payout": "monthly"})),
        now,
    )
    .await;
    assert_eq!((s, fields(&b)), (400, vec!["upfront_payout".to_string()]));
    let key = new_key(&api, json!({"role": "provider", "provider_id": "prov_u"})).await;
    let (s, _) = as_key(
        &api,
        &key,
        "POST",
        "/v1/providers/prov_u",
        Some(json!({"upfront_payout": "over_term"})),
        now,
    )
    .await;
    assert_eq!(s, 403);
    // Back to the default: over the term, out of the catalog's list.
    let (s, b) = op(
        &api,
        "POST",
        "/v1/providers/prov_u",
        &[],
        Some(json!({"upfront_payout": "over_term"})),
        now,
    )
    .await;
    assert_eq!((s, b["upfront_payout"].as_str()), (200, Some("over_term")), "{b}");
    let catalog = stack.billing().catalog().await.unwrap();
    assert!(catalog.upfront_payouts.is_empty());
    assert_eq!(catalog.fees["prov_u"], Decimal::TEN);
}

on_both_backends!(
    accounts_are_created_listed_read_and_updated_by_their_owners_only,
    providers_and_price_book_versions,
    plans_and_subscriptions_with_cancellation,
    a_plan_change_preview_is_what_the_close_invoices,
    a_provider_fee_change_applies_to_later_closes_only,
    account_and_catalog_bodies_match_their_documented_schemas,
    a_plan_change_preview_in_another_currency_converts_at_the_latest_stored_rate,
    a_providers_upfront_payout_setting_reaches_the_catalog_the_close_reads,
);
