//! The operator's credit notes: now and then a credit note against a closed invoice, asked of
//! the API's credit-note service (`services::credit_notes`, what `POST .../credit-notes` runs)
//! over the faulty ports, sent again after a failure (a 5xx: the same note id, so a retry is a
//! replay), and now and then replayed on purpose. Draws come from [`World::credit_rng`].

use crate::exec::{Kind, Outcome};
use crate::faults::{Crash, Faulty};
use crate::queue::Delivery;
use crate::world::{lock, NoteRequest, World};
use meterline_shared::domain::billing::ledger::{manual_credit_note_id, ManualCredit};
use meterline_shared::domain::billing::InvoiceStatus;
use meterline_shared::services::credit_notes::{CreditNotes, IssueError};
use rust_decimal::Decimal;
use std::sync::Arc;

impl World {
    /// Now and then a credit note (or two at once) of 1–60 % of a closed invoice's total, or a
    /// replay of an earlier request (the same note id and amount).
    pub fn send_credit_note(&mut self) {
        if self.settling || !self.credit_rng.chance(self.config.credit_chance) {
            return;
        }
        if self.credit_rng.chance(200) && !self.ledger.notes.is_empty() {
            let pick = self.credit_rng.index(self.ledger.notes.len());
            if let Some(r) = self.ledger.notes.values().nth(pick).cloned() {
                self.ledger.notes_replayed += 1;
                self.send_note(&r);
            }
            return;
        }
        let closed: Vec<_> = self
            .billing
            .invoices()
            .into_iter()
            .filter(|i| {
                matches!(
                    i.status,
                    InvoiceStatus::Open | InvoiceStatus::PastDue | InvoiceStatus::Paid
                ) && i.total > Decimal::ZERO
            })
            .collect();
        if closed.is_empty() {
            return;
        }
        let inv = &closed[self.credit_rng.index(closed.len())];
        // Now and then two notes against one invoice at once (two operators, or one who sent
        // the second before the first was answered): together they may ask for more than the
        // invoice can give.
        let notes = if self.credit_rng.chance(300) { 2 } else { 1 };
        for _ in 0..notes {
            let percent = Decimal::from(self.credit_rng.range(1, 60));
            let amount = inv
                .currency
                .round(inv.total * percent / Decimal::ONE_HUNDRED)
                .max(Decimal::new(1, 2));
            let key = format!("sim-{:06}", self.ledger.notes.len() + 1);
            let request = NoteRequest {
                account_id: inv.account_id.clone(),
                invoice_id: inv.invoice_id.clone(),
                note_id: manual_credit_note_id(&inv.invoice_id, &key),
                amount,
            };
            self.ledger.notes.insert(request.note_id.clone(), request.clone());
            self.send_note(&request);
        }
    }

    fn send_note(&mut self, request: &NoteRequest) {
        if let Ok(body) = serde_json::to_string(request) {
            lock(&self.credit_q).send(body);
        }
    }

    /// Lets the operator's client send a request that is due, one at a time per instance, up
    /// to the concurrency limit.
    pub fn receive_credit(&mut self) {
        let running = self
            .tasks
            .iter()
            .filter(|t| matches!(t.kind, Kind::Credit(_)))
            .count();
        if running >= self.config.max_instances || !self.credit_rng.chance(700) {
            return;
        }
        let got = lock(&self.credit_q).receive(1);
        if !got.is_empty() {
            self.spawn_credit(got);
        }
    }

    /// One API call: the service's answer, a failure for a 5xx (sent again) and a success for
    /// any other answer (a 4xx is final: the client does not send it again).
    fn spawn_credit(&mut self, got: Vec<Delivery>) {
        let crash = Arc::new(Crash::default());
        let billing = Faulty::new(self.billing.clone(), self.faults.clone(), crash.clone());
        let publisher = Faulty::new(self.events.clone(), self.faults.clone(), crash.clone());
        let body = got.first().map(|d| d.body.clone()).unwrap_or_default();
        let now = self.now;
        let fut = Box::pin(async move {
            let request: NoteRequest = match serde_json::from_str(&body) {
                Ok(r) => r,
                Err(e) => return Outcome::Done(Err(e.to_string())),
            };
            let notes = CreditNotes {
                billing: &billing,
                issued: &billing,
                publisher: &publisher,
            };
            let credit = ManualCredit {
                amount: request.amount,
                reason: None,
                memo: None,
            };
            let result = notes
                .issue(
                    &request.account_id,
                    &request.invoice_id,
                    &request.note_id,
                    &credit,
                    now,
                )
                .await;
            Outcome::Done(match result {
                Ok(_) | Err(IssueError::NoInvoice(_) | IssueError::Refused(_)) => Ok(()),
                Err(e) => Err(e.to_string()),
            })
        });
        self.push(Kind::Credit(got), crash, fut);
    }
}
