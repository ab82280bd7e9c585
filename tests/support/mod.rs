//! Test support: a fresh stack per test, either from the SAM template on the local endpoint
//! ([`Backend::Moto`]) or of the in-memory adapters ([`Backend::Memory`]), real SQS and API
//! Gateway event shapes, and a local SQS event source mapping.
//!
//! [`on_both_backends!`] runs a test body once on each backend, so a route is tested in memory
//! and against the local endpoint by the same assertions. The moto tests need
//! `AWS_ENDPOINT_URL` pointing at moto_server; `scripts/test.sh` starts it.
//!
//! A handler under test gets its AWS clients from [`Stack::clients`], which names the function
//! (its logical id in the template): with `METERLINE_AWS_CALL_LOG` set, as `scripts/test.sh`
//! sets it, every call those clients make is recorded for that function, and
//! `scripts/iam_check.py` checks the records against the function's role. The ports and stores
//! named after a function (`billing_of("CloseWorkerFunction")`, `usage_store_of(...)`, ...) are
//! opened that way; those without one (`billing()`, `usage()`, `usage_store()`,
//! `billing_store()`, `rate_store()`, `ddb()`, `sqs()`) set up and inspect a stack as a test
//! would, and are not recorded: never give them to a handler. In memory, both are the same
//! adapters.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use meterline_shared::adapters::aws::{
    aws_sdk_dynamodb, aws_sdk_sqs, AwsClients, DynamoApiKeyStore, DynamoBillingStore, DynamoIdempotencyStore,
    DynamoRateStore, DynamoUsageStore, EventBridgePublisher, SqsCloseQueue, SqsUsageQueue,
};
use meterline_shared::adapters::config::{ApiConfig, Env, RatesConfig, UsageConfig};
use meterline_shared::adapters::memory::{
    InMemoryRateStore, MemoryApiKeyStore, MemoryBillingStore, MemoryBudgetStore, MemoryCloseQueue,
    MemoryCreditStore, MemoryDirectory, MemoryEventPublisher, MemoryIdempotencyStore, MemorySpendStore,
    MemoryUsageQueue, MemoryUsageStore,
};
use meterline_shared::ports::billing::BillingStore;
use meterline_shared::ports::budgets::BudgetStore;
use meterline_shared::ports::credits::CreditStore;
use meterline_shared::ports::directory::DirectoryStore;
use meterline_shared::ports::issued::IssuedInvoices;
use meterline_shared::ports::rates::RateStore;
use meterline_shared::ports::spend::SpendStore;
use meterline_shared::ports::usage::UsageStore;
use meterline_shared::services::closing::{CloseSettings, Closer};
use meterline_shared::services::ingest::IngestSettings;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Where a test's stack lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The template's tables and queues on the local endpoint, through the AWS adapters.
    Moto,
    /// The in-memory adapters of every port.
    Memory,
}

/// Runs each named `async fn(Backend)` test body on both backends, as the tests
/// `{name}::memory` and `{name}::moto`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$name($crate::Backend::Memory).await
            }
            #[tokio::test]
            async fn moto() {
                super::$name($crate::Backend::Moto).await
            }
        }
    )*};
}

/// The in-memory adapters of one stack. The directory and the billing routes share the billing
/// store, as they share the billing table in AWS.
pub struct Memory {
    pub usage: Arc<MemoryUsageStore>,
    pub queue: Arc<MemoryUsageQueue>,
    pub billing: Arc<MemoryBillingStore>,
    pub directory: Arc<MemoryDirectory>,
    pub budgets: Arc<MemoryBudgetStore>,
    pub credits: Arc<MemoryCreditStore>,
    pub spend: Arc<MemorySpendStore>,
    pub rates: Arc<InMemoryRateStore>,
    pub keys: Arc<MemoryApiKeyStore>,
    pub idempotency: Arc<MemoryIdempotencyStore>,
    pub events: Arc<MemoryEventPublisher>,
    pub close_queue: Arc<MemoryCloseQueue>,
    pub top_ups: Arc<meterline_shared::adapters::memory::MemoryTopUpStore>,
}

