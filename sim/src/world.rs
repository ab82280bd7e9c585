//! The simulated world: the in-memory stores, the two queues, the clock, the workload and the
//! ledger of what was sent, and the instances of the handlers running over them.

use crate::exec::{sqs_event, Kind, Outcome, Polled, Task};
use crate::faults::{Crash, Faults, Faulty};
use crate::ports::CloseSender;
use crate::queue::{Delivery, SimQueue};
use crate::rng::Rng;
use crate::Config;
use chrono::{DateTime, TimeDelta, Utc};
use meterline_shared::adapters::memory::{
    InMemoryRateStore, MemoryBillingStore, MemoryBudgetStore, MemoryEventPublisher, MemoryUsageStore,
};
use meterline_shared::domain::billing::events::PaymentResult;
use meterline_shared::domain::billing::InvoiceStatus;
use meterline_shared::domain::billing::{sample, Cadence, InvoiceNumbering};
use meterline_shared::domain::estimate::Budget;
use meterline_shared::domain::meter::Meter;
use meterline_shared::domain::money::Currency;
use meterline_shared::ports::billing::BillingStore;
use meterline_shared::ports::budgets::BudgetStore;
use meterline_shared::services::closing::{CloseSettings, Closer};
use meterline_shared::services::ingest::IngestSettings;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One event the simulation sent.
#[derive(Debug, Clone)]
pub struct SentEvent {
    pub account_id: String,
    pub meter: Meter,
    pub quantity: Decimal,
    /// Whether ingestion must accept it (an invalid one must be rejected).
    pub valid: bool,
}

/// One credit note an operator asked for (the API's request body, and the note's id).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NoteRequest {
    pub account_id: String,
    pub invoice_id: String,
    pub note_id: String,
    pub amount: Decimal,
}

/// What the simulation sent: every event, and the events of every usage message.
#[derive(Debug, Default)]
pub struct Ledger {
    pub events: BTreeMap<String, SentEvent>,
    /// Usage message id to the ids of its events (empty for an unreadable body).
    pub messages: BTreeMap<String, Vec<String>>,
    pub unreadable: usize,
    pub resent: usize,
    /// Credit notes asked for, by note id (a replay asks again for the same note).
    pub notes: BTreeMap<String, NoteRequest>,
    pub notes_replayed: usize,
}

/// Counters of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub tasks: u64,
    pub crashed: u64,
    pub polls: u64,
    pub schedules: u64,
    pub invariant_checks: u64,
}

pub struct World {
    pub config: Config,
    pub rng: Rng,
    pub now: DateTime<Utc>,
    pub start: DateTime<Utc>,
    pub next_schedule: DateTime<Utc>,
    pub usage: Arc<MemoryUsageStore>,
    pub billing: Arc<MemoryBillingStore>,
    pub rates: Arc<InMemoryRateStore>,
    pub events: Arc<MemoryEventPublisher>,
    pub usage_q: Arc<Mutex<SimQueue>>,
    pub close_q: Arc<Mutex<SimQueue>>,
    /// Payment results, delivered to `payment-result` as EventBridge's asynchronous invocations
    /// are: at least once, retried after a failure, then dropped to the on-failure queue.
    pub pay_q: Arc<Mutex<SimQueue>>,
    pub budgets: Arc<MemoryBudgetStore>,
    /// Credit note requests to the API, as an operator's client sends them: sent again after a
    /// 5xx or no answer, given up after 3 tries (parked).
    pub credit_q: Arc<Mutex<SimQueue>>,
    /// The draws of the credit note workload, apart from the others: without a note the run
    /// draws what it drew before notes were simulated.
    pub credit_rng: Rng,
    /// Each account's credit balance at the start.
    pub initial_balance: BTreeMap<String, Decimal>,
    pub faults: Faults,
    pub accounts: Vec<String>,
    pub ledger: Ledger,
    pub tasks: Vec<Task>,
    pub counters: Counters,
    next_event: u64,
    next_payment: u64,
    /// The writes made when the invariants were last checked.
    pub checked_at_writes: u64,
    /// The run settles: no new payments, no overlapping scheduled runs.
    pub settling: bool,
    /// Per scheduled function, when its last run started if it succeeded (removed when a run
    /// fails or crashes).
    pub last_success: BTreeMap<&'static str, DateTime<Utc>>,
}

