//! The invariants, each a function over the stores' state and the ledger of what was sent. Each
//! returns the first violation it finds, described well enough to start debugging from.

use crate::exec::now_or_never;
use crate::queue::State;
use crate::world::{lock, NoteRequest, World};
use chrono::{DateTime, Utc};
use meterline_shared::domain::billing::ledger::MANUAL;
use meterline_shared::domain::billing::Invoice;
use meterline_shared::domain::meter::Meter;
use meterline_shared::domain::usage::Granularity;
use meterline_shared::ports::billing::{BillingStore, DUE_SHARDS};
use meterline_shared::ports::usage::UsageStore;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};

pub type Check = Result<(), String>;
type PerMeter = BTreeMap<(String, Meter), Decimal>;

fn add(map: &mut PerMeter, account: &str, meter: Meter, q: Decimal) {
    *map.entry((account.to_string(), meter)).or_default() += q;
}

fn non_zero(map: PerMeter) -> PerMeter {
    map.into_iter().filter(|(_, q)| !q.is_zero()).collect()
}

/// Usage stored equals usage aggregated, hourly and daily, per account and meter, to the last
/// decimal; and every stored event was sent, valid, with the quantity sent.
pub fn usage_aggregated(w: &World) -> Check {
    let mut stored = PerMeter::new();
    for e in w.usage.events() {
        let sent = w
            .ledger
            .events
            .get(&e.id)
            .ok_or(format!("event {} stored but never sent", e.id))?;
        if !sent.valid || sent.quantity != e.quantity || sent.account_id != e.account_id {
            return Err(format!("event {} stored as {e:?}, sent as {sent:?}", e.id));
        }
        add(&mut stored, &e.account_id, e.meter, e.quantity);
    }
    for g in [Granularity::Hour, Granularity::Day] {
        let mut agg = PerMeter::new();
        for a in w.usage.aggregates().into_iter().filter(|a| a.granularity == g) {
            add(&mut agg, &a.account_id, a.meter, a.quantity);
        }
        if non_zero(agg.clone()) != non_zero(stored.clone()) {
            return Err(format!("{g:?} aggregates {agg:?} != stored events {stored:?}"));
        }
    }
    Ok(())
}

