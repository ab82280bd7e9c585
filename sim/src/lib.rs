//! A deterministic simulation of meterline's ingestion and billing: the real handlers
//! (`usage-ingest`, `cycle-close`, `close-worker`) run as many concurrent instances over the
//! in-memory adapters, behind decorators that inject the faults of DynamoDB and SQS, on a
//! simulated clock, all driven by one seed. The invariants are checked after every step and once
//! the run is quiet. A failing seed replays exactly: `meterline-sim --seed N --steps M`.
//! See docs/testing.md, "The simulation".

pub mod check;
pub mod credit;
pub mod exec;
pub mod faults;
pub mod ports;
pub mod queue;
pub mod rng;
pub mod world;

use chrono::TimeDelta;
use faults::{FaultPlan, FaultStats};
use queue::{QueuePlan, State};
use world::{lock, Counters, World};

/// What to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub seed: u64,
    /// Steps with usage arriving; the run then goes on without new usage until every period
    /// is closed and every queue is empty.
    pub steps: u64,
    pub accounts: usize,
    /// Instances of each queue's function at once, at most.
    pub max_instances: usize,
    /// The clock moves 1 s to this much per step.
    pub max_step_seconds: u64,
    pub faults: FaultPlan,
    pub queue: QueuePlan,
    /// Steps between two checks of the usage invariant while the run goes on (it reads every
    /// event and aggregate; the other invariants are checked after every step).
    pub usage_check_every: u64,
    /// Chance per step, per thousand, of a payment result for an invoice with something
    /// outstanding.
    pub payment_chance: u32,
    /// Chance per step, per thousand, of an operator's credit note against a closed invoice.
    pub credit_chance: u32,
    /// How long after the start the run lasts at least (late fees need weeks).
    pub min_days: i64,
}

impl Config {
    pub fn new(seed: u64, steps: u64) -> Config {
        Config {
            seed,
            steps,
            accounts: 4,
            max_instances: 4,
            max_step_seconds: 600,
            faults: FaultPlan::DEFAULT,
            queue: QueuePlan {
                duplicate: 20,
                delay: 100,
            },
            usage_check_every: 25,
            payment_chance: 15,
            credit_chance: 8,
            min_days: 50,
        }
    }
}

/// A violated invariant: the seed and step to replay it from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("seed {seed}, step {step}: {detail}")]
pub struct Violation {
    pub seed: u64,
    pub step: u64,
    pub detail: String,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub seed: u64,
    /// Steps run in all (the workload's and the drain's).
    pub steps: u64,
    pub simulated: TimeDelta,
    pub events_sent: usize,
    pub events_stored: usize,
    pub usage_messages: usize,
    pub usage_dead: usize,
    pub close_messages: usize,
    pub close_dead: usize,
    pub redeliveries: u64,
    pub duplicates: u64,
    pub invoices: usize,
    /// Every credit note: those the closes found (late usage) and the operator's.
    pub credit_notes: usize,
    /// The operator's credit notes asked for, issued, replayed on purpose, and given up on
    /// after 3 tries.
    pub notes_asked: usize,
    pub notes_issued: usize,
    pub notes_replayed: usize,
    pub notes_parked: usize,
    pub faults: FaultStats,
    pub counters: Counters,
}

/// Steps the drain may take before the run is declared stuck.
const MAX_DRAIN_STEPS: u64 = 50_000;

/// Runs one seed: the workload for `config.steps` steps, then the drain, checking the
/// invariants after every step and at rest.
pub fn run(config: Config) -> Result<Report, Violation> {
    let fail = |step: u64, detail: String| Violation {
        seed: config.seed,
        step,
        detail,
    };
    let mut w = World::new(config).map_err(|e| fail(0, e))?;
    let mut step = 0;
    while step < config.steps {
        step += 1;
        w.advance();
        w.send_usage();
        w.send_payment();
        w.send_credit_note();
        one_step(&mut w, step).map_err(|e| fail(step, e))?;
    }
    let usage_end = w.now;
    loop {
        if step - config.steps > MAX_DRAIN_STEPS {
            return Err(fail(
                step,
                format!("the run did not come to rest: {}", unrest(&w)),
            ));
        }
        if rests(&mut w, usage_end).map_err(|e| fail(step, e))? {
            break;
        }
        step += 1;
        w.advance();
        w.send_payment();
        w.send_credit_note();
        one_step(&mut w, step).map_err(|e| fail(step, e))?;
    }
    w.counters.invariant_checks += 1;
    check::at_rest(&w).map_err(|e| fail(step, e))?;
    Ok(report(&w, step))
}

