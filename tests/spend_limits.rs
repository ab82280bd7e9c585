//! Spend-limit routes against the local endpoint (moto_server) and in memory, through the real
//! API handler: set, read, replace, every bad field named, who may set and read them, another
//! tenant's account not found. That the draw-down checks a limit set here is in
//! `tests/drawdown.rs`.

use chrono::{DateTime, Utc};
use meterline_integration_tests::{
    api_request, body_json, on_both_backends, operator_request, with_key, Backend, Stack,
};
use serde_json::{json, Value};

#[path = "support/schema.rs"]
mod schema;

const PATH: &str = "/v1/accounts/{account_id}/spend-limits";

fn now() -> DateTime<Utc> {
    Utc::now()
}

struct World {
    _stack: Stack,
    api: api::Api,
    /// A customer key of `acct_a`.
    customer_a: String,
}

impl World {
    async fn new(backend: Backend) -> World {
        let stack = Stack::on(backend, "spend-limits").await;
        stack.create_tenants(&["acct_a", "acct_b"], &[]).await;
        let api = stack.api();
        let body = json!({"role": "customer", "account_id": "acct_a"}).to_string();
        let resp = api
            .handle(operator_request("POST", "/v1/api-keys", &[], Some(&body)), now())
            .await;
        assert_eq!(resp.status(), 201);
        let customer_a = body_json(&resp)["key"].as_str().unwrap().to_string();
        World {
            _stack: stack,
            api,
            customer_a,
        }
    }

    /// `method` on `account`'s limits as `key`: the status and the body.
    async fn call(&self, key: &str, method: &str, account: &str, body: Option<Value>) -> (u16, Value) {
        let text = body.map(|b| b.to_string());
        let path = PATH.replace("{account_id}", account);
        let req = with_key(api_request(method, &path, &[], text.as_deref()), key);
        let resp = self.api.handle(req, now()).await;
        (resp.status().as_u16(), body_json(&resp))
    }

    async fn put(&self, account: &str, body: Value) -> (u16, Value) {
        let op = meterline_integration_tests::OPERATOR_KEY;
        self.call(op, "PUT", account, Some(body)).await
    }

    async fn get(&self, key: &str, account: &str) -> (u16, Value) {
        self.call(key, "GET", account, None).await
    }

    /// Asserts a response matches its schema in the served document, strictly.
    async fn conforms(&self, method: &str, status: u16, body: &Value) {
        let req = api_request("GET", "/openapi.json", &[], None);
        let doc = body_json(&self.api.handle(req, now()).await);
        let content = &doc["paths"][PATH][method]["responses"][status.to_string()]["content"];
        let schema = if content["application/json"].is_object() {
            schema::response_schema(&doc, PATH, method, &status.to_string())
        } else {
            content["application/problem+json"]["schema"].clone()
        };
        let problems = schema::violations(&doc, &schema, body);
        assert!(problems.is_empty(), "{method} {status}: {problems:#?}\n{body}");
    }
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {problem}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect()
}

/// Limits are set by an operator, read back by the account's own key, and replaced whole.
async fn limits_are_set_read_and_replaced(backend: Backend) {
    let w = World::new(backend).await;
    let op = meterline_integration_tests::OPERATOR_KEY;
    let (status, body) = w.get(op, "acct_a").await;
    assert_eq!(status, 404, "none set yet: {body}");
    w.conforms("get", 404, &body).await;

    let (status, set) = w
        .put(
            "acct_a",
            json!({"currency": "USD", "soft": "500", "hard": "1000.5"}),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    let expected = json!({"account_id": "acct_a", "currency": "USD", "soft": "500.00", "hard": "1000.50"});
    assert_eq!(set, expected);
    w.conforms("put", 200, &set).await;
    for key in [op, w.customer_a.as_str()] {
        let (status, read) = w.get(key, "acct_a").await;
        assert_eq!((status, &read), (200, &expected));
    }
    w.conforms("get", 200, &expected).await;

    // A replacement drops what it does not set.
    let (status, set) = w.put("acct_a", json!({"currency": "USD", "hard": "20.00"})).await;
    assert_eq!(status, 200, "{set}");
    let (status, read) = w.get(op, "acct_a").await;
    assert_eq!(status, 200);
    assert_eq!(read, set);
    assert_eq!(
        read,
        json!({"account_id": "acct_a", "currency": "USD", "soft": null, "hard": "20.00"})
    );
    w.conforms("get", 200, &read).await;
    // The other account has none.
    assert_eq!(w.get(op, "acct_b").await.0, 404);
}

/// Every bad field is named in one 400, and nothing is stored.
async fn bad_fields_are_each_named(backend: Backend) {
    let w = World::new(backend).await;
    let cases: &[(Value, &[&str])] = &[
        (
            json!({"currency": "USD", "soft": "1.005", "hard": "2.001"}),
            &["soft", "hard"],
        ),
        (
            json!({"currency": "USD", "soft": "10.00", "hard": "10.00"}),
            &["soft"],
        ),
        (json!({"currency": "USD", "soft": "20", "hard": "10"}), &["soft"]),
        (json!({"currency": "JPY", "soft": "10.5"}), &["soft"]),
        (json!({"currency": "USD", "soft": "0"}), &["soft"]),
        (json!({"currency": "USD", "hard": "-1"}), &["hard"]),
        (json!({"currency": "USD", "hard": "ten"}), &["hard"]),
        (json!({"currency": "usd!", "soft": "1"}), &["currency"]),
        (json!({"soft": "1"}), &["currency"]),
        (json!({"currency": "USD", "soft": "1", "extra": 1}), &["extra"]),
    ];
    for (body, expected) in cases {
        let (status, problem) = w.put("acct_a", body.clone()).await;
        assert_eq!(status, 400, "{body}: {problem}");
        let named = fields(&problem);
        for f in *expected {
            assert!(named.iter().any(|n| n == f), "{body}: {f} not named in {problem}");
        }
        w.conforms("put", 400, &problem).await;
    }
    let op = meterline_integration_tests::OPERATOR_KEY;
    assert_eq!(w.get(op, "acct_a").await.0, 404, "a refused body stored limits");
}

/// Only an operator sets limits; a customer reads its own account's only: another tenant's
/// account is not found, as is an account that does not exist.
async fn limits_are_set_by_operators_and_read_by_their_account_only(backend: Backend) {
    let w = World::new(backend).await;
    let body = json!({"currency": "USD", "soft": "5.00"});
    assert_eq!(w.put("acct_b", body.clone()).await.0, 200);
    let (status, problem) = w.call(&w.customer_a, "PUT", "acct_a", Some(body.clone())).await;
    assert_eq!(status, 403, "a customer set its own limits: {problem}");
    let (status, problem) = w.get(&w.customer_a, "acct_b").await;
    assert_eq!(status, 404, "{problem}");
    assert!(!problem.to_string().contains("5.00"), "{problem}");
    let (status, _) = w.put("nobody", body).await;
    assert_eq!(status, 404);
    let op = meterline_integration_tests::OPERATOR_KEY;
    assert_eq!(w.get(op, "nobody").await.0, 404);
    assert_eq!(w.get(op, "acct_a").await.0, 404);
}

on_both_backends!(
    limits_are_set_read_and_replaced,
    bad_fields_are_each_named,
    limits_are_set_by_operators_and_read_by_their_account_only,
);
