//! Trust between tenants on the local endpoint, through the real handlers: ids are per account
//! and nothing derived from one collides across accounts; a close never overwrites another
//! invoice's provider statement; key secrets are stored nowhere and shown once; keys name only
//! tenants that exist; path parameters are decoded once; payment results that do not match
//! their invoice change nothing; the payment service's bus is its own.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Duration, DurationRound, Utc};
use meterline_integration_tests::{api_request, body_json, operator_request, with_header, with_key, Stack};
use meterline_shared::adapters::aws::DynamoBillingStore;
use meterline_shared::adapters::memory::MemoryEventPublisher;
use meterline_shared::domain::billing::events::PaymentResult;
use meterline_shared::domain::billing::{
    sample, Alignment, BillingSchedule, BillingSubscription, Cadence, InvoiceStatus,
};
use meterline_shared::domain::meter::Meter;
use meterline_shared::domain::money::Currency;
use meterline_shared::domain::usage::UsageEvent;
use meterline_shared::ports::billing::{BillingStore, CloseCommit};
use serde_json::{json, Value};
use usage_ingest::Ingestor;

type Api = api::Api;

async fn call(api: &Api, req: lambda_http::Request) -> (u16, Value) {
    let resp = api.handle(req, Utc::now()).await;
    let status = resp.status().as_u16();
    let v = match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::String(t.clone())),
        _ => Value::Null,
    };
    (status, v)
}

async fn op(api: &Api, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    call(api, operator_request(method, path, &[], body.as_deref())).await
}

async fn as_key(api: &Api, key: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    call(
        api,
        with_key(api_request(method, path, &[], body.as_deref()), key),
    )
    .await
}

