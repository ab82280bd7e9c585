//! The simulation over a fixed set of seeds: none may violate an invariant. The seeds that once
//! found a defect stay here as regression tests, each named after what it found.

use meterline_sim::{run, Config};

fn config(seed: u64) -> Config {
    Config::new(seed, 300)
}

fn assert_holds(seed: u64) {
    match run(config(seed)) {
        Ok(r) => {
            assert!(
                r.invoices > 0 && r.events_stored > 0,
                "seed {seed} did nothing: {r:?}"
            );
            assert!(r.faults.injected() > 0, "seed {seed} injected no fault: {r:?}");
        }
        Err(v) => panic!("{v}\nreplay: cargo run -p meterline-sim -- --seed {seed} --steps 300"),
    }
}

/// A late fee charged by an overdue check that then failed to publish `InvoiceOverdue` (the bus
/// throttled, or the instance stopped) was never announced: the next checks found the fee
/// charged and published nothing. (Seeds 1, 2, 9 and 19 found it first, with the simulation as
/// it was then; seed 5 found it before credit notes joined the workload. Since then it passes
/// with the fix taken out too, and seeds 1 and 12 find it: it stays as a seed that passes.)
#[test]
fn seed_5_late_fee_announced_after_a_failed_check() {
    assert_holds(5);
}

/// A budget check that claimed an alert and stopped before publishing it (or whose release of
/// the claim failed) left the claim: the alert was never sent. (Seeds 4, 15 and 18 found it
/// first; seed 7 found it before credit notes joined the workload. Since the fix of seed 9 it
/// takes another path, through the defect of seed 30, fixed since.)
#[test]
fn seed_7_budget_alert_sent_after_a_crash_between_claim_and_publish() {
    assert_holds(7);
}

/// The first fix of seed 7's defect let a check whose publish failed give the claim back, even
/// when another check had found it unsent and published the alert meanwhile: the alert was out
/// and its claim gone (so it would go out again). Found by the long run (seeds 76 and 85). Since
/// the operator's credit notes joined the workload, seed 76 takes another path, through the defect
/// of seed 30 (an alert of the first day never sent, fixed since), and no seed of 1–100
/// reproduces this one with the old rule put back.
#[test]
fn seed_76_a_failed_publish_keeps_the_claim_another_check_published() {
    assert_holds(76);
}

/// A credit note request sent twice (a client's resend, or a duplicate delivery) was answered
/// "over credit" for its own note: one instance wrote the note and stopped before publishing;
/// the other had read "no such note" before that write and the invoice's credited sum after it,
/// so the note's own amount no longer fitted and the request ended refused (a 4xx, final): the
/// note was never announced. Found by the long run once credit notes joined the workload.
#[test]
fn seed_54_a_note_written_meanwhile_is_the_answer_not_a_refusal() {
    assert_holds(54);
}

/// A credit note request delivered twice: one delivery wrote a note that paid the invoice and
/// stopped before publishing; the other read the invoice before that write and the note after
/// it, and announced the note with the invoice as it had read it (not paid): `InvoicePaid` was
/// never published. Found by the long run after the fix of seed 54.
#[test]
fn seed_9_a_note_found_written_is_announced_with_the_invoice_as_it_is_now() {
    assert_holds(9);
}

/// A budget alert claimed by a check that failed before publishing it stayed unsent when every
/// later check failed until the budget's period ended: the checks that followed looked at the new
/// period only, so the alert was never sent. The claim now carries the alert and each check
/// first sends those left unsent, of any period. Seeds 30, 34, 69 and 70 of
/// `meterline-sim --steps 300` found it, under the heavy fault plan.
#[test]
fn seed_30_budget_alert_of_an_ended_period_is_sent() {
    assert_holds(30);
}

/// A late fee charged by a check that failed before announcing it stayed unannounced when the
/// checks after it no longer computed that fee: the invoice was paid, or its next fee period
/// began, so no later check named the fee again and its `InvoiceOverdue` was never published.
/// Seeds 34 and 41 of `meterline-sim --steps 300` found it (once budget alerts were fixed).
#[test]
fn seed_34_late_fee_announced_after_its_fee_period_ended() {
    assert_holds(34);
}

#[test]
fn a_fixed_set_of_seeds_holds_every_invariant() {
    // A seed with light faults (2), one with the default plan (4); seed 76 has heavy faults.
    for seed in [2, 4] {
        assert_holds(seed);
    }
}

#[test]
fn a_seed_replays_exactly() {
    let mut c = config(11);
    c.min_days = 12;
    let (a, b) = (run(c), run(c));
    assert_eq!(a, b);
}