/// Mixed into the seed for the credit note workload's own draws.
const CREDIT_STREAM: u64 = 0x6372_6564_6974_6e6f;

/// Where every run starts: a Berlin midnight in winter.
pub const START: &str = "2027-01-04T23:00:00Z";

const PROVIDERS: [&str; 4] = ["prov_000", "prov_001", "prov_002", "prov_003"];
const METERS: [Meter; 4] = [
    Meter::CpuSeconds,
    Meter::GpuSeconds,
    Meter::NetworkEgressGib,
    Meter::StorageGibHours,
];

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl World {
    /// A world of `config.accounts` accounts (issuers `ML` and `MX`), each with a daily or weekly
    /// subscription from [`START`].
    pub fn new(config: Config) -> Result<World, String> {
        let mut rng = Rng::new(config.seed);
        let start: DateTime<Utc> = START.parse().map_err(|e| format!("{e}"))?;
        let qplan = config.queue;
        let usage_q = SimQueue::new("usage", rng.next_u64(), TimeDelta::minutes(15), 5, qplan);
        let close_q = SimQueue::new("close", rng.next_u64(), TimeDelta::minutes(20), 5, qplan);
        let pay_q = SimQueue::new("payment", rng.next_u64(), TimeDelta::minutes(2), 3, qplan);
        // A quarter of the seeds see a quarter of the faults, a quarter twice as many.
        let (num, den) = [(1, 4), (1, 1), (1, 1), (2, 1)][rng.index(4)];
        let faults = Faults::new(rng.next_u64(), config.faults.scaled(num, den));
        let billing = Arc::new(MemoryBillingStore::new());
        let budgets = Arc::new(MemoryBudgetStore::new());
        let amounts: Vec<Decimal> = (0..config.accounts)
            .map(|_| Decimal::from(rng.range(200, 20_000)))
            .collect();
        let mut accounts = Vec::new();
        let mut initial_balance = BTreeMap::new();
        let setup = async {
            billing.put_catalog(&sample::catalog()).await?;
            for (i, amount) in amounts.iter().enumerate() {
                let id = format!("acct_{i}");
                let mut account = sample::account(&id, Currency::USD);
                if i % 2 == 1 {
                    account.issuer = InvoiceNumbering::new("MX")
                        .map_err(|e| meterline_shared::ports::StoreError::Corrupt(e.to_string()))?;
                }
                billing.put_account(&account).await?;
                initial_balance.insert(id.clone(), account.credit_balance.amount);
                let cadence = if i % 3 == 2 {
                    Cadence::Weekly
                } else {
                    Cadence::Daily
                };
                let sub = sample::subscription(&format!("sub_{i}"), &id, cadence, start);
                billing.put_subscription(&sub).await?;
                let budget = Budget {
                    account_id: id.clone(),
                    budget_id: "daily".into(),
                    amount: *amount,
                    currency: Currency::USD,
                    thresholds: vec![50, 80, 100],
                };
                budgets.put_budget(&budget).await?;
                accounts.push(id);
            }
            Ok::<(), meterline_shared::ports::StoreError>(())
        };
        crate::exec::now_or_never(setup)
            .ok_or("setting up the stores waited")?
            .map_err(|e| e.to_string())?;
        let mut credit_rng = Rng::new(config.seed ^ CREDIT_STREAM);
        let credit_q = SimQueue::new("credit", credit_rng.next_u64(), TimeDelta::hours(1), 3, qplan);
        Ok(World {
            config,
            rng,
            now: start,
            start,
            next_schedule: start + TimeDelta::hours(1),
            usage: Arc::new(MemoryUsageStore::new()),
            billing,
            rates: Arc::new(InMemoryRateStore::new()),
            events: Arc::new(MemoryEventPublisher::new()),
            usage_q: Arc::new(Mutex::new(usage_q)),
            close_q: Arc::new(Mutex::new(close_q)),
            pay_q: Arc::new(Mutex::new(pay_q)),
            budgets,
            credit_q: Arc::new(Mutex::new(credit_q)),
            credit_rng,
            initial_balance,
            faults,
            accounts,
            ledger: Ledger::default(),
            tasks: Vec::new(),
            counters: Counters::default(),
            next_event: 0,
            next_payment: 0,
            checked_at_writes: 0,
            settling: false,
            last_success: BTreeMap::new(),
        })
    }

    /// Moves the clock forward by 1 s to `max_step_seconds`.
    pub fn advance(&mut self) {
        let dt = self.rng.range(1, self.config.max_step_seconds);
        self.now += TimeDelta::seconds(dt as i64);
        lock(&self.usage_q).now = self.now;
        lock(&self.close_q).now = self.now;
        lock(&self.pay_q).now = self.now;
        lock(&self.credit_q).now = self.now;
    }

    /// The workload of one step: now and then a message of usage events (a few invalid, now and
    /// then a late one), an unreadable message, or a client's resend of an earlier message.
    pub fn send_usage(&mut self) {
        if !self.rng.chance(600) {
            return;
        }
        if self.rng.chance(10) {
            let id = lock(&self.usage_q).send("not json".into());
            self.ledger.messages.insert(id, Vec::new());
            self.ledger.unreadable += 1;
            return;
        }
        if self.rng.chance(30) && !self.ledger.messages.is_empty() {
            let pick = self.rng.index(self.ledger.messages.len());
            let resend = self
                .ledger
                .messages
                .iter()
                .nth(pick)
                .map(|(id, ids)| (id.clone(), ids.clone()));
            if let Some((old, ids)) = resend {
                let body = lock(&self.usage_q)
                    .messages
                    .values()
                    .find(|m| m.id == old)
                    .map(|m| m.body.clone());
                if let Some(body) = body {
                    let id = lock(&self.usage_q).send(body);
                    self.ledger.messages.insert(id, ids);
                    self.ledger.resent += 1;
                    return;
                }
            }
        }
        let n = self.rng.range(1, 20);
        let mut bodies = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..n {
            let (id, json) = self.event();
            ids.push(id);
            bodies.push(json);
        }
        let body = serde_json::Value::Array(bodies).to_string();
        let id = lock(&self.usage_q).send(body);
        self.ledger.messages.insert(id, ids);
    }

    /// One event, recorded in the ledger: its id and its JSON.
    fn event(&mut self) -> (String, serde_json::Value) {
        self.next_event += 1;
        let id = format!("e{:07}", self.next_event);
        let account = self.accounts[self.rng.index(self.accounts.len())].clone();
        let meter = METERS[self.rng.index(METERS.len())];
        let provider = PROVIDERS[self.rng.index(PROVIDERS.len())];
        let quantity = Decimal::new(self.rng.range(1, 2_000_000) as i64, 3);
        let late = if self.rng.chance(30) {
            TimeDelta::minutes(self.rng.range(0, 3 * 24 * 60) as i64)
        } else {
            TimeDelta::minutes(self.rng.range(0, 360) as i64)
        };
        let at = (self.now - late).max(self.start);
        let valid = !self.rng.chance(30);
        let mut json = serde_json::json!({
            "id": id, "account_id": account, "provider_id": provider, "job_id": "job",
            "meter": meter, "quantity": quantity.to_string(), "timestamp": at.to_rfc3339(),
        });
        if meter == Meter::GpuSeconds && self.rng.chance(500) {
            json["dimensions"] = serde_json::json!({"gpu_model": "H100"});
        }
        if !valid {
            json["quantity"] = serde_json::json!("-1");
        }
        self.ledger.events.insert(
            id.clone(),
            SentEvent {
                account_id: account,
                meter,
                quantity,
                valid,
            },
        );
        (id, json)
    }

    /// Fires the hourly schedules (now and then twice: EventBridge delivers at least once).
    /// Once the run settles, a schedule is skipped while its function still runs, so the run
    /// can come to rest.
    pub fn schedule(&mut self) {
        while self.now >= self.next_schedule {
            let at = self.next_schedule;
            self.next_schedule += TimeDelta::hours(1);
            let twice = self.rng.chance(20) && !self.settling;
            for _ in 0..(1 + usize::from(twice)) {
                if self.may_fire("cycle-close") {
                    self.spawn_schedule(at);
                }
                if self.may_fire("overdue-check") {
                    self.spawn_overdue(at);
                }
                if self.may_fire("budget-check") {
                    self.spawn_budget(at);
                }
            }
        }
    }

    fn may_fire(&self, function: &'static str) -> bool {
        !self.settling
            || !self
                .tasks
                .iter()
                .any(|t| matches!(t.kind, Kind::Schedule(f) if f == function))
    }

    /// Whether each scheduled function's last run succeeded and started after `since`.
    pub fn schedules_done_since(&self, since: DateTime<Utc>) -> bool {
        ["cycle-close", "overdue-check", "budget-check"]
            .iter()
            .all(|f| self.last_success.get(f).is_some_and(|at| *at >= since))
    }

    /// Lets idle pollers receive: each queue's event source starts an instance with a batch
    /// when one is visible, up to the concurrency limit.
    pub fn receive(&mut self) -> Result<(), String> {
        for source in 0..3 {
            let running = self
                .tasks
                .iter()
                .filter(|t| {
                    matches!(
                        (&t.kind, source),
                        (Kind::Ingest(_), 0) | (Kind::Close(_), 1) | (Kind::Payment(_), 2)
                    )
                })
                .count();
            if running >= self.config.max_instances || !self.rng.chance(700) {
                continue;
            }
            let batch = if source == 2 {
                1
            } else {
                self.rng.range(1, 10) as usize
            };
            let q = [&self.usage_q, &self.close_q, &self.pay_q][source];
            let got = lock(q).receive(batch);
            if got.is_empty() {
                continue;
            }
            match source {
                0 => self.spawn_ingest(got)?,
                1 => self.spawn_close(got)?,
                _ => self.spawn_payment(got),
            }
        }
        Ok(())
    }

    /// Now and then a payment result for an invoice with something outstanding: most pay it in
    /// full, some pay half, some fail.
    pub fn send_payment(&mut self) {
        if self.settling || !self.rng.chance(self.config.payment_chance) {
            return;
        }
        let open: Vec<_> = self
            .billing
            .invoices()
            .into_iter()
            .filter(|i| matches!(i.status, InvoiceStatus::Open | InvoiceStatus::PastDue))
            .collect();
        if open.is_empty() {
            return;
        }
        let inv = &open[self.rng.index(open.len())];
        self.next_payment += 1;
        let roll = self.rng.below(10);
        let amount = if roll < 2 {
            inv.currency.round(inv.outstanding / Decimal::TWO)
        } else {
            inv.outstanding
        };
        let result = PaymentResult {
            event_id: format!("pay-{:06}", self.next_payment),
            invoice_id: inv.invoice_id.clone(),
            top_up_id: None,
            account_id: inv.account_id.clone(),
            currency: inv.currency.code().to_string(),
            amount,
            at: self.now,
            reason: (roll == 9).then(|| "card declined".to_string()),
        };
        let detail_type = if roll == 9 {
            "PaymentFailed"
        } else {
            "PaymentSucceeded"
        };
        let event = serde_json::json!({
            "version": "0", "id": result.event_id, "detail-type": detail_type,
            "source": "payments", "account": "123456789012", "time": self.now.to_rfc3339(),
            "region": "us-east-1", "resources": [], "detail": result,
        });
        lock(&self.pay_q).send(event.to_string());
    }

    pub(crate) fn push(
        &mut self,
        kind: Kind,
        crash: Arc<Crash>,
        fut: std::pin::Pin<Box<dyn std::future::Future<Output = Outcome>>>,
    ) {
        self.counters.tasks += 1;
        let started = Some(self.now);
        self.tasks.push(Task {
            kind,
            crash,
            fut,
            started,
        });
    }

    fn spawn_ingest(&mut self, got: Vec<Delivery>) -> Result<(), String> {
        let crash = Arc::new(Crash::default());
        let store = Arc::new(Faulty::new(
            self.usage.clone(),
            self.faults.clone(),
            crash.clone(),
        ));
        let ingestor = usage_ingest::Ingestor {
            store,
            settings: IngestSettings::default(),
        };
        let event = sqs_event(&got).map_err(|e| e.to_string())?;
        let now = self.now;
        let fut = Box::pin(async move { Outcome::Batch(ingestor.handle(event, now).await) });
        self.push(Kind::Ingest(got), crash, fut);
        Ok(())
    }

    fn spawn_close(&mut self, got: Vec<Delivery>) -> Result<(), String> {
        let crash = Arc::new(Crash::default());
        let billing = Faulty::new(self.billing.clone(), self.faults.clone(), crash.clone());
        let usage = Faulty::new(self.usage.clone(), self.faults.clone(), crash.clone());
        let publisher = Faulty::new(self.events.clone(), self.faults.clone(), crash.clone());
        let rates = self.rates.clone();
        let event = sqs_event(&got).map_err(|e| e.to_string())?;
        let now = self.now;
        let fut = Box::pin(async move {
            let closer = Closer {
                billing: &billing,
                usage: &usage,
                rates: rates.as_ref(),
                publisher: &publisher,
                settings: CloseSettings::default(),
            };
            Outcome::Batch(close_worker::handle(&closer, event, now).await)
        });
        self.push(Kind::Close(got), crash, fut);
        Ok(())
    }

    fn spawn_schedule(&mut self, at: DateTime<Utc>) {
        self.counters.schedules += 1;
        let crash = Arc::new(Crash::default());
        let billing = Faulty::new(self.billing.clone(), self.faults.clone(), crash.clone());
        let queue = Faulty::new(
            Arc::new(CloseSender(self.close_q.clone())),
            self.faults.clone(),
            crash.clone(),
        );
        let publisher = Faulty::new(self.events.clone(), self.faults.clone(), crash.clone());
        let event = scheduled_event(at);
        let now = self.now;
        let fut = Box::pin(async move {
            let result = match event {
                Ok(event) => cycle_close::handle(&billing, &queue, &publisher, &event, now)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            Outcome::Done(result)
        });
        self.push(Kind::Schedule("cycle-close"), crash, fut);
    }

    fn spawn_overdue(&mut self, at: DateTime<Utc>) {
        let crash = Arc::new(Crash::default());
        let billing = Faulty::new(self.billing.clone(), self.faults.clone(), crash.clone());
        let publisher = Faulty::new(self.events.clone(), self.faults.clone(), crash.clone());
        let event = scheduled_event(at);
        let now = self.now;
        let fut = Box::pin(async move {
            let result = match event {
                Ok(event) => overdue_check::handle(&billing, &publisher, &event, now)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            Outcome::Done(result)
        });
        self.push(Kind::Schedule("overdue-check"), crash, fut);
    }

    fn spawn_budget(&mut self, at: DateTime<Utc>) {
        let crash = Arc::new(Crash::default());
        let billing = Faulty::new(self.billing.clone(), self.faults.clone(), crash.clone());
        let usage = Faulty::new(self.usage.clone(), self.faults.clone(), crash.clone());
        let budgets = Faulty::new(self.budgets.clone(), self.faults.clone(), crash.clone());
        let publisher = Faulty::new(self.events.clone(), self.faults.clone(), crash.clone());
        let event = scheduled_event(at);
        let now = self.now;
        let fut = Box::pin(async move {
            let check = budget_check::BudgetCheck {
                billing: &billing,
                usage: &usage,
                budgets: &budgets,
                publisher: &publisher,
                with_forecast: false,
            };
            let result = match event {
                Ok(event) => check
                    .handle(&event, now)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            Outcome::Done(result)
        });
        self.push(Kind::Schedule("budget-check"), crash, fut);
    }

    fn spawn_payment(&mut self, got: Vec<Delivery>) {
        let crash = Arc::new(Crash::default());
        let billing = Faulty::new(self.billing.clone(), self.faults.clone(), crash.clone());
        let publisher = Faulty::new(self.events.clone(), self.faults.clone(), crash.clone());
        let body = got.first().map(|d| d.body.clone()).unwrap_or_default();
        let fut = Box::pin(async move {
            let result = match serde_json::from_str(&body) {
                Ok(event) => payment_result::handle(&billing, &publisher, &event)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            Outcome::Done(result)
        });
        self.push(Kind::Payment(got), crash, fut);
    }

    /// Polls running instances, each time one drawn from the seed, up to twice as many polls as
    /// instances; applies what finished (deletes the messages it processed).
    pub fn run_tasks(&mut self) {
        if self.tasks.is_empty() {
            return;
        }
        let polls = self.rng.range(1, 2 * self.tasks.len() as u64);
        for _ in 0..polls {
            if self.tasks.is_empty() {
                return;
            }
            let i = self.rng.index(self.tasks.len());
            self.counters.polls += 1;
            match self.tasks[i].poll() {
                Polled::Running => {}
                Polled::Crashed => {
                    // The instance stopped: its messages come back after their visibility timeout.
                    let task = self.tasks.swap_remove(i);
                    if let Kind::Schedule(f) = task.kind {
                        self.last_success.remove(f);
                    }
                    self.counters.crashed += 1;
                }
                Polled::Done(outcome) => {
                    let task = self.tasks.swap_remove(i);
                    self.finished(task.kind, outcome, task.started);
                }
            }
        }
    }

    fn finished(&mut self, kind: Kind, outcome: Outcome, started: Option<DateTime<Utc>>) {
        let failed: Vec<String> = match &outcome {
            Outcome::Batch(r) => r
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.clone())
                .collect(),
            Outcome::Done(Ok(())) => Vec::new(),
            Outcome::Done(Err(_)) => match &kind {
                Kind::Payment(got) | Kind::Credit(got) => got.iter().map(|d| d.id.clone()).collect(),
                _ => Vec::new(),
            },
        };
        match kind {
            Kind::Ingest(got) => lock(&self.usage_q).complete(&got, &failed),
            Kind::Close(got) => lock(&self.close_q).complete(&got, &failed),
            Kind::Payment(got) => lock(&self.pay_q).complete(&got, &failed),
            Kind::Credit(got) => lock(&self.credit_q).complete(&got, &failed),
            Kind::Schedule(f) => match (outcome, started) {
                (Outcome::Done(Ok(())), Some(at)) => {
                    self.last_success.insert(f, at);
                }
                _ => {
                    self.last_success.remove(f);
                }
            },
        }
    }
}

/// The schedule's event as EventBridge sends it.
fn scheduled_event(
    at: DateTime<Utc>,
) -> Result<aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value>, serde_json::Error> {
    serde_json::from_value(serde_json::json!({
        "version": "0", "id": format!("schedule-{}", at.timestamp()), "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": at.to_rfc3339(), "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/CycleClose"], "detail": {}
    }))
}