/// One step after the clock moved: the schedule, the pollers, some polls, the invariants.
fn one_step(w: &mut World, step: u64) -> check::Check {
    w.schedule();
    w.receive()?;
    w.receive_credit();
    w.run_tasks();
    // The state changes only by a handler's write: check again only after one.
    let writes = w.faults.stats().writes;
    if writes != w.checked_at_writes {
        w.checked_at_writes = writes;
        w.counters.invariant_checks += 1;
        check::always(w)?;
    }
    if step.checked_rem(w.config.usage_check_every) == Some(0) {
        check::usage_aggregated(w)?;
    }
    Ok(())
}

/// Whether the run is at rest: past the lateness window after the last usage and the minimum
/// length, nothing running or waiting, each scheduled function's last run successful and
/// started after that, no close pending, no period ended an hour ago still open.
fn rests(w: &mut World, usage_end: chrono::DateTime<chrono::Utc>) -> Result<bool, String> {
    let until = (usage_end + TimeDelta::days(8)).max(w.start + TimeDelta::days(w.config.min_days));
    if w.now < until {
        return Ok(false);
    }
    if !w.settling {
        // Faults stop: the run must recover from whatever they left (a fee not announced, a
        // close pending, a message dead-lettered) with the handlers' own means.
        w.settling = true;
        w.faults.set_plan(FaultPlan::NONE);
    }
    if !w.tasks.is_empty() || !w.schedules_done_since(until) {
        return Ok(false);
    }
    let queued = [&w.usage_q, &w.close_q, &w.pay_q, &w.credit_q]
        .iter()
        .map(|q| lock(q).outstanding())
        .sum::<usize>();
    if queued > 0 {
        return Ok(false);
    }
    Ok(check::pending_markers(w, w.now)? == 0 && check::due(w, w.now - TimeDelta::hours(1))? == 0)
}

/// What keeps a run from resting.
fn unrest(w: &World) -> String {
    let kinds: Vec<String> = w.tasks.iter().map(|t| format!("{:?}", t.kind)).collect();
    let queued: Vec<usize> = [&w.usage_q, &w.close_q, &w.pay_q, &w.credit_q]
        .iter()
        .map(|q| lock(q).outstanding())
        .collect();
    format!(
        "running {kinds:?}; queued (usage, close, payment, credit) {queued:?}; last successes {:?}; pending {:?}; due {:?}",
        w.last_success,
        check::pending_markers(w, w.now),
        check::due(w, w.now - TimeDelta::hours(1))
    )
}

fn report(w: &World, steps: u64) -> Report {
    let uq = lock(&w.usage_q);
    let cq = lock(&w.close_q);
    let notes = w.billing.all_credit_notes();
    Report {
        seed: w.config.seed,
        steps,
        simulated: w.now - w.start,
        events_sent: w.ledger.events.len(),
        events_stored: w.usage.events().len(),
        usage_messages: uq.messages.len(),
        usage_dead: uq.count(State::Dead),
        close_messages: cq.messages.len(),
        close_dead: cq.count(State::Dead),
        redeliveries: uq.redeliveries + cq.redeliveries,
        duplicates: uq.duplicates + cq.duplicates,
        invoices: w.billing.invoices().len(),
        credit_notes: notes.len(),
        notes_asked: w.ledger.notes.len(),
        notes_issued: notes
            .iter()
            .filter(|n| n.issued_with == meterline_shared::domain::billing::ledger::MANUAL)
            .count(),
        notes_replayed: w.ledger.notes_replayed,
        notes_parked: lock(&w.credit_q).count(State::Dead),
        faults: w.faults.stats(),
        counters: w.counters,
    }
}
