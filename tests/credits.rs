//! Prepaid credit against the local endpoint (moto_server) and in memory: the credit store's
//! versioned saves and pages, and the credit routes through the real API handler (grants,
//! balances, the ledger, job authorizations with their capture and release), with the races the
//! service decides again: two holds for the last credit, a capture against a release or an
//! expiry.

use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use meterline_integration_tests::{
    api_request, body_json, on_both_backends, operator_request, with_header, with_key, Backend, Stack,
};
use meterline_shared::domain::billing::{sample, Alignment, BillingSchedule, BillingSubscription, Cadence};
use meterline_shared::domain::credits::{
    CreditGrant, CreditLedger, EntryKind, GrantKind, GrantScope, GrantSource,
};
use meterline_shared::domain::money::{Currency, Money};
use meterline_shared::ports::StoreError;
use rust_decimal::Decimal;
use serde_json::{json, Value};

#[path = "support/schema.rs"]
mod schema;

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn grant(account: &str, id: &str, cents: i64) -> CreditGrant {
    CreditGrant {
        id: id.into(),
        account_id: account.into(),
        amount: Money::new(Decimal::new(cents, 2), Currency::USD),
        kind: GrantKind::Paid,
        priority: 0,
        effective_at: t(0),
        expires_at: None,
        scope: GrantScope::default(),
        source: GrantSource::Operator { note: "test".into() },
    }
}