impl Memory {
    fn new() -> Memory {
        let billing = Arc::new(MemoryBillingStore::new());
        Memory {
            usage: Arc::new(MemoryUsageStore::new()),
            queue: Arc::new(MemoryUsageQueue::new()),
            directory: Arc::new(MemoryDirectory::new(billing.clone())),
            billing,
            budgets: Arc::new(MemoryBudgetStore::new()),
            credits: Arc::new(MemoryCreditStore::new()),
            spend: Arc::new(MemorySpendStore::new()),
            rates: Arc::new(InMemoryRateStore::new()),
            keys: Arc::new(MemoryApiKeyStore::new()),
            idempotency: Arc::new(MemoryIdempotencyStore::new()),
            events: Arc::new(MemoryEventPublisher::new()),
            close_queue: Arc::new(MemoryCloseQueue::new()),
            top_ups: Arc::new(meterline_shared::adapters::memory::MemoryTopUpStore::new()),
        }
    }
}

/// A stack: created from `infra/template.yaml` under a unique prefix on the local endpoint, or
/// in memory.
pub struct Stack {
    pub backend: Backend,
    /// What `scripts/stack.py` created (moto only).
    pub description: Value,
    pub sdk: aws_config::SdkConfig,
    /// The memory backend's adapters (memory only).
    pub memory: Option<Memory>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Stack {
    /// A fresh stack of `test` on `backend`.
    pub async fn on(backend: Backend, test: &str) -> Stack {
        match backend {
            Backend::Moto => Stack::create(test).await,
            Backend::Memory => Stack {
                backend,
                description: json!({ "prefix": test }),
                sdk: aws_config::SdkConfig::builder()
                    .behavior_version(aws_config::BehaviorVersion::latest())
                    .build(),
                memory: Some(Memory::new()),
            },
        }
    }

    /// The memory backend's adapters; panics on moto.
    pub fn mem(&self) -> &Memory {
        self.memory.as_ref().expect("a memory stack")
    }

    /// Creates the template's tables and queues, named `{test}-{unique}-{LogicalId}`.
    pub async fn create(test: &str) -> Stack {
        assert!(
            std::env::var("AWS_ENDPOINT_URL").is_ok(),
            "AWS_ENDPOINT_URL is not set: run the tests with scripts/test.sh, which starts the local endpoint"
        );
        let python = std::env::var("METERLINE_PYTHON").unwrap_or_else(|_| "python3".into());
        let prefix = format!(
            "{}-{}-{}",
            test.replace('_', "-"),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new(python)
            .arg(root().join("scripts/stack.py"))
            .args(["create", "--prefix", &prefix])
            .output()
            .expect("scripts/stack.py runs");
        assert!(
            out.status.success(),
            "stack.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let description: Value = serde_json::from_slice(&out.stdout).expect("stack.py prints JSON");
        let sdk = meterline_shared::adapters::aws::sdk_config().await;
        Stack {
            backend: Backend::Moto,
            description,
            sdk,
            memory: None,
        }
    }

    /// A resource's local name (tables) or URL (queues) (moto only).
    pub fn resource(&self, logical: &str) -> String {
        assert_eq!(
            self.backend,
            Backend::Moto,
            "{logical} exists on the local endpoint only"
        );
        self.description["resources"][logical]
            .as_str()
            .unwrap_or_else(|| panic!("no resource {logical}"))
            .to_string()
    }

    /// A function's environment, as the template defines it.
    pub fn function_env(&self, logical: &str) -> HashMap<String, String> {
        assert_eq!(
            self.backend,
            Backend::Moto,
            "the template's environment is read on moto only"
        );
        serde_json::from_value(self.description["functions"][logical]["env"].clone()).expect("env map")
    }

    /// The configuration the ingestion function would read.
    pub fn usage_config(&self) -> UsageConfig {
        let env = self.function_env("UsageIngestFunction");
        UsageConfig::from_env(&Env(move |k: &str| env.get(k).cloned())).expect("template env is valid")
    }

    /// The rate configuration a function would read (`ApiFunction`, `RateRefreshFunction`).
    pub fn rates_config(&self, function: &str) -> RatesConfig {
        let env = self.function_env(function);
        RatesConfig::from_env(&Env(move |k: &str| env.get(k).cloned())).expect("template env is valid")
    }

    /// The AWS clients of `function` (its logical id in the template), recorded for it.
    pub fn clients(&self, function: &str) -> AwsClients {
        AwsClients::for_function(&self.sdk, function).expect("the call log opens")
    }

    /// The rate store on this stack's table, to set up and inspect (not recorded).
    pub fn rate_store(&self) -> DynamoRateStore {
        DynamoRateStore::new(self.ddb(), self.rates_config("ApiFunction").table)
    }

    /// The rate store as `function` opens it.
    pub fn rate_store_of(&self, function: &str) -> DynamoRateStore {
        DynamoRateStore::new(self.clients(function).dynamodb, self.rates_config(function).table)
    }

    /// Creates accounts (the sample account, in USD) and providers (10 % fee) that keys may
    /// then name; existing ones are kept.
    pub async fn create_tenants(&self, accounts: &[&str], providers: &[&str]) {
        use meterline_shared::ports::directory::{ProviderDoc, Written};
        let store = self.directory();
        for id in accounts {
            let account = meterline_shared::domain::billing::sample::account(
                id,
                meterline_shared::domain::money::Currency::USD,
            );
            store.create_account(&account).await.expect("create account");
        }
        for id in providers {
            loop {
                let (mut catalog, rev) = store.catalog_revision().await.expect("catalog");
                catalog.fees.insert(id.to_string(), rust_decimal::Decimal::TEN);
                let doc = ProviderDoc {
                    provider_id: id.to_string(),
                    name: id.to_string(),
                    fee_percent: rust_decimal::Decimal::TEN,
                    created_at: chrono::Utc::now(),
                    updated_at: None,
                    upfront_payout: Default::default(),
                };
                match store
                    .create_provider(&doc, &catalog, rev)
                    .await
                    .expect("create provider")
                {
                    Written::Yes => break,
                    Written::Conflict if store.provider(id).await.expect("provider").is_some() => break,
                    Written::Conflict => continue,
                }
            }
        }
    }

    /// The billing store (and budget store) on this stack's billing table, to set up and
    /// inspect (not recorded).
    pub fn billing_store(&self) -> DynamoBillingStore {
        DynamoBillingStore::new(self.ddb(), self.resource("BillingTable"))
    }

    /// The billing store as `function` opens it.
    pub fn billing_store_of(&self, function: &str) -> DynamoBillingStore {
        DynamoBillingStore::new(
            self.clients(function).dynamodb,
            self.function_env(function)["BILLING_TABLE"].clone(),
        )
    }

    /// The close queue as `CycleCloseFunction` opens it.
    pub fn close_queue_of_cycle_close(&self) -> SqsCloseQueue {
        let env = self.function_env("CycleCloseFunction");
        SqsCloseQueue::new(
            self.clients("CycleCloseFunction").sqs,
            env["CLOSE_QUEUE_URL"].clone(),
        )
    }

    /// `function`'s EventBridge publisher, publishing on `bus`.
    pub fn publisher_of(&self, function: &str, bus: &str) -> EventBridgePublisher {
        EventBridgePublisher::new(self.clients(function).eventbridge, bus.to_string())
    }

    /// The API's estimate and budget routes, wired as the API function wires them.
    pub fn estimates_api(&self) -> api::estimates::EstimatesApi {
        api::estimates::EstimatesApi {
            billing: self.billing_of("ApiFunction"),
            budgets: self.budgets_of("ApiFunction"),
            usage: self.usage_of("ApiFunction"),
            rates: self.rates_of("ApiFunction"),
        }
    }

    pub fn ddb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    /// The configuration the API function would read.
    pub fn api_config(&self) -> ApiConfig {
        let env = self.function_env("ApiFunction");
        ApiConfig::from_env(&Env(move |k: &str| env.get(k).cloned())).expect("template env is valid")
    }

    /// The API function's handler on this stack, accepting [`OPERATOR_KEY`] as its bootstrap
    /// operator key (as the `BOOTSTRAP_OPERATOR_KEY_SECRET` secret would).
    pub fn api(&self) -> api::Api {
        let api = match &self.memory {
            Some(m) => api::Api::new(
                m.usage.clone(),
                m.queue.clone(),
                meterline_shared::domain::usage::TimeRules::default(),
                m.keys.clone(),
                m.idempotency.clone(),
            )
            .with_rates(api::rates::RatesApi::new(
                m.rates.clone(),
                api::rates::DEFAULT_MAX_AGE,
            )),
            None => {
                let env = self.function_env("ApiFunction");
                let config = self.api_config();
                let clients = self.clients("ApiFunction");
                api::Api::new(
                    Arc::new(self.usage_store_of("ApiFunction")),
                    Arc::new(SqsUsageQueue::new(clients.sqs, env["USAGE_QUEUE_URL"].clone())),
                    self.usage_config().ingest.time_rules,
                    Arc::new(DynamoApiKeyStore::new(
                        clients.dynamodb.clone(),
                        config.api_keys_table,
                    )),
                    Arc::new(DynamoIdempotencyStore::new(
                        clients.dynamodb,
                        config.idempotency_table,
                    )),
                )
                .with_granularities(self.usage_config().ingest.granularities)
                .with_rates(api::rates::RatesApi::new(
                    self.rates_of("ApiFunction"),
                    self.rates_config("ApiFunction").max_age,
                ))
            }
        };
        api.with_bootstrap_key(&OPERATOR_KEY.parse().expect("a well-formed key"))
            .with_estimates(self.estimates_api())
            .with_billing(self.billing_api())
            .with_credits(self.credits_api())
            .with_top_ups(self.top_ups_of("ApiFunction"))
    }

    /// The top-up port as `function` opens it (recorded), or the memory one.
    pub fn top_ups_of(&self, function: &str) -> Arc<dyn meterline_shared::ports::top_ups::TopUpStore> {
        match &self.memory {
            Some(m) => m.top_ups.clone(),
            None => Arc::new(self.billing_store_of(function)),
        }
    }

    /// The credit routes' stores, wired as the API function wires them (no pause between
    /// attempts in memory).
    pub fn credits_api(&self) -> api::credits::CreditsApi {
        api::credits::CreditsApi {
            credits: self.credits_of("ApiFunction"),
            billing: self.billing_of("ApiFunction"),
            spend: self.spend_of("ApiFunction"),
            pause: match self.backend {
                Backend::Memory => meterline_shared::services::credits::no_pause,
                Backend::Moto => api::credits::pause,
            },
        }
    }

    /// The billing routes' dependencies on this stack (events on the API function's bus, or
    /// the memory publisher).
    pub fn billing_api(&self) -> api::billing::BillingApi {
        match &self.memory {
            Some(m) => api::billing::BillingApi {
                billing: m.billing.clone(),
                directory: m.directory.clone(),
                issued: m.billing.clone(),
                rates: m.rates.clone(),
                events: m.events.clone(),
            },
            None => {
                let bus = self.function_env("ApiFunction")["EVENT_BUS_NAME"].clone();
                self.billing_api_on_bus(&bus)
            }
        }
    }

    /// The billing routes' dependencies, publishing their events on `bus` (moto only).
    pub fn billing_api_on_bus(&self, bus: &str) -> api::billing::BillingApi {
        let store = Arc::new(self.billing_store_of("ApiFunction"));
        api::billing::BillingApi {
            billing: store.clone(),
            directory: store.clone(),
            issued: store,
            rates: self.rates_of("ApiFunction"),
            events: Arc::new(self.publisher_of("ApiFunction", bus)),
        }
    }

    /// The billing port as `function` opens it (recorded), or the memory one.
    pub fn billing_of(&self, function: &str) -> Arc<dyn BillingStore> {
        match &self.memory {
            Some(m) => m.billing.clone(),
            None => Arc::new(self.billing_store_of(function)),
        }
    }

    /// The spend-control port as `function` opens it (recorded), or the memory one.
    pub fn spend_of(&self, function: &str) -> Arc<dyn SpendStore> {
        match &self.memory {
            Some(m) => m.spend.clone(),
            None => Arc::new(self.billing_store_of(function)),
        }
    }

    /// The credit port as `function` opens it (recorded), or the memory one.
    pub fn credits_of(&self, function: &str) -> Arc<dyn CreditStore> {
        match &self.memory {
            Some(m) => m.credits.clone(),
            None => Arc::new(self.billing_store_of(function)),
        }
    }

    /// The credit port, to set up and inspect a stack (not recorded).
    pub fn credits(&self) -> Arc<dyn CreditStore> {
        match &self.memory {
            Some(m) => m.credits.clone(),
            None => Arc::new(self.billing_store()),
        }
    }

    /// The budget port as `function` opens it (recorded), or the memory one.
    pub fn budgets_of(&self, function: &str) -> Arc<dyn BudgetStore> {
        match &self.memory {
            Some(m) => m.budgets.clone(),
            None => Arc::new(self.billing_store_of(function)),
        }
    }

    /// The usage port as `function` opens it (recorded), or the memory one.
    pub fn usage_of(&self, function: &str) -> Arc<dyn UsageStore> {
        match &self.memory {
            Some(m) => m.usage.clone(),
            None => Arc::new(self.usage_store_of(function)),
        }
    }

    /// The rate port as `function` opens it (recorded), or the memory one.
    pub fn rates_of(&self, function: &str) -> Arc<dyn RateStore> {
        match &self.memory {
            Some(m) => m.rates.clone(),
            None => Arc::new(self.rate_store_of(function)),
        }
    }

    /// The billing port of this stack, to set up and inspect (not recorded).
    pub fn billing(&self) -> Arc<dyn BillingStore> {
        match &self.memory {
            Some(m) => m.billing.clone(),
            None => Arc::new(self.billing_store()),
        }
    }

    /// The issued-invoices port of this stack, to set up and inspect (not recorded).
    pub fn issued(&self) -> Arc<dyn IssuedInvoices> {
        match &self.memory {
            Some(m) => m.billing.clone(),
            None => Arc::new(self.billing_store()),
        }
    }

    /// The directory port of this stack, to set up and inspect (not recorded).
    pub fn directory(&self) -> Arc<dyn DirectoryStore> {
        match &self.memory {
            Some(m) => m.directory.clone(),
            None => Arc::new(self.billing_store()),
        }
    }

    /// The budget port of this stack, to set up and inspect (not recorded).
    pub fn budgets(&self) -> Arc<dyn BudgetStore> {
        match &self.memory {
            Some(m) => m.budgets.clone(),
            None => Arc::new(self.billing_store()),
        }
    }

    /// The usage port of this stack, to set up and inspect (not recorded).
    pub fn usage(&self) -> Arc<dyn UsageStore> {
        match &self.memory {
            Some(m) => m.usage.clone(),
            None => Arc::new(self.usage_store()),
        }
    }

    /// The rate port of this stack, to set up and inspect (not recorded).
    pub fn rates(&self) -> Arc<dyn RateStore> {
        match &self.memory {
            Some(m) => m.rates.clone(),
            None => Arc::new(self.rate_store()),
        }
    }

    /// A provider's statement entries for periods ending in `[from, to)`, oldest first, as
    /// (invoice id, statement), through the issued-invoices port.
    pub async fn provider_statements(
        &self,
        provider_id: &str,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Vec<(String, meterline_shared::domain::billing::ProviderStatement)> {
        let issued = self.issued();
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = issued
                .list_statements(provider_id, from, to, after.as_deref(), 100)
                .await
                .expect("statements");
            out.extend(page.items.into_iter().map(|e| (e.invoice_id, e.statement)));
            match page.next {
                Some(next) => after = Some(next),
                None => return out,
            }
        }
    }

    /// How this stack's ingestion validates and aggregates.
    pub fn ingest_settings(&self) -> IngestSettings {
        match self.backend {
            Backend::Memory => IngestSettings::default(),
            Backend::Moto => self.usage_config().ingest,
        }
    }

    /// The ingestion function's handler on this stack.
    pub fn ingestor(&self) -> usage_ingest::Ingestor {
        usage_ingest::Ingestor {
            store: self.usage_of("UsageIngestFunction"),
            settings: self.ingest_settings(),
        }
    }

    /// Closes every period due at `now` the way AWS does: the `cycle-close` handler queues the
    /// requests (SQS, or the memory close queue), the `close-worker` handler consumes them in
    /// batches of 10 (rates from an empty store, events to memory). On moto each handler has
    /// its function's recorded clients. Returns how many were queued; the worker must fail none.
    pub async fn close_due(&self, now: chrono::DateTime<chrono::Utc>) -> usize {
        let scheduled: aws_lambda_events::eventbridge::EventBridgeEvent<Value> =
            serde_json::from_value(json!({
                "version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
                "account": "123456789012", "time": now.to_rfc3339(), "region": "us-east-1",
                "resources": [], "detail": {}
            }))
            .expect("a scheduled event");
        let events = MemoryEventPublisher::new();
        let rates = InMemoryRateStore::new();
        let (billing, usage) = (
            self.billing_of("CloseWorkerFunction"),
            self.usage_of("CloseWorkerFunction"),
        );
        let closer = Closer {
            billing: billing.as_ref(),
            usage: usage.as_ref(),
            rates: &rates,
            publisher: &events,
            settings: CloseSettings::default(),
        };
        let scheduler = self.billing_of("CycleCloseFunction");
        match &self.memory {
            Some(m) => {
                let s = cycle_close::handle(
                    scheduler.as_ref(),
                    m.close_queue.as_ref(),
                    &events,
                    &scheduled,
                    now,
                )
                .await
                .expect("cycle-close");
                let mut n = 0;
                loop {
                    let batch = m.close_queue.take(10);
                    if batch.is_empty() {
                        break;
                    }
                    let messages: Vec<(String, String)> = batch
                        .iter()
                        .map(|r| {
                            n += 1;
                            (
                                format!("m{n}"),
                                serde_json::to_string(r).expect("a close request"),
                            )
                        })
                        .collect();
                    let resp = close_worker::handle(&closer, sqs_event(&messages), now).await;
                    assert!(resp.batch_item_failures.is_empty(), "a close failed");
                }
                s.enqueued
            }
            None => {
                let queue = self.close_queue_of_cycle_close();
                indexes_caught_up().await;
                let s = cycle_close::handle(scheduler.as_ref(), &queue, &events, &scheduled, now)
                    .await
                    .expect("cycle-close");
                let stats = pump_parallel(&self.sqs(), &self.resource("CloseQueue"), 10, |event| {
                    close_worker::handle(&closer, event, now)
                })
                .await;
                assert_eq!(stats.failed, 0, "a close failed");
                s.enqueued
            }
        }
    }

    /// An event bus `{prefix}-{name}` of its own, with a rule routing billing's events of
    /// `detail_types` (source `meterline.billing`) to a new queue: (bus name, queue URL). Read
    /// the queue with [`Stack::drain_events`].
    pub async fn event_queue(&self, name: &str, detail_types: &[&str]) -> (String, String) {
        self.event_queue_of(name, "meterline.billing", detail_types).await
    }

    /// As [`Stack::event_queue`], for the events of `source`.
    pub async fn event_queue_of(&self, name: &str, source: &str, detail_types: &[&str]) -> (String, String) {
        use meterline_shared::adapters::aws::aws_sdk_eventbridge;
        let prefix = self.description["prefix"].as_str().expect("prefix").to_string();
        let eb = aws_sdk_eventbridge::Client::new(&self.sdk);
        let bus = format!("{prefix}-{name}");
        eb.create_event_bus().name(&bus).send().await.expect("create bus");
        let sqs = self.sqs();
        let queue = sqs
            .create_queue()
            .queue_name(format!("{prefix}-{name}"))
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        let arn_attr = aws_sdk_sqs::types::QueueAttributeName::QueueArn;
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&queue)
            .attribute_names(arn_attr.clone())
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .expect("attributes")[&arn_attr]
            .clone();
        let rule = format!("{prefix}-{name}");
        eb.put_rule()
            .name(&rule)
            .event_bus_name(&bus)
            .event_pattern(json!({"source": [source], "detail-type": detail_types}).to_string())
            .send()
            .await
            .expect("put rule");
        eb.put_targets()
            .rule(&rule)
            .event_bus_name(&bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id(name)
                    .arn(arn)
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .expect("put targets");
        (bus, queue)
    }

    /// Every message on `queue` (until it stays empty), as (detail-type, detail), deleted as
    /// read; each must be billing's (source `meterline.billing`).
    pub async fn drain_events(&self, queue: &str) -> Vec<(String, Value)> {
        self.drain_events_of(queue, "meterline.billing").await
    }

    /// As [`Stack::drain_events`], for the events of `source`.
    pub async fn drain_events_of(&self, queue: &str, source: &str) -> Vec<(String, Value)> {
        let sqs = self.sqs();
        let mut out = Vec::new();
        let mut empty = 0;
        while empty < 2 {
            let got = sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            let messages = got.messages.unwrap_or_default();
            if messages.is_empty() {
                empty += 1;
                continue;
            }
            for m in messages {
                let envelope: Value = serde_json::from_str(m.body().expect("body")).expect("JSON");
                assert_eq!(envelope["source"], source);
                out.push((
                    envelope["detail-type"].as_str().expect("detail-type").to_string(),
                    envelope["detail"].clone(),
                ));
                sqs.delete_message()
                    .queue_url(queue)
                    .receipt_handle(m.receipt_handle().expect("receipt handle"))
                    .send()
                    .await
                    .expect("delete");
            }
        }
        out
    }

    /// A usage store on this stack's tables, to set up and inspect (not recorded).
    pub fn usage_store(&self) -> DynamoUsageStore {
        let c = self.usage_config();
        DynamoUsageStore::new(self.ddb(), c.tables, c.event_retention)
    }

    /// The usage store as `function` opens it.
    pub fn usage_store_of(&self, function: &str) -> DynamoUsageStore {
        let env = self.function_env(function);
        let c =
            UsageConfig::from_env(&Env(move |k: &str| env.get(k).cloned())).expect("template env is valid");
        DynamoUsageStore::new(self.clients(function).dynamodb, c.tables, c.event_retention)
    }

    /// Items in a table (a full scan: tests only).
    pub async fn count_items(&self, logical: &str) -> usize {
        let mut n = 0;
        let mut start = None;
        loop {
            let out = self
                .ddb()
                .scan()
                .table_name(self.resource(logical))
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            n += out.count() as usize;
            start = out.last_evaluated_key;
            if start.is_none() {
                return n;
            }
        }
    }
}

/// An SQS event as Lambda delivers it, one record per `(message id, body)`.
pub fn sqs_event(messages: &[(String, String)]) -> SqsEvent {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("rh-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764000000000",
                               "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1764000000001"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:UsageQueue",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("valid SQS event")
}

/// What a run of the local event source mapping did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PumpStats {
    pub invocations: usize,
    pub deleted: usize,
    pub failed: usize,
}

/// Plays the SQS event source mapping: receives up to `batch_size` messages, invokes the
/// handler, deletes the messages it did not report as failed and makes the failed ones visible
/// again at once (so redrive happens without waiting for the visibility timeout). Stops when
/// the queue is empty.
pub async fn pump<F, Fut>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    batch_size: i32,
    mut handler: F,
) -> PumpStats
where
    F: FnMut(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = SqsBatchResponse>,
{
    let mut stats = PumpStats::default();
    let mut empty_polls = 0;
    while empty_polls < 2 {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(batch_size)
            .wait_time_seconds(0)
            .send()
            .await
            .expect("receive");
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            empty_polls += 1;
            continue;
        }
        empty_polls = 0;
        let pairs: Vec<(String, String)> = messages
            .iter()
            .map(|m| {
                (
                    m.message_id().unwrap_or_default().to_string(),
                    m.body().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let response = handler(sqs_event(&pairs)).await;
        stats.invocations += 1;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        for m in &messages {
            let handle = m.receipt_handle().unwrap_or_default();
            if failed.contains(&m.message_id().unwrap_or_default()) {
                stats.failed += 1;
                sqs.change_message_visibility()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .expect("change visibility");
            } else {
                stats.deleted += 1;
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }
    stats
}

/// Whether the local endpoint runs in its fault mode (`METERLINE_MOTO_FAULTS=1`): transactions
/// cancelled by conflicts, throttling, lagging indexes (docs/testing.md).
pub fn fault_mode() -> bool {
    std::env::var("METERLINE_MOTO_FAULTS").is_ok_and(|v| v == "1")
}

/// How many handler calls the tests run side by side where they would run one, as several
/// Lambda instances would: `METERLINE_TEST_PARALLEL` (default 1; `scripts/test.sh` sets it for
/// its fault-mode run).
pub fn parallel() -> usize {
    std::env::var("METERLINE_TEST_PARALLEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .max(1)
}

/// Waits until the local endpoint's indexes show every write made before the call: in fault
/// mode they lag the tables by `METERLINE_MOTO_INDEX_LAG_MS`; otherwise at once. A scheduled run
/// (cycle close, overdue check) comes minutes after the writes it is meant to see, so a test
/// waits here before it plays one, and before it reads an index to check a write.
pub async fn indexes_caught_up() {
    if !fault_mode() {
        return;
    }
    let lag_ms: u64 = std::env::var("METERLINE_MOTO_INDEX_LAG_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100); // scripts/moto_faults.py's default
    tokio::time::sleep(std::time::Duration::from_millis(lag_ms + 20)).await;
}

/// [`pump`] by [`parallel`] consumers side by side (several instances of the function behind
/// one event source mapping); their stats added up.
pub async fn pump_parallel<F, Fut>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    batch_size: i32,
    handler: F,
) -> PumpStats
where
    F: Fn(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = SqsBatchResponse>,
{
    let handler = &handler;
    let pumps = (0..parallel()).map(|_| pump(sqs, queue_url, batch_size, handler));
    let mut total = PumpStats::default();
    for s in futures::future::join_all(pumps).await {
        total.invocations += s.invocations;
        total.deleted += s.deleted;
        total.failed += s.failed;
    }
    total
}

/// The bootstrap operator key the tests' API accepts.
pub const OPERATOR_KEY: &str = "ml_testoperatorkey2_testoperatorsecrettestoperatorsecrettestoperator";

/// Sets a request header.
pub fn with_header(mut req: lambda_http::Request, name: &'static str, value: &str) -> lambda_http::Request {
    req.headers_mut()
        .insert(name, value.parse().expect("a valid header value"));
    req
}

/// Sends `key` as `Authorization: Bearer <key>`.
pub fn with_key(req: lambda_http::Request, key: &str) -> lambda_http::Request {
    with_header(req, "authorization", &format!("Bearer {key}"))
}

/// A request with the operator key.
pub fn operator_request(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&str>,
) -> lambda_http::Request {
    with_key(api_request(method, path, query, body), OPERATOR_KEY)
}

/// An API Gateway HTTP API (payload 2.0) request, as the API function receives it.
pub fn api_request(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&str>,
) -> lambda_http::Request {
    let raw_query: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    let params: serde_json::Map<String, Value> =
        query.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let event = json!({
        "version": "2.0",
        "routeKey": "ANY /{proxy+}",
        "rawPath": path,
        "rawQueryString": raw_query.join("&"),
        "headers": {"content-type": "application/json", "host": "api.example.com"},
        "queryStringParameters": params,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
            "domainPrefix": "api", "requestId": "req-1", "routeKey": "ANY /{proxy+}", "stage": "$default",
            "time": "25/Nov/2026:12:00:00 +0000", "timeEpoch": 1795000000000u64,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"}
        },
        "body": body,
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("valid API Gateway event")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A response body as JSON.
pub fn body_json(resp: &lambda_http::Response<lambda_http::Body>) -> Value {
    match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).expect("JSON body"),
        lambda_http::Body::Binary(b) => serde_json::from_slice(b).expect("JSON body"),
        _ => Value::Null,
    }
}

/// What the functions log, captured: install with [`capture_logs`], read with [`Logs::lines`].
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Every line logged so far, each parsed as JSON (a line that is not JSON fails the test).
    pub fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().expect("log buffer").clone()).expect("UTF-8 logs");
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}")))
            .collect()
    }

    /// The EMF lines (those with an `_aws` member).
    pub fn metric_lines(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l.get("_aws").is_some())
            .collect()
    }
}

/// Installs the functions' log subscriber (`meterline_shared::telemetry`) on this thread, writing
/// into the returned buffer, until the guard is dropped. Use in `#[tokio::test]`s (one thread).
pub fn capture_logs() -> (Capture, Logs) {
    let serial = CAPTURE.lock().unwrap_or_else(|e| e.into_inner());
    let logs = Logs::default();
    let w = logs.clone();
    let default = tracing::subscriber::set_default(meterline_shared::adapters::telemetry::subscriber(
        move || w.clone(),
        "info",
    ));
    // Callsites whose interest another thread cached while no capture was set (or while two
    // captures were set and dropped at once) are asked again, now that this one is.
    tracing::callsite::rebuild_interest_cache();
    (
        Capture {
            _default: default,
            _serial: serial,
        },
        logs,
    )
}

/// One capture at a time per test binary: captures set and dropped on several threads at once
/// raced tracing's per-callsite interest cache, and a test once saw none of its own lines.
static CAPTURE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A capture in force: the thread's default subscriber, and the turn of this capture. Dropped in
/// field order: the subscriber first, then the turn.
pub struct Capture {
    _default: tracing::subscriber::DefaultGuard,
    _serial: std::sync::MutexGuard<'static, ()>,
}