/// Nothing vanishes: every usage message was processed or dead-lettered; every valid event of a
/// processed message is stored, every invalid one is kept as rejected.
pub fn ingest_accounted(w: &World) -> Check {
    let stored: BTreeSet<String> = w.usage.events().into_iter().map(|e| e.id).collect();
    let rejected = rejected_ids(w)?;
    let q = lock(&w.usage_q);
    for m in q.messages.values() {
        let ids = w
            .ledger
            .messages
            .get(&m.id)
            .ok_or(format!("message {} not in the ledger", m.id))?;
        match m.state {
            State::Queued => return Err(format!("message {} neither processed nor dead-lettered", m.id)),
            State::Dead => {}
            State::Deleted => {
                if ids.is_empty() {
                    return Err(format!("unreadable message {} was deleted as processed", m.id));
                }
                for id in ids {
                    let valid = w.ledger.events.get(id).is_some_and(|e| e.valid);
                    let kept = if valid {
                        stored.contains(id)
                    } else {
                        rejected.contains(id)
                    };
                    if !kept {
                        return Err(format!(
                            "event {id} (valid: {valid}) of processed message {} is neither stored nor rejected",
                            m.id
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn rejected_ids(w: &World) -> Result<BTreeSet<String>, String> {
    let mut ids = BTreeSet::new();
    for account in &w.accounts {
        let mut after: Option<String> = None;
        loop {
            let page = now_or_never(w.usage.rejected_page(Some(account), after.as_deref(), 1000))
                .ok_or("reading rejected events waited")?
                .map_err(|e| e.to_string())?;
            ids.extend(page.items.into_iter().filter_map(|r| r.event_id));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    Ok(ids)
}

/// Invoice numbers per issuer are 1..n, without gaps or repeats, and n is the issuer's counter.
pub fn numbering(w: &World, invoices: &[Invoice]) -> Check {
    let mut seqs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for inv in invoices {
        if let Some(n) = &inv.number {
            let seq = inv
                .issuer
                .parse(n)
                .map_err(|e| format!("invoice {}: {e}", inv.invoice_id))?;
            seqs.entry(inv.issuer.prefix().to_string()).or_default().push(seq);
        }
    }
    for (prefix, mut s) in seqs {
        s.sort_unstable();
        let n = s.len() as u64;
        if s != (1..=n).collect::<Vec<_>>() {
            return Err(format!("issuer {prefix}: numbers {s:?} are not 1..{n}"));
        }
        let last = now_or_never(w.billing.last_number(&prefix))
            .ok_or("reading a counter waited")?
            .map_err(|e| e.to_string())?;
        if last != n {
            return Err(format!(
                "issuer {prefix}: counter at {last}, {n} invoices numbered"
            ));
        }
    }
    Ok(())
}

/// Each period has exactly one invoice, and a subscription's invoices follow each other from
/// its start without a gap.
pub fn one_invoice_per_period(w: &World, invoices: &[Invoice]) -> Check {
    let mut by_sub: BTreeMap<(String, String), Vec<&Invoice>> = BTreeMap::new();
    for inv in invoices {
        by_sub
            .entry((inv.account_id.clone(), inv.subscription_id.clone()))
            .or_default()
            .push(inv);
    }
    for ((account, sub), mut invs) in by_sub {
        invs.sort_by_key(|i| i.period.start);
        let mut expected: DateTime<Utc> = w.start;
        for inv in &invs {
            if inv.period.start != expected {
                return Err(format!(
                    "{account}/{sub}: invoice {} for {} follows a period ending {expected}",
                    inv.invoice_id, inv.period
                ));
            }
            expected = inv.period.end;
        }
    }
    Ok(())
}

/// Customer totals equal payouts + fees + tax (net of the credit notes issued with the invoice),
/// and no credit note takes back more than its invoice's total.
pub fn totals_and_credits(w: &World, invoices: &[Invoice]) -> Check {
    let notes = w.billing.all_credit_notes();
    for inv in invoices {
        let noted: Decimal = notes
            .iter()
            .filter(|n| n.issued_with == inv.invoice_id)
            .map(|n| n.amount)
            .sum();
        let parts: Decimal = inv
            .statements
            .statements
            .iter()
            .map(|p| p.payout.amount + p.marketplace_fee.amount + p.tax.amount)
            .sum();
        if inv.total != inv.net_total + inv.tax_total || inv.total - noted != parts {
            return Err(format!(
                "invoice {}: total {} (net {} + tax {}) less notes {noted} != payouts + fees + tax {parts}",
                inv.invoice_id, inv.total, inv.net_total, inv.tax_total
            ));
        }
        let credited: Decimal = notes
            .iter()
            .filter(|n| n.original_invoice_id == inv.invoice_id)
            .map(|n| n.amount)
            .sum();
        if credited > inv.total {
            return Err(format!(
                "invoice {}: {credited} credited of {}",
                inv.invoice_id, inv.total
            ));
        }
    }
    Ok(())
}

/// Once every period is closed: usage billed (invoice lines plus adjustments) equals usage
/// aggregated, per account and meter, to the last decimal.
pub fn billed_equals_aggregated(w: &World) -> Check {
    let mut billed = PerMeter::new();
    let invoices = w.billing.invoices();
    let notes = w.billing.all_credit_notes();
    let lines = invoices
        .iter()
        .flat_map(|i| i.lines.iter().map(move |l| (&i.account_id, l)))
        .chain(
            notes
                .iter()
                .flat_map(|n| n.lines.iter().map(move |l| (&n.account_id, l))),
        );
    for (account, line) in lines {
        if let Some(m) = line.meter {
            add(&mut billed, account, m, line.quantity);
        }
    }
    let mut aggregated = PerMeter::new();
    for a in w
        .usage
        .aggregates()
        .into_iter()
        .filter(|a| a.granularity == Granularity::Hour)
    {
        add(&mut aggregated, &a.account_id, a.meter, a.quantity);
    }
    let (billed, aggregated) = (non_zero(billed), non_zero(aggregated));
    if billed != aggregated {
        let diff: Vec<_> = aggregated
            .iter()
            .filter(|(k, q)| billed.get(*k) != Some(*q))
            .map(|(k, q)| (k.clone(), *q, billed.get(k).copied()))
            .collect();
        return Err(format!(
            "billed != aggregated: (key, aggregated, billed) {diff:?}"
        ));
    }
    Ok(())
}

/// Once quiet: every invoice is numbered, its `InvoiceFinalized` event published, and no close
/// is left pending.
pub fn finalized_and_published(w: &World) -> Check {
    let published: BTreeSet<String> = w
        .events
        .events()
        .iter()
        .map(|e| e.event_id().to_string())
        .collect();
    for inv in w.billing.invoices() {
        if inv.number.is_none() {
            return Err(format!("invoice {} is still a draft", inv.invoice_id));
        }
        let id = format!("invoice-finalized#{}", inv.invoice_id);
        if !published.contains(&id) {
            return Err(format!("invoice {}: {id} never published", inv.invoice_id));
        }
    }
    let pending = pending_markers(w, w.now)?;
    if pending > 0 {
        return Err(format!("{pending} pending markers left"));
    }
    Ok(())
}

/// Pending markers written up to `until`.
pub fn pending_markers(w: &World, until: DateTime<Utc>) -> Result<usize, String> {
    let mut n = 0;
    for shard in 0..DUE_SHARDS {
        let page = now_or_never(w.billing.pending_invoices(shard, until, None, 10_000))
            .ok_or("reading pending markers waited")?
            .map_err(|e| e.to_string())?;
        n += page.items.len();
    }
    Ok(n)
}

/// Subscriptions due at `until` (a period ended and not closed).
pub fn due(w: &World, until: DateTime<Utc>) -> Result<usize, String> {
    let mut n = 0;
    for shard in 0..DUE_SHARDS {
        let page = now_or_never(w.billing.due_subscriptions(shard, until, None, 10_000))
            .ok_or("reading the due index waited")?
            .map_err(|e| e.to_string())?;
        n += page.items.len();
    }
    Ok(n)
}

/// Each late fee is charged once per invoice and fee period, and no invoice owes less than
/// nothing.
pub fn fees_once(w: &World, invoices: &[Invoice]) -> Check {
    let mut seen = BTreeSet::new();
    for fee in w.billing.fees() {
        if !seen.insert((fee.invoice_id.clone(), fee.period_index)) {
            return Err(format!("late fee {} charged twice", fee.key));
        }
    }
    for inv in invoices {
        if inv.outstanding < Decimal::ZERO {
            return Err(format!("invoice {} owes {}", inv.invoice_id, inv.outstanding));
        }
    }
    Ok(())
}

/// Once quiet: every late fee charged was announced (`InvoiceOverdue` of its fee period), every
/// paid invoice too (`InvoicePaid`), and every budget alert claimed was published (and every
/// alert published was claimed).
pub fn announced(w: &World) -> Check {
    let published: BTreeSet<String> = w
        .events
        .events()
        .iter()
        .map(|e| e.event_id().to_string())
        .collect();
    for fee in w.billing.fees() {
        let id = format!("invoice-overdue#{}#{}", fee.invoice_id, fee.period_index);
        if !published.contains(&id) {
            return Err(format!("late fee {} charged, {id} never published", fee.key));
        }
    }
    // A payment result whose retries ran out waits in the on-failure queue: redriven, it
    // publishes `InvoicePaid` (applied already, it is a duplicate that publishes again).
    let mut parked: BTreeSet<String> = lock(&w.pay_q)
        .messages
        .values()
        .filter(|m| m.state == State::Dead)
        .filter_map(|m| serde_json::from_str::<serde_json::Value>(&m.body).ok())
        .filter_map(|v| v["detail"]["invoice_id"].as_str().map(str::to_string))
        .collect();
    // So does a credit note request whose client gave up: sent again, it publishes the note's
    // events (and `InvoicePaid` if the note paid the invoice).
    let parked_notes = parked_note_requests(w);
    parked.extend(parked_notes.iter().map(|r| r.invoice_id.clone()));
    for n in w
        .billing
        .all_credit_notes()
        .iter()
        .filter(|n| n.issued_with == MANUAL)
    {
        let id = format!("credit-note-issued#{}", n.credit_note_id);
        let gave_up = parked_notes.iter().any(|r| r.note_id == n.credit_note_id);
        if !published.contains(&id) && !gave_up {
            return Err(format!(
                "credit note {} issued, {id} never published",
                n.credit_note_id
            ));
        }
    }
    for inv in w.billing.invoices() {
        let id = format!("invoice-paid#{}", inv.invoice_id);
        let paid = inv.status == meterline_shared::domain::billing::InvoiceStatus::Paid;
        if paid && !published.contains(&id) && !parked.contains(&inv.invoice_id) {
            return Err(format!("invoice {} paid, {id} never published", inv.invoice_id));
        }
    }
    let claims: BTreeSet<String> = w.budgets.claims().into_iter().collect();
    for key in &claims {
        if !published.contains(key) {
            return Err(format!("budget alert {key} claimed, never published"));
        }
    }
    for e in w.events.events() {
        if e.detail_type == meterline_shared::domain::estimate::EVENT_DETAIL_TYPE
            && !claims.contains(e.event_id())
        {
            return Err(format!(
                "budget alert {} published without its claim",
                e.event_id()
            ));
        }
    }
    Ok(())
}

/// Each manual credit note is one an operator asked for, with the amount asked (however often
/// it was asked: a replay changes nothing), and the store's credited sum of each invoice is the
/// sum of its manual notes.
pub fn notes_as_asked(w: &World) -> Check {
    let mut sums: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for n in w
        .billing
        .all_credit_notes()
        .iter()
        .filter(|n| n.issued_with == MANUAL)
    {
        let asked = w.ledger.notes.get(&n.credit_note_id).ok_or(format!(
            "credit note {} issued, never asked for",
            n.credit_note_id
        ))?;
        if (&asked.account_id, &asked.invoice_id, asked.amount)
            != (&n.account_id, &n.original_invoice_id, n.amount)
        {
            return Err(format!(
                "credit note {} is {n:?}, asked as {asked:?}",
                n.credit_note_id
            ));
        }
        *sums
            .entry((n.account_id.clone(), n.original_invoice_id.clone()))
            .or_default() += n.amount;
    }
    let kept = w.billing.manual_credited();
    if non_zero_sums(kept.clone()) != sums {
        return Err(format!(
            "credited per invoice {kept:?} != manual credit notes {sums:?}"
        ));
    }
    Ok(())
}

fn non_zero_sums(m: BTreeMap<(String, String), Decimal>) -> BTreeMap<(String, String), Decimal> {
    m.into_iter().filter(|(_, v)| !v.is_zero()).collect()
}

/// Each account's credit balance is its balance at the start plus the credit notes put on it
/// (a close's notes in full, a manual note what it did not take off its invoice) less the credit
/// its invoices applied; it is never negative, and no manual note puts on it more than its
/// amount.
pub fn credit_balance(w: &World, invoices: &[Invoice]) -> Check {
    let mut expected = w.initial_balance.clone();
    for n in w.billing.all_credit_notes() {
        if n.issued_with != MANUAL {
            *expected.entry(n.account_id.clone()).or_default() += n.amount;
        }
    }
    let notes: BTreeMap<(String, String), Decimal> = w
        .billing
        .all_credit_notes()
        .into_iter()
        .filter(|n| n.issued_with == MANUAL)
        .map(|n| ((n.account_id, n.credit_note_id), n.amount))
        .collect();
    let to_balance = w.billing.to_balance();
    if to_balance.keys().ne(notes.keys()) {
        return Err(format!(
            "credit put on balances {to_balance:?}, manual notes {notes:?}"
        ));
    }
    for ((account, id), credit) in &to_balance {
        if *credit < Decimal::ZERO || Some(credit) > notes.get(&(account.clone(), id.clone())) {
            return Err(format!("credit note {id} put {credit} on the balance"));
        }
        *expected.entry(account.clone()).or_default() += credit;
    }
    for inv in invoices {
        *expected.entry(inv.account_id.clone()).or_default() -= inv.credit_applied;
    }
    for (account, want) in expected {
        let found = now_or_never(w.billing.account(&account))
            .ok_or("reading an account waited")?
            .map_err(|e| e.to_string())?
            .map(|a| a.credit_balance.amount)
            .unwrap_or_default();
        if found != want || found < Decimal::ZERO {
            return Err(format!(
                "account {account}: credit balance {found}, notes less credit applied give {want}"
            ));
        }
    }
    Ok(())
}

/// The credit note requests the operator's client gave up on (3 failed tries).
fn parked_note_requests(w: &World) -> Vec<NoteRequest> {
    lock(&w.credit_q)
        .messages
        .values()
        .filter(|m| m.state == State::Dead)
        .filter_map(|m| serde_json::from_str(&m.body).ok())
        .collect()
}

/// The invariants that hold after every step, whatever is in flight.
pub fn always(w: &World) -> Check {
    let invoices = w.billing.invoices();
    numbering(w, &invoices)?;
    one_invoice_per_period(w, &invoices)?;
    totals_and_credits(w, &invoices)?;
    fees_once(w, &invoices)?;
    notes_as_asked(w)?;
    credit_balance(w, &invoices)
}

/// The invariants that hold once the run is quiet: no instance running, no message waiting.
pub fn at_rest(w: &World) -> Check {
    always(w)?;
    usage_aggregated(w)?;
    ingest_accounted(w)?;
    billed_equals_aggregated(w)?;
    finalized_and_published(w)?;
    announced(w)
}