/// A save against the version loaded stores the entries and the state; a save against an older
/// version is a conflict and stores nothing.
async fn a_save_against_a_stale_version_is_a_conflict(backend: Backend) {
    let stack = Stack::on(backend, "credit-store").await;
    let store = stack.credits_of("ApiFunction");
    let fresh = store.load("acct_c").await.unwrap();
    assert_eq!((fresh.version, fresh.ledger.entry_count()), (0, 0));
    let mut a = fresh.ledger.clone();
    a.grant(&grant("acct_c", "g1", 1000), t(1)).unwrap();
    store.save(&a, 0).await.unwrap();
    // Another writer that loaded version 0 too loses.
    let mut b = fresh.ledger;
    b.grant(&grant("acct_c", "g2", 500), t(1)).unwrap();
    assert!(matches!(store.save(&b, 0).await, Err(StoreError::Conflict(_))));
    let loaded = store.load("acct_c").await.unwrap();
    assert_eq!((loaded.version, loaded.ledger.entry_count()), (1, 1));
    assert!(loaded.ledger.grant_state("g2").is_none());
    let mut c = loaded.ledger;
    c.grant(&grant("acct_c", "g3", 250), t(2)).unwrap();
    store.save(&c, 1).await.unwrap();
    assert!(matches!(store.save(&c, 1).await, Err(StoreError::Conflict(_))));
    let page = store.entries("acct_c", None, 10).await.unwrap();
    let granted: Vec<(u64, EntryKind)> = page.items.iter().map(|e| (e.seq, e.kind)).collect();
    assert_eq!(granted, [(1, EntryKind::Granted), (2, EntryKind::Granted)]);
    assert_eq!(page.next, None);
    // Another account's ledger is its own.
    assert_eq!(store.load("acct_other").await.unwrap().version, 0);
    assert!(store
        .entries("acct_other", None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
}

/// One save of more entries than a transaction takes is stored whole, and read back in pages.
async fn a_save_of_many_entries_is_stored_whole_and_read_by_page(backend: Backend) {
    let stack = Stack::on(backend, "credit-pages").await;
    let store = stack.credits_of("ApiFunction");
    let mut ledger = CreditLedger::new("acct_p");
    for i in 0..230 {
        ledger
            .grant(&grant("acct_p", &format!("g{i:03}"), 100), t(1))
            .unwrap();
    }
    store.save(&ledger, 0).await.unwrap();
    let loaded = store.load("acct_p").await.unwrap();
    assert_eq!((loaded.version, loaded.ledger.entry_count()), (1, 230));
    assert_eq!(
        loaded.ledger.balance(Currency::USD).available,
        Decimal::new(23000, 2)
    );
    let mut seqs = Vec::new();
    let mut after = None;
    loop {
        let page = store.entries("acct_p", after.as_deref(), 100).await.unwrap();
        assert!(page.items.len() <= 100);
        seqs.extend(page.items.iter().map(|e| e.seq));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seqs, (1..=230).collect::<Vec<u64>>());
    assert!(matches!(
        store.entries("acct_p", Some("not-a-cursor"), 10).await,
        Err(StoreError::InvalidCursor(_))
    ));
}

fn d(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not a decimal string"))
        .parse()
        .unwrap()
}

/// A stack with the sample catalog and accounts `acct_a`, `acct_b` (USD), each with a daily
/// subscription whose open period holds now, so jobs can be quoted; and the API.
struct World {
    stack: Stack,
    api: api::Api,
    now: DateTime<Utc>,
}

impl World {
    async fn new(backend: Backend, test: &str) -> World {
        let stack = Stack::on(backend, test).await;
        let billing = stack.billing();
        billing.put_catalog(&sample::catalog()).await.unwrap();
        let now = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();
        let anchor = now.duration_trunc(Duration::hours(1)).unwrap() - Duration::hours(2);
        for account in ["acct_a", "acct_b"] {
            billing
                .put_account(&sample::account(account, Currency::USD))
                .await
                .unwrap();
            let plan = sample::subscription("x", account, Cadence::Daily, anchor).plan;
            let schedule =
                BillingSchedule::new(Cadence::Daily, Alignment::Anniversary, anchor, chrono_tz::UTC);
            let sub = BillingSubscription::new(&format!("sub_{account}"), account, schedule, plan).unwrap();
            billing.put_subscription(&sub).await.unwrap();
        }
        let api = stack.api();
        World { stack, api, now }
    }

    async fn call_as(
        &self,
        key: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
        at: DateTime<Utc>,
    ) -> (u16, Value) {
        let text = body.map(|b| b.to_string());
        let req = api_request(method, path, &[], text.as_deref());
        let req = with_key(req, key.unwrap_or(meterline_integration_tests::OPERATOR_KEY));
        let resp = self.api.handle(req, at).await;
        (resp.status().as_u16(), body_json(&resp))
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(None, method, path, body, self.now).await
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .api
            .handle(operator_request("GET", path, query, None), self.now)
            .await;
        (resp.status().as_u16(), body_json(&resp))
    }

    /// Asserts a response matches its schema in the served document, strictly.
    async fn conforms(&self, method: &str, path: &str, status: u16, body: &Value) {
        let (_, doc) = self.get("/openapi.json", &[]).await;
        let content = &doc["paths"][path][method]["responses"][status.to_string()]["content"];
        let schema = if content["application/json"].is_object() {
            schema::response_schema(&doc, path, method, &status.to_string())
        } else {
            content["application/problem+json"]["schema"].clone()
        };
        let problems = schema::violations(&doc, &schema, body);
        assert!(
            problems.is_empty(),
            "{method} {path} {status}: {problems:#?}\n{body}"
        );
    }

    async fn grant(&self, account: &str, id: &str, amount: &str) -> Value {
        let (status, body) = self
            .call(
                "POST",
                &format!("/v1/accounts/{account}/credit-grants"),
                Some(json!({"grant_id": id, "amount": amount, "currency": "USD", "kind": "paid"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    async fn balance(&self, account: &str) -> Value {
        let (status, body) = self
            .get(&format!("/v1/accounts/{account}/credit-balances"), &[])
            .await;
        assert_eq!(status, 200, "{body}");
        body["data"][0].clone()
    }

    async fn ledger_len(&self, account: &str) -> usize {
        let (status, body) = self
            .get(
                &format!("/v1/accounts/{account}/credit-ledger"),
                &[("limit", "100")],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["data"].as_array().unwrap().len()
    }
}

/// `granted = available + held + consumed + forfeited`, to the cent.
fn assert_balanced(b: &Value) {
    assert_eq!(
        d(&b["granted"]),
        d(&b["available"]) + d(&b["held"]) + d(&b["consumed"]) + d(&b["forfeited"]),
        "{b}"
    );
}

async fn grants_balances_and_the_ledger_by_route(backend: Backend) {
    let w = World::new(backend, "credit-routes").await;
    let first = w.grant("acct_a", "welcome", "100.00").await;
    w.conforms("post", "/v1/accounts/{account_id}/credit-grants", 201, &first)
        .await;
    // Amounts carry their currency's minor units.
    assert_eq!(
        (first["amount"].clone(), first["balance"]["held"].clone()),
        (json!("100.00"), json!("0.00"))
    );
    assert_eq!(
        (d(&first["balance"]["available"]), first["kind"].clone()),
        (Decimal::new(10000, 2), json!("paid"))
    );
    // The same grant again changes nothing; the same id for another grant is refused.
    assert_eq!(w.grant("acct_a", "welcome", "100.00").await, first);
    let (status, body) = w
        .call(
            "POST",
            "/v1/accounts/acct_a/credit-grants",
            Some(json!({"grant_id": "welcome", "amount": "5.00", "currency": "USD"})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(w.ledger_len("acct_a").await, 1);
    // Fields named; an unknown account is not found.
    let (status, body) = w
        .call(
            "POST",
            "/v1/accounts/acct_a/credit-grants",
            Some(json!({"grant_id": "g2", "amount": "1.005", "currency": "USD",
                "effective_at": "2030-01-02T00:00:00Z", "expires_at": "2030-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 400);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["amount", "expires_at"]);
    let (status, _) = w.grant_status("nobody").await;
    assert_eq!(status, 404);

    w.grant("acct_a", "promo", "20.00").await;
    let (status, list) = w.get("/v1/accounts/acct_a/credit-grants", &[]).await;
    assert_eq!(status, 200);
    w.conforms("get", "/v1/accounts/{account_id}/credit-grants", 200, &list)
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let (_, balances) = w.get("/v1/accounts/acct_a/credit-balances", &[]).await;
    w.conforms("get", "/v1/accounts/{account_id}/credit-balances", 200, &balances)
        .await;
    assert_eq!(balances["data"][0]["currency"], "USD");
    assert_eq!(d(&balances["data"][0]["available"]), Decimal::new(12000, 2));
    assert_balanced(&balances["data"][0]);

    // The ledger by page.
    let (status, page) = w
        .get("/v1/accounts/acct_a/credit-ledger", &[("limit", "1")])
        .await;
    assert_eq!(status, 200);
    w.conforms("get", "/v1/accounts/{account_id}/credit-ledger", 200, &page)
        .await;
    assert_eq!(page["data"][0]["seq"], 1);
    assert_eq!(
        page["data"][0]["cause"],
        json!({"type": "grant", "grant_id": "welcome"})
    );
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, second) = w
        .get(
            "/v1/accounts/acct_a/credit-ledger",
            &[("limit", "1"), ("cursor", &cursor)],
        )
        .await;
    assert_eq!(
        (second["data"][0]["seq"].clone(), second["next_cursor"].clone()),
        (json!(2), Value::Null)
    );
    let (status, body) = w
        .get(
            "/v1/accounts/acct_a/credit-ledger",
            &[("cursor", "bm90LWEtY3Vyc29y")],
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].clone()),
        (400, json!("cursor")),
        "{body}"
    );
    // Another account's ledger is its own.
    let (_, other) = w.get("/v1/accounts/acct_b/credit-ledger", &[]).await;
    assert_eq!(other["data"], json!([]));
}

impl World {
    async fn grant_status(&self, account: &str) -> (u16, Value) {
        self.call(
            "POST",
            &format!("/v1/accounts/{account}/credit-grants"),
            Some(json!({"grant_id": "g", "amount": "1.00", "currency": "USD"})),
        )
        .await
    }

    async fn authorize(&self, account: &str, body: Value) -> (u16, Value) {
        self.call(
            "POST",
            &format!("/v1/accounts/{account}/authorizations"),
            Some(body),
        )
        .await
    }
}

async fn an_authorization_holds_then_is_captured_once(backend: Backend) {
    let w = World::new(backend, "credit-auth").await;
    w.grant("acct_a", "prepaid", "100.00").await;
    let (status, hold) = w
        .authorize(
            "acct_a",
            json!({"hold_id": "h1", "job_id": "job_1", "max_amount": "30.00", "currency": "USD"}),
        )
        .await;
    assert_eq!(status, 201, "{hold}");
    w.conforms("post", "/v1/accounts/{account_id}/authorizations", 201, &hold)
        .await;
    assert_eq!(
        (hold["status"].clone(), d(&hold["held"])),
        (json!("open"), Decimal::new(3000, 2))
    );
    let balance = w.balance("acct_a").await;
    assert_eq!(
        (d(&balance["available"]), d(&balance["held"])),
        (Decimal::new(7000, 2), Decimal::new(3000, 2))
    );
    let (status, read) = w.get("/v1/accounts/acct_a/authorizations/h1", &[]).await;
    assert_eq!((status, &read), (200, &hold));
    w.conforms(
        "get",
        "/v1/accounts/{account_id}/authorizations/{hold_id}",
        200,
        &read,
    )
    .await;

    // More than the hold without saying so is refused; the capture charges the usage and
    // releases the rest; a repeat changes nothing.
    let capture = |amount: &str| json!({"amount": amount});
    let (status, body) = w
        .call(
            "POST",
            "/v1/accounts/acct_a/authorizations/h1/capture",
            Some(capture("30.01")),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, done) = w
        .call(
            "POST",
            "/v1/accounts/acct_a/authorizations/h1/capture",
            Some(capture("12.50")),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    w.conforms(
        "post",
        "/v1/accounts/{account_id}/authorizations/{hold_id}/capture",
        200,
        &done,
    )
    .await;
    assert_eq!(
        (done["status"].clone(), d(&done["captured"]["amount"])),
        (json!("captured"), Decimal::new(1250, 2))
    );
    let entries = w.ledger_len("acct_a").await;
    let (status, again) = w
        .call(
            "POST",
            "/v1/accounts/acct_a/authorizations/h1/capture",
            Some(capture("12.50")),
        )
        .await;
    assert_eq!(
        (status, &again),
        (200, &done),
        "a repeated capture answers as the first"
    );
    assert_eq!(w.ledger_len("acct_a").await, entries, "and writes nothing");
    let (status, _) = w
        .call(
            "POST",
            "/v1/accounts/acct_a/authorizations/h1/capture",
            Some(capture("13.00")),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = w
        .call("POST", "/v1/accounts/acct_a/authorizations/h1/release", None)
        .await;
    assert_eq!(status, 409);
    let balance = w.balance("acct_a").await;
    assert_eq!(
        (
            d(&balance["available"]),
            d(&balance["consumed"]),
            d(&balance["held"])
        ),
        (Decimal::new(8750, 2), Decimal::new(1250, 2), Decimal::ZERO)
    );
    assert_balanced(&balance);

    // Beyond the hold when the capture says so: the excess from the free balance.
    w.authorize(
        "acct_a",
        json!({"hold_id": "h2", "job_id": "job_2", "max_amount": "10.00", "currency": "USD"}),
    )
    .await;
    let (status, over) = w
        .call(
            "POST",
            "/v1/accounts/acct_a/authorizations/h2/capture",
            Some(json!({"amount": "15.00", "beyond_hold": true})),
        )
        .await;
    assert_eq!(status, 200, "{over}");
    assert_eq!(
        (d(&over["captured"]["amount"]), d(&over["captured"]["uncovered"])),
        (Decimal::new(1500, 2), Decimal::ZERO)
    );
    assert_eq!(d(&w.balance("acct_a").await["available"]), Decimal::new(7250, 2));

    // A release frees the hold, once.
    w.authorize(
        "acct_a",
        json!({"hold_id": "h3", "job_id": "job_3", "max_amount": "5.00"}),
    )
    .await;
    let (status, released) = w
        .call("POST", "/v1/accounts/acct_a/authorizations/h3/release", None)
        .await;
    assert_eq!(
        (status, released["status"].clone()),
        (200, json!("released")),
        "{released}"
    );
    w.conforms(
        "post",
        "/v1/accounts/{account_id}/authorizations/{hold_id}/release",
        200,
        &released,
    )
    .await;
    let (status, again) = w
        .call("POST", "/v1/accounts/acct_a/authorizations/h3/release", None)
        .await;
    assert_eq!((status, &again), (200, &released));
    assert_eq!(d(&w.balance("acct_a").await["available"]), Decimal::new(7250, 2));
    let (status, _) = w.get("/v1/accounts/acct_a/authorizations/nope", &[]).await;
    assert_eq!(status, 404);
}

async fn a_job_is_held_at_its_quote_and_a_shortfall_is_a_402(backend: Backend) {
    let w = World::new(backend, "credit-job").await;
    w.grant("acct_a", "prepaid", "1000.00").await;
    let job = json!({"provider_id": "prov_000", "start": (w.now + Duration::minutes(5)).to_rfc3339(),
        "duration_seconds": 3600, "gpus": 2, "gpu_model": "A100", "vcpus": "8"});
    let (status, quote) = w
        .call(
            "POST",
            "/v1/estimates/job",
            Some(json!({"account_id": "acct_a", "job": job})),
        )
        .await;
    assert_eq!(status, 200, "{quote}");
    let options = quote["quote"]["options"].as_array().unwrap();
    let billed = options
        .iter()
        .find(|o| o["model"] == "subscription")
        .or_else(|| options.iter().find(|o| o["model"] == "pay_per_use"))
        .unwrap();
    let (status, hold) = w
        .authorize(
            "acct_a",
            json!({"hold_id": "train", "job_id": "job_train", "job": job}),
        )
        .await;
    assert_eq!(status, 201, "{hold}");
    let total = d(&billed["total"]);
    assert_eq!(
        d(&hold["amount"]),
        total.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::AwayFromZero)
    );
    assert!(d(&hold["amount"]) > Decimal::ZERO);
    assert_eq!(
        (hold["provider_id"].clone(), hold["meters"].clone()),
        (json!("prov_000"), json!(["cpu_seconds", "gpu_seconds"]))
    );
    // The hold lasts the job and an hour.
    let expires: DateTime<Utc> = hold["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires, w.now + Duration::minutes(5) + Duration::hours(2));

    // What is left is not enough for a second, larger job: 402 naming the shortfall.
    let available = d(&w.balance("acct_a").await["available"]);
    let asked = available + Decimal::new(1, 2);
    let (status, problem) = w
        .authorize("acct_a", json!({"hold_id": "big", "job_id": "job_big", "max_amount": asked.to_string(), "currency": "USD"}))
        .await;
    assert_eq!(status, 402, "{problem}");
    w.conforms("post", "/v1/accounts/{account_id}/authorizations", 402, &problem)
        .await;
    assert_eq!(
        (
            d(&problem["needed"]),
            d(&problem["available"]),
            d(&problem["shortfall"]),
            problem["currency"].clone()
        ),
        (asked, available, Decimal::new(1, 2), json!("USD"))
    );
    assert_eq!(problem["errors"][0]["field"], "amount");
    let (status, _) = w.get("/v1/accounts/acct_a/authorizations/big", &[]).await;
    assert_eq!(status, 404, "a refused hold is not recorded");
    // A job that uses nothing cannot be priced: the field is named, nothing is held.
    let idle = json!({"provider_id": "prov_000", "start": (w.now + Duration::minutes(5)).to_rfc3339(), "duration_seconds": 60});
    let (status, body) = w
        .authorize("acct_a", json!({"hold_id": "idle", "job_id": "j", "job": idle}))
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].clone()),
        (400, json!("job")),
        "{body}"
    );
    let (status, _) = w.get("/v1/accounts/acct_a/authorizations/idle", &[]).await;
    assert_eq!(status, 404);
}

async fn two_authorizations_race_for_the_last_credit(backend: Backend) {
    let w = World::new(backend, "credit-race").await;
    w.grant("acct_a", "last", "10.00").await;
    let hold = |id: &str| json!({"hold_id": id, "job_id": id, "max_amount": "8.00", "currency": "USD"});
    let (a, b) = tokio::join!(
        w.authorize("acct_a", hold("r1")),
        w.authorize("acct_a", hold("r2"))
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 402], "{a:?} {b:?}");
    let balance = w.balance("acct_a").await;
    assert_eq!(
        (d(&balance["held"]), d(&balance["available"])),
        (Decimal::new(800, 2), Decimal::new(200, 2))
    );
    assert_balanced(&balance);
    assert_eq!(w.ledger_len("acct_a").await, 2, "one grant, one hold");
}

async fn a_capture_races_a_release_and_an_expiry(backend: Backend) {
    let w = World::new(backend, "credit-capture-race").await;
    w.grant("acct_a", "prepaid", "50.00").await;
    let hold = |id: &str| json!({"hold_id": id, "job_id": id, "max_amount": "20.00", "currency": "USD", "expires_in_seconds": 60});
    // Capture against release: one of them closes the hold, the other is refused.
    w.authorize("acct_a", hold("c1")).await;
    let (capture, release) = tokio::join!(
        w.call(
            "POST",
            "/v1/accounts/acct_a/authorizations/c1/capture",
            Some(json!({"amount": "5.00"}))
        ),
        w.call("POST", "/v1/accounts/acct_a/authorizations/c1/release", None)
    );
    let mut statuses = [capture.0, release.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{capture:?} {release:?}");
    let (_, c1) = w.get("/v1/accounts/acct_a/authorizations/c1", &[]).await;
    let consumed = if capture.0 == 200 {
        Decimal::new(500, 2)
    } else {
        Decimal::ZERO
    };
    assert_eq!(
        c1["status"],
        if capture.0 == 200 { "captured" } else { "released" }
    );
    let balance = w.balance("acct_a").await;
    assert_eq!(
        (d(&balance["consumed"]), d(&balance["held"])),
        (consumed, Decimal::ZERO)
    );
    assert_balanced(&balance);

    // Capture against expiry: a capture at or after the hold's expiry finds it expired.
    w.authorize("acct_a", hold("c2")).await;
    let expiry = w.now + Duration::seconds(60);
    let (status, body) = w
        .call_as(
            None,
            "POST",
            "/v1/accounts/acct_a/authorizations/c2/capture",
            Some(json!({"amount": "5.00"})),
            expiry,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (_, c2) = w.get("/v1/accounts/acct_a/authorizations/c2", &[]).await;
    assert_eq!(c2["status"], "expired");
    // And a capture just before the expiry racing a read just after it: whichever the ledger
    // records first decides, and the balance adds up either way.
    w.authorize("acct_a", hold("c3")).await;
    let path = "/v1/accounts/acct_a/authorizations/c3";
    let capture_path = format!("{path}/capture");
    let (capture, read) = tokio::join!(
        w.call_as(
            None,
            "POST",
            &capture_path,
            Some(json!({"amount": "5.00"})),
            expiry - Duration::seconds(1)
        ),
        w.call_as(None, "GET", path, None, expiry + Duration::seconds(1))
    );
    assert_eq!(read.0, 200);
    let (_, c3) = w.get(path, &[]).await;
    match capture.0 {
        200 => assert_eq!(c3["status"], "captured"),
        409 => assert_eq!(c3["status"], "expired"),
        s => panic!("capture answered {s}: {}", capture.1),
    }
    let balance = w.balance("acct_a").await;
    assert_eq!(d(&balance["held"]), Decimal::ZERO);
    assert_balanced(&balance);
    let _ = &w.stack;
}

async fn a_tenant_sees_and_changes_only_its_own_credit(backend: Backend) {
    let w = World::new(backend, "credit-tenants").await;
    w.grant("acct_b", "theirs", "10.00").await;
    w.authorize(
        "acct_b",
        json!({"hold_id": "hb", "job_id": "jb", "max_amount": "5.00", "currency": "USD"}),
    )
    .await;
    let (status, body) = w
        .call(
            "POST",
            "/v1/api-keys",
            Some(json!({"role": "customer", "account_id": "acct_a"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let key = body["key"].as_str().unwrap().to_string();
    // Their hold is not under the customer's account, nor their account under the customer.
    for path in [
        "/v1/accounts/acct_a/authorizations/hb",
        "/v1/accounts/acct_b/authorizations/hb",
        "/v1/accounts/acct_b/credit-balances",
    ] {
        let (status, _) = w.call_as(Some(&key), "GET", path, None, w.now).await;
        assert_eq!(status, 404, "{path}");
    }
    // A customer may authorize its own jobs but not grant, capture or release.
    w.grant("acct_a", "mine", "10.00").await;
    let (status, body) = w
        .call_as(
            Some(&key),
            "POST",
            "/v1/accounts/acct_a/authorizations",
            Some(json!({"hold_id": "ha", "job_id": "ja", "max_amount": "5.00", "currency": "USD"})),
            w.now,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for (path, body) in [
        (
            "/v1/accounts/acct_a/credit-grants",
            Some(json!({"grant_id": "free", "amount": "1000.00", "currency": "USD"})),
        ),
        (
            "/v1/accounts/acct_a/authorizations/ha/capture",
            Some(json!({"amount": "0"})),
        ),
        ("/v1/accounts/acct_a/authorizations/ha/release", None),
    ] {
        let (status, _) = w.call_as(Some(&key), "POST", path, body, w.now).await;
        assert_eq!(status, 403, "{path}");
    }
    // An Idempotency-Key replays the first answer of an authorization.
    let body = json!({"hold_id": "hk", "job_id": "jk", "max_amount": "1.00", "currency": "USD"}).to_string();
    let req = || {
        with_header(
            operator_request("POST", "/v1/accounts/acct_a/authorizations", &[], Some(&body)),
            "idempotency-key",
            "auth-1",
        )
    };
    let first = w.api.handle(req(), w.now).await;
    let second = w.api.handle(req(), w.now + Duration::seconds(5)).await;
    assert_eq!(
        (first.status().as_u16(), body_json(&first)),
        (second.status().as_u16(), body_json(&second))
    );
}

on_both_backends!(
    a_save_against_a_stale_version_is_a_conflict,
    a_save_of_many_entries_is_stored_whole_and_read_by_page,
    grants_balances_and_the_ledger_by_route,
    an_authorization_holds_then_is_captured_once,
    a_job_is_held_at_its_quote_and_a_shortfall_is_a_402,
    two_authorizations_race_for_the_last_credit,
    a_capture_races_a_release_and_an_expiry,
    a_tenant_sees_and_changes_only_its_own_credit,
);
