//! Invoices after the close, through the real API handler against the local endpoint and in memory (each test but the
//! EventBridge one runs on both): cycles
//! closed by the real scheduler and worker, then listed, filtered and paged; voided, marked paid
//! and credited exactly once; provider statements by provider key; the tax report as JSON and
//! CSV; other tenants' ids are 404 and operator actions 403 for tenant keys.

use chrono::{DateTime, Duration, DurationRound, Utc};
use meterline_integration_tests::{
    api_request, on_both_backends, operator_request, with_key, Backend, Stack,
};
use meterline_shared::domain::billing::{sample, Alignment, BillingSchedule, BillingSubscription, Cadence};
use meterline_shared::domain::meter::Meter;
use meterline_shared::domain::money::{Currency, Money};
use meterline_shared::domain::usage::UsageEvent;
use meterline_shared::ports::billing::BillingStore;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::sync::Arc;

#[path = "support/schema.rs"]
mod schema;

type Api = api::Api;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn dec(v: &Value) -> Decimal {
    d(v.as_str().unwrap_or_else(|| panic!("not a decimal string: {v}")))
}

fn ev(id: &str, account: &str, provider: &str, meter: Meter, q: &str, at: DateTime<Utc>) -> UsageEvent {
    UsageEvent {
        id: id.into(),
        account_id: account.into(),
        provider_id: provider.into(),
        job_id: "job".into(),
        meter,
        quantity: q.parse().unwrap(),
        timestamp: at,
        dimensions: [("gpu_model".to_string(), "A100".to_string())].into(),
    }
}

/// Two accounts with three closed daily periods each: acct_a used prov_000 (GPU) and prov_001
/// (CPU) on days 0 and 2, nothing on day 1; acct_b used prov_000 on day 0 and starts with a
/// 5.00 credit balance.
struct Closed {
    stack: Stack,
    api: Api,
    store: Arc<dyn BillingStore>,
    anchor: DateTime<Utc>,
}

async fn closed(backend: Backend, test: &str) -> Closed {
    let stack = Stack::on(backend, test).await;
    let store = stack.billing();
    let anchor = Utc::now().duration_trunc(Duration::hours(1)).unwrap() - Duration::days(3);
    store.put_catalog(&sample::catalog()).await.unwrap();
    for account in ["acct_a", "acct_b"] {
        let mut acct = sample::account(account, Currency::USD);
        if account == "acct_b" {
            acct.credit_balance = Money::new(d("5.00"), Currency::USD);
        }
        store.put_account(&acct).await.unwrap();
        let plan = sample::subscription("x", account, Cadence::Daily, anchor).plan;
        let schedule = BillingSchedule::new(Cadence::Daily, Alignment::Anniversary, anchor, chrono_tz::UTC);
        let sub = BillingSubscription::new(&format!("sub_{account}"), account, schedule, plan).unwrap();
        store.put_subscription(&sub).await.unwrap();
    }
    let h = Duration::hours(2);
    let events = vec![
        ev("a0g", "acct_a", "prov_000", Meter::GpuSeconds, "3600", anchor + h),
        ev("a0c", "acct_a", "prov_001", Meter::CpuSeconds, "7200", anchor + h),
        ev(
            "a2g",
            "acct_a",
            "prov_000",
            Meter::GpuSeconds,
            "7200",
            anchor + Duration::days(2) + h,
        ),
        ev("b0g", "acct_b", "prov_000", Meter::GpuSeconds, "1800", anchor + h),
    ];
    let ingestor = stack.ingestor();
    let resp = ingestor
        .handle(
            meterline_integration_tests::sqs_event(&[("m0".into(), serde_json::to_string(&events).unwrap())]),
            Utc::now(),
        )
        .await;
    assert!(resp.batch_item_failures.is_empty());

    assert_eq!(stack.close_due(Utc::now()).await, 2);
    let api = stack.api();
    Closed {
        store: stack.billing(),
        api,
        stack,
        anchor,
    }
}

impl Closed {
    async fn call(
        &self,
        key: Option<&str>,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        let req = match key {
            None => operator_request(method, path, query, body.as_deref()),
            Some(k) => with_key(api_request(method, path, query, body.as_deref()), k),
        };
        let resp = self.api.handle(req, Utc::now()).await;
        let status = resp.status().as_u16();
        let v = match resp.body() {
            lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::String(t.clone())),
            _ => Value::Null,
        };
        (status, v)
    }

    async fn op(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call(None, method, path, query, body).await
    }

    async fn key(&self, body: Value) -> String {
        let (status, v) = self.op("POST", "/v1/api-keys", &[], Some(body)).await;
        assert_eq!(status, 201, "{v}");
        v["key"].as_str().unwrap().to_string()
    }

    /// Every page of a list, following `next_cursor`.
    async fn all_pages(&self, key: Option<&str>, path: &str, query: &[(&str, &str)]) -> (Vec<Value>, usize) {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut q: Vec<(&str, &str)> = query.to_vec();
            if let Some(c) = &cursor {
                q.push(("cursor", c));
            }
            let (status, v) = self.call(key, "GET", path, &q, None).await;
            assert_eq!(status, 200, "{v}");
            pages += 1;
            out.extend(v["data"].as_array().unwrap().iter().cloned());
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return (out, pages),
            }
            assert!(pages < 50);
        }
    }

    async fn invoice(&self, account: &str, id: &str) -> Value {
        let (status, v) = self
            .op("GET", &format!("/v1/accounts/{account}/invoices/{id}"), &[], None)
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }

    fn id(&self, account: &str, day: i64) -> String {
        meterline_shared::domain::billing::invoice_id(
            account,
            &format!("sub_{account}"),
            self.anchor + Duration::days(day),
        )
    }
}