async fn new_account(api: &Api, id: &str) {
    let (status, v) = op(
        api,
        "POST",
        "/v1/accounts",
        Some(json!({"account_id": id, "currency": "USD", "timezone": "UTC"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
}

async fn new_key(api: &Api, body: Value) -> String {
    let (status, v) = op(api, "POST", "/v1/api-keys", Some(body)).await;
    assert_eq!(status, 201, "{v}");
    v["key"].as_str().unwrap().to_string()
}

fn ev(id: &str, account: &str, q: &str, at: DateTime<Utc>) -> UsageEvent {
    UsageEvent {
        id: id.into(),
        account_id: account.into(),
        provider_id: "prov_000".into(),
        job_id: "job".into(),
        meter: Meter::GpuSeconds,
        quantity: q.parse().unwrap(),
        timestamp: at,
        dimensions: [("gpu_model".to_string(), "A100".to_string())].into(),
    }
}

/// Two accounts with a subscription of the same id: `acct_v`'s written as `billing-admin
/// seed-sample` writes one, `acct_x`'s created through the API by its customer; both used
/// `prov_000` on their first day, and every period up to now is closed by the real scheduler
/// and worker.
struct Pair {
    stack: Stack,
    api: Api,
    store: DynamoBillingStore,
    anchor: DateTime<Utc>,
}

async fn closed_pair(test: &str) -> Pair {
    let stack = Stack::create(test).await;
    let api = stack.api();
    let store = stack.billing_store();
    let anchor = Utc::now().duration_trunc(Duration::hours(1)).unwrap() - Duration::days(2);
    store.put_catalog(&sample::catalog()).await.unwrap();
    let mut victim = sample::account("acct_v", Currency::USD);
    victim.timezone = chrono_tz::UTC;
    store.put_account(&victim).await.unwrap();
    let plan = sample::subscription("x", "acct_v", Cadence::Daily, anchor).plan;
    let schedule = BillingSchedule::new(Cadence::Daily, Alignment::Anniversary, anchor, chrono_tz::UTC);
    let sub = BillingSubscription::new("sub_shared", "acct_v", schedule, plan).unwrap();
    store.put_subscription(&sub).await.unwrap();

    new_account(&api, "acct_x").await;
    let (status, v) = op(
        &api,
        "POST",
        "/v1/plans",
        Some(json!({"plan_id": "plan_t", "plan": {"name": "T", "recurring_fee": "10"}})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let customer = new_key(&api, json!({"role": "customer", "account_id": "acct_x"})).await;
    let body = json!({"subscription_id": "sub_shared", "plan_id": "plan_t", "cadence": "daily",
                      "alignment": "anniversary", "start": anchor.to_rfc3339()});
    let (status, v) = as_key(
        &api,
        &customer,
        "POST",
        "/v1/accounts/acct_x/subscriptions",
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{v}");

    let h = Duration::hours(2);
    let events = vec![
        ev("v0", "acct_v", "3600", anchor + h),
        ev("x0", "acct_x", "1800", anchor + h),
    ];
    let ingestor = Ingestor {
        store: std::sync::Arc::new(stack.usage_store_of("UsageIngestFunction")),
        settings: stack.usage_config().ingest,
    };
    let body = serde_json::to_string(&events).unwrap();
    let resp = ingestor
        .handle(
            meterline_integration_tests::sqs_event(&[("m0".into(), body)]),
            Utc::now(),
        )
        .await;
    assert!(resp.batch_item_failures.is_empty());

    assert_eq!(stack.close_due(Utc::now()).await, 2);
    Pair {
        stack,
        api,
        store,
        anchor,
    }
}

/// The statement entries of `prov_000` for periods ending in the first day after `anchor`.
async fn first_day_statements(p: &Pair) -> Vec<Value> {
    let from = (p.anchor + Duration::hours(1)).to_rfc3339();
    let to = (p.anchor + Duration::hours(25)).to_rfc3339();
    let (status, v) = call(
        &p.api,
        operator_request(
            "GET",
            "/v1/providers/prov_000/statements",
            &[("period_from", &from), ("period_to", &to)],
            None,
        ),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v["data"].as_array().unwrap().clone()
}

/// The first invoice of an account.
async fn first_invoice(p: &Pair, account: &str) -> meterline_shared::domain::billing::Invoice {
    let (status, v) = op(&p.api, "GET", &format!("/v1/accounts/{account}/invoices"), None).await;
    assert_eq!(status, 200, "{v}");
    let id = v["data"][0]["invoice_id"].as_str().unwrap().to_string();
    p.store.invoice(account, &id).await.unwrap().unwrap()
}

#[tokio::test]
async fn one_subscription_id_in_two_accounts_keeps_each_accounts_statement_entries() {
    let p = closed_pair("trust-statements").await;
    let entries = first_day_statements(&p).await;
    let mut accounts: Vec<&str> = entries
        .iter()
        .map(|e| e["account_id"].as_str().unwrap())
        .collect();
    accounts.sort();
    assert_eq!(
        accounts,
        ["acct_v", "acct_x"],
        "each account's close keeps its own statement entry: {entries:#?}"
    );
    // Each entry is its own invoice's, with its own usage.
    for e in &entries {
        let account = e["account_id"].as_str().unwrap();
        let inv = first_invoice(&p, account).await;
        assert_eq!(e["invoice_id"], inv.invoice_id.as_str());
        let own = inv
            .statements
            .statements
            .iter()
            .find(|s| s.provider_id == "prov_000")
            .unwrap();
        assert_eq!(e["statement"], serde_json::to_value(own).unwrap());
    }
    assert_ne!(
        entries[0]["invoice_id"], entries[1]["invoice_id"],
        "invoice ids carry their account"
    );

    // A statement id holds `:`; sent percent-encoded (`%3A`), it is decoded once at the router.
    let id = entries[0]["statement_id"].as_str().unwrap();
    assert!(id.contains(':'));
    let path = format!("/v1/providers/prov_000/statements/{}", id.replace(':', "%3A"));
    let (status, v) = op(&p.api, "GET", &path, None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["statement_id"], id);
}

#[tokio::test]
async fn a_close_never_overwrites_a_statement_entry_of_another_invoice() {
    let p = closed_pair("trust-collision").await;
    let victim = first_invoice(&p, "acct_v").await;
    let before = first_day_statements(&p).await;
    // A draft of acct_y with the victim's invoice id: its statement entry would take the
    // victim's key.
    let mut y = sample::account("acct_y", Currency::USD);
    y.timezone = chrono_tz::UTC;
    p.store.put_account(&y).await.unwrap();
    let schedule = BillingSchedule::new(Cadence::Daily, Alignment::Anniversary, p.anchor, chrono_tz::UTC);
    let plan = sample::subscription("x", "acct_y", Cadence::Daily, p.anchor).plan;
    let sub = BillingSubscription::new(&victim.subscription_id, "acct_y", schedule, plan).unwrap();
    p.store.put_subscription(&sub).await.unwrap();
    let mut draft = victim.clone();
    draft.account_id = "acct_y".into();
    draft.status = InvoiceStatus::Draft;
    draft.number = None;
    let next = sub.next_close_at.unwrap();
    let commit = CloseCommit {
        invoice: draft,
        credit_notes: vec![],
        expected_next_close: next,
        next_close: Some(next + Duration::days(1)),
        expected_balance: y.credit_balance,
        new_balance: y.credit_balance,
    };
    let outcome = p.store.commit_close(&commit).await;
    assert!(
        outcome.is_err(),
        "a statement entry that exists is a collision: {outcome:?}"
    );
    assert_eq!(first_day_statements(&p).await, before, "nothing was overwritten");
    assert!(
        p.store
            .invoice("acct_y", &victim.invoice_id)
            .await
            .unwrap()
            .is_none(),
        "nothing of the refused close was written"
    );
}

#[tokio::test]
async fn subscription_ids_are_per_account_so_another_accounts_id_is_no_409() {
    let stack = Stack::create("trust-sub-ids").await;
    let api = stack.api();
    stack
        .billing_store()
        .put_catalog(&sample::catalog())
        .await
        .unwrap();
    let (status, v) = op(
        &api,
        "POST",
        "/v1/plans",
        Some(json!({"plan_id": "plan_t", "plan": {"name": "T", "recurring_fee": "10"}})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    for account in ["acct_a", "acct_b"] {
        new_account(&api, account).await;
        let key = new_key(&api, json!({"role": "customer", "account_id": account})).await;
        let path = format!("/v1/accounts/{account}/subscriptions");
        let body = json!({"subscription_id": "sub_1", "plan_id": "plan_t", "cadence": "monthly"});
        let (status, v) = as_key(&api, &key, "POST", &path, Some(body.clone())).await;
        assert_eq!(status, 201, "{account}: {v}");
        // The same id again in the same account is the conflict.
        let (status, v) = as_key(&api, &key, "POST", &path, Some(body)).await;
        assert_eq!(status, 409, "{account}: {v}");
    }
}

#[tokio::test]
async fn seed_sample_claims_what_it_creates_and_never_overwrites() {
    use close_worker::seed::{seed_sample, SeedSample};
    let stack = Stack::create("trust-seed").await;
    let store = stack.billing_store();
    let anchor = Utc::now().duration_trunc(Duration::hours(1)).unwrap();
    let seed = SeedSample {
        account: "acct_s".into(),
        subscription: "sub_s".into(),
        cadence: Cadence::Daily,
        alignment: Alignment::Anniversary,
        anchor,
        currency: Currency::USD,
        timezone: chrono_tz::UTC,
    };
    let first = seed_sample(&store, &seed).await.unwrap();
    let again = SeedSample {
        cadence: Cadence::Monthly,
        ..seed.clone()
    };
    assert!(
        seed_sample(&store, &again).await.is_err(),
        "the subscription exists: seeding it again is refused"
    );
    assert_eq!(
        store
            .subscription("acct_s", "sub_s")
            .await
            .unwrap()
            .unwrap()
            .schedule,
        first.schedule,
        "and nothing was overwritten"
    );
    // Another account may have a subscription of the same id.
    let other = SeedSample {
        account: "acct_t".into(),
        ..seed
    };
    seed_sample(&store, &other).await.unwrap();
}

/// Every item of every table of the stack, as text.
async fn every_table_as_text(stack: &Stack) -> (Vec<String>, String) {
    let mut tables = Vec::new();
    let mut text = String::new();
    let resources = stack.description["resources"].as_object().unwrap().clone();
    // The template's tables (every logical id ending in `Table`; queues and buses do not).
    for (_, name) in resources.iter().filter(|(logical, _)| logical.ends_with("Table")) {
        let name = name.as_str().unwrap();
        tables.push(name.to_string());
        let mut start = None;
        loop {
            let out = stack
                .ddb()
                .scan()
                .table_name(name)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            text.push_str(&format!("{:?}", out.items()));
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
    }
    (tables, text)
}

#[tokio::test]
async fn key_secrets_are_shown_once_and_stored_in_no_table() {
    let stack = Stack::create("trust-secrets").await;
    let api = stack.api();
    new_account(&api, "acct_k").await;
    let mut secrets: Vec<String> = Vec::new();
    let send = |req: lambda_http::Request| {
        let api = &api;
        async move { api.handle(req, Utc::now()).await }
    };
    // Every response: one that shows a secret says `Cache-Control: no-store`.
    let check = |resp: &lambda_http::Response<lambda_http::Body>, secrets: &mut Vec<String>| {
        let v = body_json(resp);
        if let Some(key) = v["key"].as_str() {
            secrets.push(key[key.rfind('_').unwrap() + 1..].to_string());
        }
        let text = v.to_string();
        if secrets.iter().any(|s| text.contains(s.as_str())) {
            assert_eq!(
                resp.headers().get("cache-control").map(|h| h.to_str().unwrap()),
                Some("no-store"),
                "{text}"
            );
        }
        v
    };
    let create = |idem: &str| {
        with_header(
            operator_request(
                "POST",
                "/v1/api-keys",
                &[],
                Some(r#"{"role": "customer", "account_id": "acct_k", "name": "ci"}"#),
            ),
            "idempotency-key",
            idem,
        )
    };
    let first = send(create("k-create")).await;
    assert_eq!(first.status(), 201);
    let created = check(&first, &mut secrets);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(secrets.len(), 1);

    // The replay shows the key's id and prefix, never its secret.
    let replay = send(create("k-create")).await;
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replayed = check(&replay, &mut secrets);
    assert_eq!(replayed["id"], created["id"]);
    assert_eq!(replayed["prefix"], created["prefix"]);
    assert!(replayed.get("key").is_none(), "{replayed}");
    assert!(!replayed.to_string().contains(&secrets[0]), "{replayed}");

    // Rotation: the same for the new key.
    let rotate = || {
        with_header(
            operator_request("POST", &format!("/v1/api-keys/{id}/rotate"), &[], None),
            "idempotency-key",
            "k-rotate",
        )
    };
    let rotated = send(rotate()).await;
    assert_eq!(rotated.status(), 201);
    let new = check(&rotated, &mut secrets);
    let new_id = new["id"].as_str().unwrap().to_string();
    let again = send(rotate()).await;
    let again = check(&again, &mut secrets);
    assert_eq!(again["id"], new["id"]);
    assert!(again.get("key").is_none(), "{again}");
    // A plain create too, then revocations, then the replays once more.
    let plain = send(operator_request(
        "POST",
        "/v1/api-keys",
        &[],
        Some(r#"{"role": "operator"}"#),
    ))
    .await;
    check(&plain, &mut secrets);
    for key in [&id, &new_id] {
        let resp = send(operator_request(
            "DELETE",
            &format!("/v1/api-keys/{key}"),
            &[],
            None,
        ))
        .await;
        check(&resp, &mut secrets);
    }
    for req in [create("k-create"), rotate()] {
        let resp = send(req).await;
        let v = check(&resp, &mut secrets);
        assert!(v.get("key").is_none(), "{v}");
    }
    assert_eq!(secrets.len(), 3);

    // No table holds any of the secrets.
    let (tables, text) = every_table_as_text(&stack).await;
    for table in [
        "ApiKeysTable",
        "IdempotencyTable",
        "BillingTable",
        "UsageEventsTable",
    ] {
        assert!(tables.contains(&stack.resource(table)), "{table} in {tables:?}");
    }
    assert_eq!(tables.len(), 7, "every table of the template: {tables:?}");
    assert!(text.contains(&id), "the scan reads the key table");
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "a table holds a secret");
    }
}

#[tokio::test]
async fn a_key_for_a_tenant_that_does_not_exist_is_404() {
    let stack = Stack::create("trust-key-tenant").await;
    let api = stack.api();
    for (body, field) in [
        (
            json!({"role": "customer", "account_id": "acct_later"}),
            "account_id",
        ),
        (
            json!({"role": "provider", "provider_id": "prov_later"}),
            "provider_id",
        ),
    ] {
        let (status, v) = op(&api, "POST", "/v1/api-keys", Some(body)).await;
        assert_eq!(status, 404, "{v}");
        assert_eq!(v["errors"][0]["field"], field, "{v}");
    }
    new_account(&api, "acct_later").await;
    new_key(&api, json!({"role": "customer", "account_id": "acct_later"})).await;
}

#[tokio::test]
async fn path_parameters_are_percent_decoded_once_at_the_router() {
    let stack = Stack::create("trust-decode").await;
    let api = stack.api();
    new_account(&api, "acct_a").await;
    let key = new_key(&api, json!({"role": "customer", "account_id": "acct_a"})).await;
    // `%5F` is `_`: the customer's own account, checked after decoding.
    let (status, v) = as_key(&api, &key, "GET", "/v1/accounts/acct%5Fa", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["account_id"], "acct_a");
    // `%3A` is `:`, which a statement id holds: a missing entry, not a malformed id.
    let (status, v) = op(
        &api,
        "GET",
        "/v1/providers/prov_000/statements/20261125T130000.000Z%3Ainv_acct_a~sub_1_20261124T130000Z",
        None,
    )
    .await;
    assert_eq!(status, 404, "{v}");
    // Decoded once: `%2523` is `%23`, not `#`.
    let (status, v) = op(
        &api,
        "GET",
        "/v1/accounts/acct_a/credit-notes/credit-note%2523inv_1%2523manual-x",
        None,
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["errors"][0]["field"], "credit_note_id");
}

#[tokio::test]
async fn minute_windows_on_the_stream_are_400_where_they_are_not_kept() {
    let stack = Stack::create("trust-minute").await;
    let api = stack.api();
    let (status, v) = call(
        &api,
        operator_request(
            "GET",
            "/v1/accounts/acct_a/usage/stream",
            &[("granularity", "minute")],
            None,
        ),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["errors"][0]["field"], "granularity");
}

fn payment(
    event_id: &str,
    invoice_id: &str,
    account: &str,
    currency: &str,
    amount: &str,
) -> EventBridgeEvent<PaymentResult> {
    serde_json::from_value(json!({
        "version": "0", "id": format!("e-{event_id}"), "detail-type": "PaymentSucceeded",
        "source": "meterline.payments", "account": "123456789012",
        "time": Utc::now().to_rfc3339(), "region": "us-east-1", "resources": [],
        "detail": {"event_id": event_id, "invoice_id": invoice_id, "account_id": account,
                   "currency": currency, "amount": amount, "at": Utc::now().to_rfc3339()}
    }))
    .unwrap()
}

#[tokio::test]
async fn payment_results_that_do_not_match_their_invoice_are_rejected_and_change_nothing() {
    let p = closed_pair("trust-payments").await;
    let inv = first_invoice(&p, "acct_v").await;
    assert!(inv.outstanding > rust_decimal::Decimal::ZERO);
    let events = MemoryEventPublisher::new();
    let over = (inv.outstanding + rust_decimal::Decimal::new(1, 2)).to_string();
    let due = inv.outstanding.to_string();
    for (what, event) in [
        (
            "more than outstanding",
            payment("p1", &inv.invoice_id, "acct_v", "USD", &over),
        ),
        (
            "another currency",
            payment("p2", &inv.invoice_id, "acct_v", "EUR", &due),
        ),
        (
            "another account",
            payment("p3", &inv.invoice_id, "acct_x", "USD", &due),
        ),
        (
            "nothing paid",
            payment("p4", &inv.invoice_id, "acct_v", "USD", "0"),
        ),
        (
            "below the minor unit",
            payment("p5", &inv.invoice_id, "acct_v", "USD", "0.001"),
        ),
    ] {
        let outcome = payment_result::handle(&p.store, &events, &event).await;
        assert!(format!("{outcome:?}").contains("Rejected"), "{what}: {outcome:?}");
        let now = p.store.invoice("acct_v", &inv.invoice_id).await.unwrap().unwrap();
        assert_eq!(
            (now.status, now.outstanding),
            (inv.status, inv.outstanding),
            "{what}: the invoice is unchanged"
        );
    }
    assert!(events.events().is_empty());
    // The matching payment pays it.
    let outcome = payment_result::handle(
        &p.store,
        &events,
        &payment("p6", &inv.invoice_id, "acct_v", "USD", &due),
    )
    .await
    .unwrap();
    assert_eq!(
        outcome,
        meterline_shared::ports::billing::PaymentOutcome::Applied {
            status: InvoiceStatus::Paid,
            outstanding: rust_decimal::Decimal::ZERO
        }
    );
    let _ = &p.stack;
}

#[tokio::test]
async fn payment_results_come_from_their_own_bus_that_one_principal_may_put_events_on() {
    use meterline_shared::adapters::aws::aws_sdk_eventbridge;
    let stack = Stack::create("trust-bus").await;
    let eb = aws_sdk_eventbridge::Client::new(&stack.sdk);
    let bus = stack.resource("PaymentBus");
    let described = eb.describe_event_bus().name(&bus).send().await.unwrap();
    let policy: Value = serde_json::from_str(described.policy().expect("a resource policy")).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{policy}");
    let st = &statements[0];
    assert_eq!(st["Effect"], "Allow", "{policy}");
    assert_eq!(st["Action"], "events:PutEvents", "{policy}");
    assert_eq!(st["Resource"], described.arn().unwrap(), "{policy}");
    // The principal the template parameter names (the stack's own account when it is empty).
    let principal = stack.description["parameters"]["PaymentServicePrincipal"]
        .as_str()
        .unwrap()
        .to_string();
    let principal = if principal.is_empty() {
        "123456789012".to_string()
    } else {
        principal
    };
    assert_eq!(st["Principal"]["AWS"], principal.as_str(), "{policy}");
    // payment-result's rule is on that bus, and no rule of the stack on the default bus takes
    // the payment service's events.
    let prefix = stack.description["prefix"].as_str().unwrap().to_string();
    let on = |bus: String| {
        let (eb, prefix) = (eb.clone(), prefix.clone());
        async move {
            eb.list_rules()
                .event_bus_name(bus)
                .send()
                .await
                .unwrap()
                .rules()
                .iter()
                .filter(|r| r.name().unwrap_or_default().starts_with(&prefix))
                .map(|r| r.event_pattern().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        }
    };
    let payments = on(bus.clone()).await;
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert!(payments[0].contains("meterline.payments"), "{payments:?}");
    let default = on("default".to_string()).await;
    assert!(
        default.iter().all(|p| !p.contains("meterline.payments")),
        "{default:?}"
    );
}

#[tokio::test]
async fn the_bootstrap_key_is_read_from_secrets_manager_never_from_the_environment() {
    use aws_sdk_secretsmanager::Client;
    let stack = Stack::create("trust-bootstrap").await;
    for function in ["ApiFunction", "UsageStreamFunction"] {
        let env = stack.function_env(function);
        assert!(env.contains_key("BOOTSTRAP_OPERATOR_KEY_SECRET"), "{function}");
        assert!(
            env.values().all(|v| !v.starts_with("ml_")),
            "{function}: no key in the environment"
        );
    }
    let sm = Client::new(&stack.sdk);
    let prefix = stack.description["prefix"].as_str().unwrap().to_string();
    let key = meterline_integration_tests::OPERATOR_KEY;
    let arn = sm
        .create_secret()
        .name(format!("{prefix}-bootstrap"))
        .secret_string(format!("{key}\n"))
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    // As each function reads it at start-up, with its calls recorded.
    for function in ["ApiFunction", "UsageStreamFunction"] {
        let clients = stack.clients(function);
        let read = meterline_shared::adapters::aws::bootstrap::bootstrap_key(
            &stack.sdk,
            clients.recorder.as_ref(),
            Some(&arn),
        )
        .await
        .unwrap();
        assert_eq!(read, Some(key.parse().unwrap()), "{function}");
    }
    assert_eq!(
        meterline_shared::adapters::aws::bootstrap::bootstrap_key(&stack.sdk, None, None)
            .await
            .unwrap(),
        None
    );
    // A secret that holds no key, or no secret: an error naming the variable, never the value.
    sm.create_secret()
        .name(format!("{prefix}-bad"))
        .secret_string("not-a-key-but-secret-text")
        .send()
        .await
        .unwrap();
    for id in [format!("{prefix}-bad"), format!("{prefix}-missing")] {
        let err = meterline_shared::adapters::aws::bootstrap::bootstrap_key(&stack.sdk, None, Some(&id))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("BOOTSTRAP_OPERATOR_KEY_SECRET"), "{err}");
        assert!(!err.contains("secret-text"), "{err}");
    }
}
