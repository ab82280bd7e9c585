//! `meterline-sim`: runs the simulation for one seed or a range of seeds and prints what each
//! did; a violated invariant names its seed and step and exits non-zero.

use anyhow::bail;
use clap::Parser;
use meterline_sim::{run, Config};
use std::time::Instant;

/// Deterministic simulation of ingestion and billing under faults.
#[derive(Parser, Debug)]
#[command(name = "meterline-sim")]
struct Args {
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Steps of workload per seed (the drain that follows is extra).
    #[arg(long, default_value_t = 1000)]
    steps: u64,
    /// How many seeds, from `--seed` on.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Accounts (each with one subscription).
    #[arg(long, default_value_t = 4)]
    accounts: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let mut total = meterline_sim::faults::FaultStats::default();
    let (mut steps, mut checks, mut failures) = (0u64, 0u64, 0u64);
    for seed in args.seed..args.seed.saturating_add(args.seeds) {
        let mut config = Config::new(seed, args.steps);
        config.accounts = args.accounts;
        match run(config) {
            Ok(r) => {
                println!(
                    "seed {seed}: ok, {} steps, {} days simulated, {} events sent, {} stored, {} usage messages ({} dead-lettered), {} close messages ({} dead-lettered), {} invoices, {} credit notes (operator: {} asked, {} issued, {} replayed, {} given up), {} faults injected ({} crashes), {} redeliveries",
                    r.steps, r.simulated.num_days(), r.events_sent, r.events_stored, r.usage_messages, r.usage_dead,
                    r.close_messages, r.close_dead, r.invoices, r.credit_notes, r.notes_asked, r.notes_issued,
                    r.notes_replayed, r.notes_parked, r.faults.injected(),
                    r.faults.crashes_before + r.faults.crashes_after, r.redeliveries
                );
                steps += r.steps;
                checks += r.counters.invariant_checks;
                total.calls += r.faults.calls;
                total.writes += r.faults.writes;
                total.conflicts += r.faults.conflicts;
                total.unavailable += r.faults.unavailable;
                total.crashes_before += r.faults.crashes_before;
                total.crashes_after += r.faults.crashes_after;
                total.lagged_reads += r.faults.lagged_reads;
            }
            Err(v) => {
                println!("VIOLATION {v}");
                failures += 1;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} seeds in {secs:.1} s ({:.2} seeds/s), {steps} steps, {checks} invariant checks, {} port calls, faults: {total:?}",
        args.seeds,
        args.seeds as f64 / secs.max(1e-9)
    , total.calls);
    if failures > 0 {
        bail!("{failures} seeds violated an invariant");
    }
    Ok(())
}