fn ids(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|i| i["invoice_id"].as_str().unwrap().to_string())
        .collect()
}

async fn invoices_list_filter_page_and_get_within_their_account(backend: Backend) {
    let c = closed(backend, "invoices-list").await;
    let customer = c.key(json!({"role": "customer", "account_id": "acct_a"})).await;
    let (status, v) = c
        .call(Some(&customer), "GET", "/v1/accounts/acct_a/invoices", &[], None)
        .await;
    assert_eq!(status, 200, "{v}");
    let all = v["data"].as_array().unwrap().clone();
    assert_eq!(
        ids(&all),
        vec![c.id("acct_a", 0), c.id("acct_a", 1), c.id("acct_a", 2)]
    );
    assert!(v["next_cursor"].is_null());
    assert!(all
        .iter()
        .all(|i| i.get("lines").is_none() && i["status"] == "open"));
    let totals: Vec<Decimal> = all.iter().map(|i| dec(&i["total"])).collect();
    assert!(totals[1] < totals[0] && totals[1] < totals[2], "{totals:?}");

    // One per page: the same invoices in the same order.
    let (paged, pages) = c
        .all_pages(Some(&customer), "/v1/accounts/acct_a/invoices", &[("limit", "1")])
        .await;
    assert_eq!(ids(&paged), ids(&all));
    assert!(pages >= 3);
    // A filter that drops the middle invoice still pages to the last one.
    let min = totals[0].min(totals[2]).to_string();
    let (filtered, _) = c
        .all_pages(
            Some(&customer),
            "/v1/accounts/acct_a/invoices",
            &[("limit", "1"), ("min_total", &min)],
        )
        .await;
    assert_eq!(ids(&filtered), vec![c.id("acct_a", 0), c.id("acct_a", 2)]);
    let max = totals[1].to_string();
    let (cheap, _) = c
        .all_pages(None, "/v1/accounts/acct_a/invoices", &[("max_total", &max)])
        .await;
    assert_eq!(ids(&cheap), vec![c.id("acct_a", 1)]);
    let from = (c.anchor + Duration::days(1)).to_rfc3339();
    let to = (c.anchor + Duration::days(2)).to_rfc3339();
    let (later, _) = c
        .all_pages(
            None,
            "/v1/accounts/acct_a/invoices",
            &[("period_from", &from), ("status", "open,paid")],
        )
        .await;
    assert_eq!(ids(&later), vec![c.id("acct_a", 1), c.id("acct_a", 2)]);
    let (window, _) = c
        .all_pages(
            None,
            "/v1/accounts/acct_a/invoices",
            &[("period_from", &from), ("period_to", &to)],
        )
        .await;
    assert_eq!(ids(&window), vec![c.id("acct_a", 1)]);
    let (none, _) = c
        .all_pages(None, "/v1/accounts/acct_a/invoices", &[("status", "void")])
        .await;
    assert!(none.is_empty());

    // Across accounts (operators): by issue time, filtered, paged through every shard.
    let (every, _) = c.all_pages(None, "/v1/invoices", &[("limit", "2")]).await;
    let mut got = ids(&every);
    got.sort();
    let mut want: Vec<String> = ["acct_a", "acct_b"]
        .iter()
        .flat_map(|a| (0..3).map(|day| c.id(a, day)))
        .collect();
    want.sort();
    assert_eq!(got, want);
    let issued: Vec<&str> = every.iter().map(|i| i["issued_at"].as_str().unwrap()).collect();
    assert!(issued.windows(2).all(|w| w[0] <= w[1]), "{issued:?}");
    let (big, _) = c
        .all_pages(None, "/v1/invoices", &[("limit", "1"), ("min_total", &min)])
        .await;
    assert!(big.iter().all(|i| dec(&i["total"]) >= d(&min)));
    assert!(ids(&big).contains(&c.id("acct_a", 0)) && ids(&big).contains(&c.id("acct_a", 2)));
    assert!(!ids(&big).contains(&c.id("acct_a", 1)));
    let (status, _) = c.call(Some(&customer), "GET", "/v1/invoices", &[], None).await;
    assert_eq!(status, 403);
    let (status, p) = c
        .op(
            "GET",
            "/v1/invoices",
            &[
                ("issued_from", "2020-01-01T00:00:00Z"),
                ("issued_to", "2026-01-01T00:00:00Z"),
            ],
            None,
        )
        .await;
    assert_eq!(
        (status, p["errors"][0]["field"].as_str()),
        (400, Some("issued_to"))
    );
    let (status, none) = c
        .op(
            "GET",
            "/v1/invoices",
            &[
                ("issued_from", "2020-01-01T00:00:00Z"),
                ("issued_to", "2020-02-01T00:00:00Z"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(none["data"], json!([]));

    // Bad parameters are 400 problems naming the parameter.
    for (k, v) in [
        ("status", "opened"),
        ("limit", "101"),
        ("limit", "0"),
        ("min_total", "lots"),
        ("period_from", "2026-13-01"),
        ("cursor", "!!"),
    ] {
        let (status, p) = c.op("GET", "/v1/accounts/acct_a/invoices", &[(k, v)], None).await;
        assert_eq!(status, 400, "{k}={v}: {p}");
        assert_eq!(p["errors"][0]["field"], k, "{p}");
    }

    // Get with lines; provider statements for operators only.
    let path = format!("/v1/accounts/acct_a/invoices/{}", c.id("acct_a", 0));
    let (status, mine) = c.call(Some(&customer), "GET", &path, &[], None).await;
    assert_eq!(status, 200);
    assert!(!mine["lines"].as_array().unwrap().is_empty());
    assert!(mine.get("statements").is_none());
    assert_eq!(dec(&mine["total"]), totals[0]);
    let op = c.invoice("acct_a", &c.id("acct_a", 0)).await;
    assert!(op["statements"]["statements"].is_array());

    // Another account's invoices are 404 for this customer, like missing ones.
    let (status, theirs) = c
        .call(Some(&customer), "GET", "/v1/accounts/acct_b/invoices", &[], None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = c
        .call(
            Some(&customer),
            "GET",
            &format!("/v1/accounts/acct_b/invoices/{}", c.id("acct_b", 0)),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = c
        .call(
            Some(&customer),
            "GET",
            "/v1/accounts/acct_b/credit-notes",
            &[],
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(theirs["status"], 404);
    let (status, _) = c
        .op("GET", "/v1/accounts/acct_a/invoices/inv_nope", &[], None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = c.op("GET", "/v1/accounts/nobody/invoices", &[], None).await;
    assert_eq!(status, 404);
    // Operator actions are 403 for a customer key, even on its own invoices.
    for action in ["void", "mark-paid", "credit-notes"] {
        let (status, _) = c
            .call(
                Some(&customer),
                "POST",
                &format!("{path}/{action}"),
                &[],
                Some(json!({})),
            )
            .await;
        assert_eq!(status, 403, "{action}");
    }
}

async fn void_mark_paid_and_credit_notes_change_an_invoice_once(backend: Backend) {
    let c = closed(backend, "invoices-change").await;
    let (a0, a1, a2) = (c.id("acct_a", 0), c.id("acct_a", 1), c.id("acct_a", 2));
    let base = "/v1/accounts/acct_a/invoices";

    // Mark paid: the same payment id twice is one payment.
    let before = dec(&c.invoice("acct_a", &a0).await["outstanding"]);
    let pay = json!({"payment_id": "wire-1", "amount": "1.00"});
    let (status, first) = c
        .op("POST", &format!("{base}/{a0}/mark-paid"), &[], Some(pay.clone()))
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["duplicate"], false);
    let (status, again) = c
        .op("POST", &format!("{base}/{a0}/mark-paid"), &[], Some(pay))
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["duplicate"], true);
    let after = c.invoice("acct_a", &a0).await;
    assert_eq!(dec(&after["outstanding"]), before - d("1.00"));
    assert_eq!(after["status"], "open");
    // Invalid payments name the field.
    let over = (before + d("1")).to_string();
    let (status, p) = c
        .op(
            "POST",
            &format!("{base}/{a0}/mark-paid"),
            &[],
            Some(json!({"payment_id": "wire-2", "amount": over})),
        )
        .await;
    assert_eq!(
        (status, p["errors"][0]["field"].as_str()),
        (422, Some("amount")),
        "{p}"
    );
    let (status, p) = c
        .op(
            "POST",
            &format!("{base}/{a0}/mark-paid"),
            &[],
            Some(json!({"amount": "1.00"})),
        )
        .await;
    assert_eq!(
        (status, p["errors"][0]["field"].as_str()),
        (400, Some("payment_id")),
        "{p}"
    );
    let (status, p) = c
        .op(
            "POST",
            &format!("{base}/{a0}/mark-paid"),
            &[],
            Some(json!({"payment_id": "w", "extra": 1})),
        )
        .await;
    assert_eq!(
        (status, p["errors"][0]["field"].as_str()),
        (400, Some("extra")),
        "{p}"
    );

    // A partly paid invoice cannot be voided; an unpaid one can, once (a repeat changes nothing).
    let (status, p) = c.op("POST", &format!("{base}/{a0}/void"), &[], None).await;
    assert_eq!(status, 409, "{p}");
    let (status, v) = c.op("POST", &format!("{base}/{a1}/void"), &[], None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "void");
    assert_eq!(dec(&v["outstanding"]), Decimal::ZERO);
    let (status, again) = c.op("POST", &format!("{base}/{a1}/void"), &[], None).await;
    assert_eq!((status, &again), (200, &v));
    let (status, _) = c
        .op(
            "POST",
            &format!("{base}/{a1}/mark-paid"),
            &[],
            Some(json!({"payment_id": "late"})),
        )
        .await;
    assert_eq!(status, 409);
    // Voiding returns the credit the invoice consumed to the account's balance.
    let b0 = c.id("acct_b", 0);
    let b_inv = c.invoice("acct_b", &b0).await;
    let consumed = dec(&b_inv["credit_applied"]);
    assert!(consumed > Decimal::ZERO, "{b_inv}");
    let balance =
        |acct: Option<meterline_shared::domain::billing::Account>| acct.unwrap().credit_balance.amount;
    let left = balance(c.store.account("acct_b").await.unwrap());
    let (status, _) = c
        .op(
            "POST",
            &format!("/v1/accounts/acct_b/invoices/{b0}/void"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(balance(c.store.account("acct_b").await.unwrap()), left + consumed);
    let (status, _) = c
        .op(
            "POST",
            &format!("/v1/accounts/acct_b/invoices/{b0}/void"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(balance(c.store.account("acct_b").await.unwrap()), left + consumed);

    // Credit notes: over-credit is 422 naming `amount`; one note per id.
    let inv2 = c.invoice("acct_a", &a2).await;
    let total = dec(&inv2["total"]);
    let out2 = dec(&inv2["outstanding"]);
    let path = format!("{base}/{a2}/credit-notes");
    let (status, p) = c
        .op(
            "POST",
            &path,
            &[],
            Some(json!({"amount": (total + d("0.01")).to_string()})),
        )
        .await;
    assert_eq!(
        (status, p["errors"][0]["field"].as_str()),
        (422, Some("amount")),
        "{p}"
    );
    let (status, p) = c
        .op(
            "POST",
            &path,
            &[],
            Some(json!({"amount": "1.00", "reason": "because"})),
        )
        .await;
    assert_eq!(
        (status, p["errors"][0]["field"].as_str()),
        (400, Some("reason")),
        "{p}"
    );
    let note =
        json!({"amount": "2.00", "reason": "order_change", "memo": "goodwill", "credit_note_id": "cn1"});
    let (status, n1) = c.op("POST", &path, &[], Some(note.clone())).await;
    assert_eq!(status, 201, "{n1}");
    assert_eq!(n1["kind"], "manual");
    let (status, n2) = c.op("POST", &path, &[], Some(note)).await;
    assert_eq!(status, 200);
    assert_eq!(n2["credit_note_id"], n1["credit_note_id"]);
    assert_eq!(
        dec(&c.invoice("acct_a", &a2).await["outstanding"]),
        out2 - d("2.00")
    );
    // All that can still be credited is total - 2.00.
    let (status, p) = c
        .op(
            "POST",
            &path,
            &[],
            Some(json!({"amount": (total - d("1.99")).to_string(), "credit_note_id": "cn2"})),
        )
        .await;
    assert_eq!(status, 422, "{p}");
    // A credited invoice cannot be voided.
    let (status, _) = c.op("POST", &format!("{base}/{a2}/void"), &[], None).await;
    assert_eq!(status, 409);

    // Paying the rest marks the invoice paid; a credit note on a paid invoice is account credit.
    let (status, v) = c
        .op(
            "POST",
            &format!("{base}/{a0}/mark-paid"),
            &[],
            Some(json!({"payment_id": "wire-3"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["invoice"]["status"], "paid");
    let before = balance(c.store.account("acct_a").await.unwrap());
    let (status, _) = c
        .op(
            "POST",
            &format!("{base}/{a0}/credit-notes"),
            &[],
            Some(json!({"amount": "1.00", "credit_note_id": "cn3"})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        balance(c.store.account("acct_a").await.unwrap()),
        before + d("1.00")
    );
    assert_eq!(c.invoice("acct_a", &a0).await["status"], "paid");

    // Lists: per invoice and per account, for the customer too.
    let customer = c.key(json!({"role": "customer", "account_id": "acct_a"})).await;
    let (per_invoice, _) = c.all_pages(Some(&customer), &path, &[]).await;
    assert_eq!(per_invoice.len(), 1);
    let (per_account, pages) = c
        .all_pages(
            Some(&customer),
            "/v1/accounts/acct_a/credit-notes",
            &[("limit", "1")],
        )
        .await;
    assert_eq!(per_account.len(), 2);
    assert!(pages >= 2);

    // One note by id (each `#` as `%23`), for the customer; another tenant's key gets a 404.
    let note_id = n1["credit_note_id"].as_str().unwrap();
    let note_path = format!("/v1/accounts/acct_a/credit-notes/{}", note_id.replace('#', "%23"));
    let (status, one) = c.call(Some(&customer), "GET", &note_path, &[], None).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one, n1);
    let other = c.key(json!({"role": "customer", "account_id": "acct_b"})).await;
    let (status, _) = c.call(Some(&other), "GET", &note_path, &[], None).await;
    assert_eq!(status, 404);
    let (status, _) = c
        .call(
            Some(&other),
            "GET",
            &note_path.replace("acct_a", "acct_b"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, p) = c
        .call(
            Some(&customer),
            "GET",
            "/v1/accounts/acct_a/credit-notes/cn%2F1",
            &[],
            None,
        )
        .await;
    assert_eq!(
        (status, p["errors"][0]["field"].as_str()),
        (400, Some("credit_note_id"))
    );
}

async fn provider_statements_by_provider_key_and_the_tax_report(backend: Backend) {
    let c = closed(backend, "invoices-statements").await;
    let prov = c
        .key(json!({"role": "provider", "provider_id": "prov_000"}))
        .await;
    let other = c
        .key(json!({"role": "provider", "provider_id": "prov_001"}))
        .await;
    let (entries, _) = c
        .all_pages(
            Some(&prov),
            "/v1/providers/prov_000/statements",
            &[("limit", "1")],
        )
        .await;
    // prov_000 was used on acct_a's days 0 and 2 and acct_b's day 0.
    let mut got = ids(&entries);
    got.sort();
    let mut want = vec![c.id("acct_a", 0), c.id("acct_a", 2), c.id("acct_b", 0)];
    want.sort();
    assert_eq!(got, want);
    assert!(entries.iter().all(|e| e.get("account_id").is_none()));
    let first = &entries[0];
    let sid = first["statement_id"].as_str().unwrap();
    let (status, one) = c
        .call(
            Some(&prov),
            "GET",
            &format!("/v1/providers/prov_000/statements/{sid}"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["statement"], first["statement"]);
    assert_eq!(one["voided"], false);
    // Its payout and fee add up to what it billed.
    let st = &one["statement"];
    assert_eq!(
        dec(&st["payout"]["amount"]) + dec(&st["marketplace_fee"]["amount"]),
        dec(&st["usage_billed"]["amount"])
    );
    // Another provider's statements are 404 for this key.
    let (status, _) = c
        .call(
            Some(&other),
            "GET",
            "/v1/providers/prov_000/statements",
            &[],
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = c
        .call(
            Some(&other),
            "GET",
            &format!("/v1/providers/prov_000/statements/{sid}"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = c
        .call(
            Some(&prov),
            "GET",
            "/v1/providers/prov_000/statements/20200101T000000.000Z:inv_x",
            &[],
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, p) = c
        .call(
            Some(&prov),
            "GET",
            "/v1/providers/prov_000/statements/nonsense",
            &[],
            None,
        )
        .await;
    assert_eq!(
        (status, p["errors"][0]["field"].as_str()),
        (400, Some("statement_id"))
    );
    // A period filter: periods ending after day 1 (acct_a's day 2 only).
    let from = (c.anchor + Duration::days(2)).to_rfc3339();
    let (late, _) = c
        .all_pages(
            Some(&prov),
            "/v1/providers/prov_000/statements",
            &[("period_from", &from)],
        )
        .await;
    assert_eq!(ids(&late), vec![c.id("acct_a", 2)]);

    // Voiding an invoice marks its statement entries.
    let b0 = c.id("acct_b", 0);
    let (status, _) = c
        .op(
            "POST",
            &format!("/v1/accounts/acct_b/invoices/{b0}/void"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (entries, _) = c
        .all_pages(Some(&prov), "/v1/providers/prov_000/statements", &[])
        .await;
    let voided: Vec<&Value> = entries.iter().filter(|e| e["voided"] == true).collect();
    assert_eq!(voided.len(), 1);
    assert_eq!(voided[0]["invoice_id"], b0.as_str());

    // The tax report: the sums over the finalized invoices issued in the range (void excluded).
    let from = (Utc::now() - Duration::days(1)).to_rfc3339();
    let to = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let (status, report) = c
        .op("GET", "/v1/reports/tax", &[("from", &from), ("to", &to)], None)
        .await;
    assert_eq!(status, 200, "{report}");
    let mut want_net = Decimal::ZERO;
    let mut want_tax = Decimal::ZERO;
    let mut count = 0;
    for account in ["acct_a", "acct_b"] {
        for day in 0..3 {
            let inv = c.invoice(account, &c.id(account, day)).await;
            if inv["status"] != "void" {
                want_net += dec(&inv["net_total"]);
                want_tax += dec(&inv["tax_total"]);
                count += 1;
            }
        }
    }
    assert_eq!(report["invoices"], count);
    let rows = report["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    let net: Decimal = rows.iter().map(|r| dec(&r["taxable"])).sum();
    let tax: Decimal = rows.iter().map(|r| dec(&r["tax"])).sum();
    assert_eq!((net, tax), (want_net, want_tax), "{report}");
    assert!(want_tax > Decimal::ZERO);
    let de = rows.iter().find(|r| r["jurisdiction"] == "DE").expect("a DE row");
    assert_eq!(
        (de["rate"].as_str(), de["currency"].as_str()),
        (Some("0.19"), Some("USD"))
    );
    assert_eq!(report["totals"][0]["tax"].as_str().map(d), Some(want_tax));

    // The same as CSV, by Accept header and by parameter.
    let mut req = operator_request("GET", "/v1/reports/tax", &[("from", &from), ("to", &to)], None);
    req.headers_mut().insert("accept", "text/csv".parse().unwrap());
    let resp = c.api.handle(req, Utc::now()).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = match resp.body() {
        lambda_http::Body::Text(t) => t.clone(),
        other => panic!("{other:?}"),
    };
    let (_, by_param) = c
        .op(
            "GET",
            "/v1/reports/tax",
            &[("from", &from), ("to", &to), ("format", "csv")],
            None,
        )
        .await;
    assert_eq!(by_param.as_str(), Some(csv.as_str()));
    let lines: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(
        lines[0],
        "currency,jurisdiction,rate,treatment,taxable,tax,invoices"
    );
    assert_eq!(lines.len(), rows.len() + 1);
    for (line, row) in lines[1..].iter().zip(rows) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[0], row["currency"]);
        assert_eq!(d(f[4]), dec(&row["taxable"]));
        assert_eq!(f[5], row["tax"].as_str().unwrap(), "two decimals, as USD has");
    }

    // Report parameters and who may ask.
    let (status, p) = c.op("GET", "/v1/reports/tax", &[("to", &to)], None).await;
    assert_eq!((status, p["errors"][0]["field"].as_str()), (400, Some("from")));
    let (status, p) = c
        .op("GET", "/v1/reports/tax", &[("from", &to), ("to", &from)], None)
        .await;
    assert_eq!((status, p["errors"][0]["field"].as_str()), (400, Some("to")));
    let (status, p) = c
        .op(
            "GET",
            "/v1/reports/tax",
            &[("from", &from), ("to", &to), ("format", "xml")],
            None,
        )
        .await;
    assert_eq!((status, p["errors"][0]["field"].as_str()), (400, Some("format")));
    let (status, _) = c
        .call(
            Some(&prov),
            "GET",
            "/v1/reports/tax",
            &[("from", &from), ("to", &to)],
            None,
        )
        .await;
    assert_eq!(status, 403);
    let _ = &c.stack;
}

async fn racing_credit_notes_and_voids_never_over_credit_or_lose_a_write(backend: Backend) {
    let c = closed(backend, "invoices-race").await;
    let (a0, a2) = (c.id("acct_a", 0), c.id("acct_a", 2));
    let base = "/v1/accounts/acct_a/invoices";
    // Paid in full: credit notes do not change `outstanding`, only the `credited` condition
    // stands between two notes that together exceed the total.
    let (status, _) = c
        .op(
            "POST",
            &format!("{base}/{a0}/mark-paid"),
            &[],
            Some(json!({"payment_id": "all"})),
        )
        .await;
    assert_eq!(status, 200);
    let total = dec(&c.invoice("acct_a", &a0).await["total"]);
    let share = Currency::USD.round(total * d("0.6"));
    let path = format!("{base}/{a0}/credit-notes");
    let balance_before = c
        .store
        .account("acct_a")
        .await
        .unwrap()
        .unwrap()
        .credit_balance
        .amount;
    let note = |id: &str| Some(json!({"amount": share.to_string(), "credit_note_id": id}));
    let (r1, r2) = tokio::join!(
        c.op("POST", &path, &[], note("r1")),
        c.op("POST", &path, &[], note("r2"))
    );
    let mut statuses = [r1.0, r2.0];
    statuses.sort();
    assert_eq!(statuses, [201, 422], "{r1:?} {r2:?}");
    let (notes, _) = c.all_pages(None, &path, &[]).await;
    assert_eq!(notes.len(), 1);
    let balance = c
        .store
        .account("acct_a")
        .await
        .unwrap()
        .unwrap()
        .credit_balance
        .amount;
    assert_eq!(balance, balance_before + share);

    // A void racing a credit note on an open invoice: exactly one of them happens.
    let path = format!("{base}/{a2}/credit-notes");
    let void = format!("{base}/{a2}/void");
    let (v, n) = tokio::join!(
        c.op("POST", &void, &[], None),
        c.op(
            "POST",
            &path,
            &[],
            Some(json!({"amount": "1.00", "credit_note_id": "race"}))
        )
    );
    let inv = c.invoice("acct_a", &a2).await;
    let (notes, _) = c.all_pages(None, &path, &[]).await;
    match (v.0, n.0) {
        (200, 409) => assert!(inv["status"] == "void" && notes.is_empty(), "{inv}"),
        (409, 201) => assert!(inv["status"] == "open" && notes.len() == 1, "{inv}"),
        other => panic!("{other:?}: {v:?} {n:?}"),
    }
}

/// An operator POST with an Idempotency-Key.
async fn send(api: &Api, path: String, key: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    let req = meterline_integration_tests::with_header(
        operator_request("POST", &path, &[], body.as_deref()),
        "idempotency-key",
        key,
    );
    let resp = api.handle(req, Utc::now()).await;
    let status = resp.status().as_u16();
    let v = match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, v)
}

#[tokio::test]
async fn voids_payments_and_credit_notes_publish_their_events_at_least_once() {
    let c = closed(Backend::Moto, "invoices-events").await;
    let (a0, a1, a2) = (c.id("acct_a", 0), c.id("acct_a", 1), c.id("acct_a", 2));
    let base = "/v1/accounts/acct_a/invoices";

    // A bus of its own, a rule for these events and a queue as its target.
    let prefix = c.stack.description["prefix"].as_str().unwrap().to_string();
    let (bus, queue) = c
        .stack
        .event_queue(
            "invoice-events",
            &["InvoiceVoided", "InvoicePaid", "CreditNoteIssued"],
        )
        .await;
    let good: Api = c.stack.api().with_billing(c.stack.billing_api_on_bus(&bus));
    // Publishing fails after the write: a bus that does not exist.
    let broken: Api = c
        .stack
        .api()
        .with_billing(c.stack.billing_api_on_bus(&format!("{prefix}-no-such-bus")));
    // Void: written, not published (503); the retry with the same key publishes it.
    let (status, p) = send(&broken, format!("{base}/{a1}/void"), "void-1", None).await;
    assert_eq!(status, 503, "{p}");
    assert_eq!(c.invoice("acct_a", &a1).await["status"], "void");
    let (status, v) = send(&good, format!("{base}/{a1}/void"), "void-1", None).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("void")), "{v}");
    // A repeat of the void (another key) publishes the same event again.
    let (status, _) = send(&good, format!("{base}/{a1}/void"), "void-2", None).await;
    assert_eq!(status, 200);

    // Mark paid in full: written, not published; the retry publishes InvoicePaid.
    let pay = json!({"payment_id": "wire-9"});
    let (status, p) = send(
        &broken,
        format!("{base}/{a0}/mark-paid"),
        "pay-1",
        Some(pay.clone()),
    )
    .await;
    assert_eq!(status, 503, "{p}");
    assert_eq!(c.invoice("acct_a", &a0).await["status"], "paid");
    let (status, v) = send(&good, format!("{base}/{a0}/mark-paid"), "pay-1", Some(pay)).await;
    assert_eq!((status, v["duplicate"].as_bool()), (200, Some(true)), "{v}");

    // A credit note for all that is outstanding: CreditNoteIssued and InvoicePaid; repeated,
    // the same two again.
    let outstanding = c.invoice("acct_a", &a2).await["outstanding"].clone();
    let note = json!({"amount": outstanding, "credit_note_id": "cn-all"});
    let (status, n) = send(
        &good,
        format!("{base}/{a2}/credit-notes"),
        "cn-1",
        Some(note.clone()),
    )
    .await;
    assert_eq!(status, 201, "{n}");
    assert_eq!(c.invoice("acct_a", &a2).await["status"], "paid");
    let (status, _) = send(&good, format!("{base}/{a2}/credit-notes"), "cn-2", Some(note)).await;
    assert_eq!(status, 200);
    let note_id = n["credit_note_id"].as_str().unwrap().to_string();

    let got = c.stack.drain_events(&queue).await;
    let mut ids: std::collections::BTreeMap<String, (String, usize)> = Default::default();
    for (kind, detail) in &got {
        let id = detail["event_id"].as_str().unwrap().to_string();
        let e = ids.entry(id).or_insert((kind.clone(), 0));
        assert_eq!(&e.0, kind);
        e.1 += 1;
    }
    let expected: std::collections::BTreeMap<String, (String, usize)> = [
        (format!("invoice-voided#{a1}"), ("InvoiceVoided", 2)),
        (format!("invoice-paid#{a0}"), ("InvoicePaid", 1)),
        (format!("credit-note-issued#{note_id}"), ("CreditNoteIssued", 2)),
        (format!("invoice-paid#{a2}"), ("InvoicePaid", 2)),
    ]
    .into_iter()
    .map(|(id, (k, n))| (id, (k.to_string(), n)))
    .collect();
    assert_eq!(ids, expected, "{got:?}");
    // A republished event is the same event: same detail.
    for id in expected.keys() {
        let details: Vec<&Value> = got
            .iter()
            .filter(|(_, d)| d["event_id"] == id.as_str())
            .map(|(_, d)| d)
            .collect();
        assert!(details.windows(2).all(|w| w[0] == w[1]), "{details:?}");
    }
    let voided = &got.iter().find(|(k, _)| k == "InvoiceVoided").unwrap().1;
    assert_eq!(
        (voided["invoice_id"].as_str(), voided["account_id"].as_str()),
        (Some(a1.as_str()), Some("acct_a"))
    );
    let issued = &got.iter().find(|(k, _)| k == "CreditNoteIssued").unwrap().1;
    assert_eq!(dec(&issued["amount"]), dec(&outstanding));
    assert_eq!(issued["invoice_id"], a2.as_str());
}

/// Every 200/201 body of these routes matches its schema in the document the API serves,
/// strictly: no field the document does not list, none it requires missing.
async fn invoice_bodies_match_their_documented_schemas(backend: Backend) {
    let c = closed(backend, "invoices-schema").await;
    let (_, doc) = c.op("GET", "/openapi.json", &[], None).await;
    let conforms = |doc: &Value, template: &str, method: &str, status: u16, body: &Value| {
        let schema = schema::response_schema(doc, template, method, &status.to_string());
        let problems = schema::violations(doc, &schema, body);
        assert!(
            problems.is_empty(),
            "{method} {template} {status}: {problems:#?}\n{body}"
        );
    };
    let (a0, a1, a2) = (c.id("acct_a", 0), c.id("acct_a", 1), c.id("acct_a", 2));
    let base = "/v1/accounts/acct_a/invoices";
    let one = "/v1/accounts/{account_id}/invoices/{invoice_id}";
    let customer = c.key(json!({"role": "customer", "account_id": "acct_a"})).await;

    let (s, v) = c.call(Some(&customer), "GET", base, &[], None).await;
    conforms(&doc, "/v1/accounts/{account_id}/invoices", "get", s, &v);
    let (s, v) = c.op("GET", "/v1/invoices", &[], None).await;
    assert!(!v["data"].as_array().unwrap().is_empty(), "{v}");
    conforms(&doc, "/v1/invoices", "get", s, &v);
    let (s, v) = c
        .call(Some(&customer), "GET", &format!("{base}/{a0}"), &[], None)
        .await;
    conforms(&doc, one, "get", s, &v);
    let (s, v) = c.op("GET", &format!("{base}/{a0}"), &[], None).await;
    assert!(v["lines"].is_array() && v["statements"].is_object(), "{v}");
    conforms(&doc, one, "get", s, &v);

    let (s, v) = c
        .op(
            "POST",
            &format!("{base}/{a0}/mark-paid"),
            &[],
            Some(json!({"payment_id": "wire-s", "amount": "0.01"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    conforms(&doc, &format!("{one}/mark-paid"), "post", s, &v);
    let (s, v) = c.op("POST", &format!("{base}/{a1}/void"), &[], None).await;
    assert_eq!(s, 200, "{v}");
    conforms(&doc, &format!("{one}/void"), "post", s, &v);
    let note = json!({"amount": "0.01", "reason": "duplicate", "memo": "goodwill", "credit_note_id": "cn-s"});
    for expected in [201, 200] {
        let (s, v) = c
            .op(
                "POST",
                &format!("{base}/{a2}/credit-notes"),
                &[],
                Some(note.clone()),
            )
            .await;
        assert_eq!(s, expected, "{v}");
        assert_eq!(v["kind"], "manual");
        conforms(&doc, &format!("{one}/credit-notes"), "post", s, &v);
    }
    let (s, v) = c.op("GET", &format!("{base}/{a2}/credit-notes"), &[], None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
    conforms(&doc, &format!("{one}/credit-notes"), "get", s, &v);
    let (s, v) = c.op("GET", "/v1/accounts/acct_a/credit-notes", &[], None).await;
    conforms(&doc, "/v1/accounts/{account_id}/credit-notes", "get", s, &v);

    let (s, v) = c.op("GET", "/v1/providers/prov_000/statements", &[], None).await;
    let entries = v["data"].as_array().unwrap().clone();
    assert!(!entries.is_empty(), "{v}");
    conforms(&doc, "/v1/providers/{provider_id}/statements", "get", s, &v);
    let sid = entries[0]["statement_id"].as_str().unwrap();
    let (s, v) = c
        .op(
            "GET",
            &format!("/v1/providers/prov_000/statements/{sid}"),
            &[],
            None,
        )
        .await;
    conforms(
        &doc,
        "/v1/providers/{provider_id}/statements/{statement_id}",
        "get",
        s,
        &v,
    );
    let from = (c.anchor - Duration::days(1)).to_rfc3339();
    let to = (Utc::now() + Duration::days(1)).to_rfc3339();
    let (s, v) = c
        .op("GET", "/v1/reports/tax", &[("from", &from), ("to", &to)], None)
        .await;
    assert_eq!(s, 200, "{v}");
    conforms(&doc, "/v1/reports/tax", "get", s, &v);
}

on_both_backends!(
    invoices_list_filter_page_and_get_within_their_account,
    void_mark_paid_and_credit_notes_change_an_invoice_once,
    provider_statements_by_provider_key_and_the_tax_report,
    racing_credit_notes_and_voids_never_over_credit_or_lose_a_write,
    invoice_bodies_match_their_documented_schemas,
);
