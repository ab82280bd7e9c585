//! Issued invoices, credit notes, provider statements and the tax report (`docs/api.md`).
//!
//! Reads are open to the account's customer key (invoices, credit notes) or the provider's key
//! (statements); what changes an invoice (void, mark paid, credit notes) and the tax report are
//! operator routes. The decisions are `meterline_shared::domain::billing::ledger`; the reads and
//! conditional writes go through the `IssuedInvoices` port (`meterline_shared::ports::issued`).

use crate::request::invoices::{
    AllInvoicesList, InvoiceList, InvoicePageQuery, MarkPaid, NewCreditNote, ReportFormat, StatementList,
    TaxReportQuery,
};
use crate::request::types::{Cursor, InvoiceId, RefId};
use crate::request::NoBody;
use crate::{encode_token, json_response, store_problem, Ctx, Outcome};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use lambda_http::http::StatusCode;
use lambda_http::Body;
use meterline_shared::adapters::http::problem::Problem;
use meterline_shared::domain::access::keys::Principal;
use meterline_shared::domain::billing::close::MAX_INVOICE_ID_LEN;
use meterline_shared::domain::billing::events::{paid_event, voided_event, BillingEvent, PaymentResult};
use meterline_shared::domain::billing::ledger::{
    check_void, jurisdiction_code, manual_credit_note_id, tax_summary, tax_summary_csv, treatment_code,
    CreditNoteError, ManualCredit, TaxSummaryRow, VoidError,
};
use meterline_shared::domain::billing::{CreditNoteDoc, Invoice, InvoiceStatus};
use meterline_shared::domain::usage::event::is_valid_ref_id;
use meterline_shared::domain::usage::FieldError;
use meterline_shared::ports::billing::PaymentOutcome;
use meterline_shared::ports::issued::StatementEntry;
use meterline_shared::ports::StoreError;
use meterline_shared::services::credit_notes::{CreditNotes, IssueError, Issued};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Largest page of any list here.
pub const MAX_PAGE: usize = 100;
/// Default page size.
pub const DEFAULT_PAGE: usize = 20;
/// Longest time range of one tax report.
pub const MAX_REPORT_DAYS: i64 = 366;
/// Longest credit-note memo, in characters.
pub const MAX_MEMO_CHARS: usize = 500;
/// Attempts of a write whose invoice changed under it (a concurrent payment or credit note).
const ATTEMPTS: usize = 3;

/// A credit note id from the path: `credit-note#<invoice id>#<key>`, with each `#` sent as
/// `%23` (a bare `#` would end the path).
pub(crate) fn credit_note_param(raw: &str) -> Result<String, Problem> {
    let id = raw.to_string();
    // Each part is an id (the invoice's, or the key it was issued with): no longer than an
    // invoice id.
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= MAX_INVOICE_ID_LEN
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:~".contains(&b))
    };
    let max = "credit-note#".len() + 2 * (MAX_INVOICE_ID_LEN + 1);
    let ok = id.len() <= max && id.split('#').all(part_ok);
    if ok {
        Ok(id)
    } else {
        Err(Problem::invalid_field(
            "credit_note_id",
            "invalid_format",
            "must be a `credit_note_id` this API returned, each `#` sent as `%23`",
        ))
    }
}

/// A `cursor` of a list whose positions start with `prefix`.
fn cursor_param(cursor: Option<&Cursor>, prefix: &str) -> Result<Option<String>, Problem> {
    match cursor {
        None => Ok(None),
        Some(c) => {
            let d = c.decode()?;
            if d.starts_with(prefix) {
                Ok(Some(d))
            } else {
                Err(Problem::invalid_field(
                    "cursor",
                    "invalid",
                    "is not a cursor this API returned",
                ))
            }
        }
    }
}

/// An invoice as the API shows it: the provider statements (fees, payouts) to operators only;
/// without lines in lists.
fn invoice_json(inv: &Invoice, with_lines: bool, operator: bool) -> Value {
    let mut v = json!(inv);
    if let Some(m) = v.as_object_mut() {
        if !operator {
            m.remove("statements");
        }
        if !with_lines {
            m.remove("lines");
            m.remove("statements");
        }
    }
    v
}

fn credit_note_json(n: &CreditNoteDoc) -> Value {
    let mut v = json!(n);
    v["kind"] = json!(
        if n.issued_with == meterline_shared::domain::billing::ledger::MANUAL {
            "manual"
        } else if meterline_shared::domain::billing::upfront::is_refund_note(&n.credit_note_id) {
            "reservation_refund"
        } else {
            "late_usage"
        }
    );
    v
}

/// `<period end, compact>:<invoice id>`: a statement entry's id.
pub(crate) fn statement_id(period_end: DateTime<Utc>, invoice_id: &str) -> String {
    format!("{}:{invoice_id}", period_end.format("%Y%m%dT%H%M%S%.3fZ"))
}

pub(crate) fn parse_statement_id(id: &str) -> Option<(DateTime<Utc>, String)> {
    let (stamp, invoice) = id.split_once(':')?;
    let t = NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3fZ").ok()?;
    (!invoice.is_empty()).then(|| (Utc.from_utc_datetime(&t), invoice.to_string()))
}

fn statement_json(e: &StatementEntry, operator: bool) -> Value {
    let mut v = json!({
        "statement_id": statement_id(e.period_end, &e.invoice_id),
        "invoice_id": e.invoice_id,
        "period_end": e.period_end,
        "voided": e.voided,
        "statement": e.statement,
    });
    if operator {
        v["account_id"] = json!(e.account_id);
    }
    v
}

fn list_json(data: Vec<Value>, next: Option<String>) -> Value {
    json!({"data": data, "next_cursor": next.map(|n| encode_token(&n))})
}

fn is_operator(c: &Ctx) -> bool {
    matches!(c.principal, Some(Principal::Operator { .. }))
}

/// 422 naming `field`.
fn unprocessable(field: &str, code: &str, message: String) -> Problem {
    Problem::new(
        422,
        "unprocessable",
        "Unprocessable request",
        format!("{field}: {message}"),
    )
    .with_errors(vec![FieldError::new(field, code, message)])
}

fn conflict(detail: String) -> Problem {
    Problem::new(409, "invalid-state", "Invoice state does not allow this", detail)
}

/// CSV when `format=csv`, or without `format` when the `Accept` header asks for it.
fn wants_csv(c: &Ctx, format: Option<ReportFormat>) -> bool {
    match format {
        Some(ReportFormat::Csv) => true,
        Some(ReportFormat::Json) => false,
        None => c
            .req
            .headers()
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv")),
    }
}

fn row_json(r: &TaxSummaryRow) -> Value {
    json!({
        "currency": r.currency.code(),
        "jurisdiction": r.jurisdiction.as_ref().map(|j| jurisdiction_code(Some(j))),
        "rate": r.rate.map(|d| d.normalize().to_string()),
        "treatment": r.treatment.map(|t| treatment_code(Some(t))),
        "taxable": r.currency.round(r.taxable).to_string(),
        "tax": r.currency.round(r.tax).to_string(),
        "invoices": r.invoices,
    })
}

/// 503 for a change made whose events could not be published: the same request publishes them.
fn unpublished(e: &StoreError) -> Problem {
    tracing::error!(error = %e, "billing events not published");
    Problem::new(
        503,
        "unavailable",
        "Service unavailable",
        "the change was made but its events could not be published; retry the same request to publish them",
    )
}

/// The problem of a credit note the ledger refused.
fn credit_refused(e: CreditNoteError) -> Problem {
    match e {
        CreditNoteError::Status(..) => conflict(e.to_string()),
        CreditNoteError::NotPositive => unprocessable("amount", "out_of_range", e.to_string()),
        CreditNoteError::NotRounded { .. } => unprocessable("amount", "too_precise", e.to_string()),
        CreditNoteError::OverCredit { .. } => unprocessable("amount", "over_credit", e.to_string()),
    }
}

impl crate::Api {
    /// Publishes the events of a change already written. A failure is a 503, so the client
    /// retries; the retry finds the change made and publishes the same events (same ids) again:
    /// at least once, never lost.
    async fn publish(&self, events: &[BillingEvent]) -> Result<(), Problem> {
        if events.is_empty() {
            return Ok(());
        }
        let b = self.billing_api()?;
        b.events.publish(events).await.map_err(|e| unpublished(&e))
    }

    async fn existing_invoice(&self, account_id: &str, invoice_id: &str) -> Result<Invoice, Problem> {
        let b = self.billing_api()?;
        match b.billing.invoice(account_id, invoice_id).await {
            Ok(Some(inv)) => Ok(inv),
            Ok(None) => Err(Problem::not_found(format!("no invoice {invoice_id}"))),
            Err(e) => Err(store_problem(&e)),
        }
    }

    async fn existing_account(&self, account_id: &str) -> Result<(), Problem> {
        let b = self.billing_api()?;
        match b.billing.account(account_id).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Problem::not_found(format!("no account {account_id}"))),
            Err(e) => Err(store_problem(&e)),
        }
    }

    fn path_ids(c: &Ctx) -> Result<(String, String), Problem> {
        let account: RefId = c.path("account_id")?;
        let invoice: InvoiceId = c.path("invoice_id")?;
        Ok((account.0, invoice.0))
    }

    /// `GET /v1/accounts/{account_id}/invoices`
    pub(crate) async fn list_invoices(&self, c: &Ctx) -> Outcome {
        let account: RefId = c.path("account_id")?;
        let account = account.0;
        let (filter, limit, cursor) = c
            .query::<InvoiceList>()?
            .validate("query", InvoiceList::validate)?;
        let after = cursor_param(cursor.as_ref(), "INV#")?;
        let b = self.billing_api()?;
        self.existing_account(&account).await?;
        let page = b
            .issued
            .list_invoices(&account, &filter, after.as_deref(), limit)
            .await
            .map_err(|e| store_problem(&e))?;
        let op = is_operator(c);
        let data = page.items.iter().map(|i| invoice_json(i, false, op)).collect();
        Ok(json_response(StatusCode::OK, list_json(data, page.next)))
    }

    /// `GET /v1/invoices`: every account's invoices issued in a range, for operators.
    pub(crate) async fn list_all_invoices(&self, c: &Ctx) -> Outcome {
        let ask = c
            .query::<AllInvoicesList>()?
            .validate("query", |q| q.validate(c.now))?;
        let (filter, from, to, limit) = (ask.filter, ask.from, ask.to, ask.limit);
        let after = match &ask.cursor {
            None => None,
            Some(c) => {
                let d = c.decode()?;
                match d.split_once('|') {
                    Some((t, k)) if t.parse::<DateTime<Utc>>().is_ok() && k.starts_with("INV#") => Some(d),
                    _ => {
                        return Err(Problem::invalid_field(
                            "cursor",
                            "invalid",
                            "is not a cursor this API returned",
                        ))
                    }
                }
            }
        };
        let b = self.billing_api()?;
        let page = b
            .issued
            .list_all_invoices(from, to, &filter, after.as_deref(), limit)
            .await
            .map_err(|e| store_problem(&e))?;
        let data = page.items.iter().map(|i| invoice_json(i, false, true)).collect();
        Ok(json_response(StatusCode::OK, list_json(data, page.next)))
    }

    /// `GET /v1/accounts/{account_id}/invoices/{invoice_id}`
    pub(crate) async fn get_invoice(&self, c: &Ctx) -> Outcome {
        let (account, id) = Self::path_ids(c)?;
        let inv = self.existing_invoice(&account, &id).await?;
        Ok(json_response(
            StatusCode::OK,
            invoice_json(&inv, true, is_operator(c)),
        ))
    }

    /// `POST /v1/accounts/{account_id}/invoices/{invoice_id}/void`
    pub(crate) async fn void_invoice(&self, c: &Ctx) -> Outcome {
        c.body_ok::<NoBody>()?;
        let (account, id) = Self::path_ids(c)?;
        let b = self.billing_api()?;
        for _ in 0..ATTEMPTS {
            let inv = self.existing_invoice(&account, &id).await?;
            if inv.status == InvoiceStatus::Void {
                // Voided before (this is a retry, or a repeat): its event again, same id.
                self.publish(&[voided_event(&inv)]).await?;
                return Ok(json_response(StatusCode::OK, invoice_json(&inv, true, true)));
            }
            let paid = b
                .issued
                .payments_applied(&account, &id)
                .await
                .map_err(|e| store_problem(&e))?;
            let credited = b
                .issued
                .credited(&account, &id)
                .await
                .map_err(|e| store_problem(&e))?;
            check_void(&inv, paid, credited > Decimal::ZERO).map_err(|e| match e {
                VoidError::Illegal(t) => conflict(t.to_string()),
                other => conflict(other.to_string()),
            })?;
            if b.issued.void_invoice(&inv).await.map_err(|e| store_problem(&e))? {
                let voided = self.existing_invoice(&account, &id).await?;
                self.publish(&[voided_event(&voided)]).await?;
                return Ok(json_response(StatusCode::OK, invoice_json(&voided, true, true)));
            }
        }
        Err(conflict(format!("invoice {id} kept changing; retry")))
    }

    /// `POST /v1/accounts/{account_id}/invoices/{invoice_id}/mark-paid`
    pub(crate) async fn mark_paid(&self, c: &Ctx) -> Outcome {
        let body = c.body_ok::<MarkPaid>()?;
        let (account, id) = Self::path_ids(c)?;
        let (payment_id, amount) = (body.payment_id.0, body.amount.map(|a| a.0));
        let event_id = format!("manual#{payment_id}");
        let b = self.billing_api()?;
        for _ in 0..ATTEMPTS {
            let inv = self.existing_invoice(&account, &id).await?;
            let recorded = b
                .issued
                .payment_recorded(&account, &event_id)
                .await
                .map_err(|e| store_problem(&e))?;
            if recorded {
                // A retry: publish again what the payment did (same id), in case it was lost.
                if inv.status == InvoiceStatus::Paid {
                    self.publish(&[paid_event(&inv)]).await?;
                }
                return Ok(json_response(
                    StatusCode::OK,
                    json!({"payment_id": payment_id, "duplicate": true, "invoice": invoice_json(&inv, true, true)}),
                ));
            }
            if !(inv.status.is_collectible() || inv.status == InvoiceStatus::Uncollectible) {
                return Err(conflict(format!(
                    "invoice {id} is {}; it cannot be paid",
                    inv.status
                )));
            }
            let amount = match amount {
                None => inv.outstanding,
                Some(a) if a <= Decimal::ZERO => {
                    return Err(unprocessable("amount", "out_of_range", "must be positive".into()))
                }
                Some(a) if !inv.currency.is_rounded(a) => {
                    return Err(unprocessable(
                        "amount",
                        "too_precise",
                        format!("has more digits than {} allows", inv.currency.code()),
                    ))
                }
                Some(a) if a > inv.outstanding => {
                    return Err(unprocessable(
                        "amount",
                        "out_of_range",
                        format!("is more than the {} outstanding", inv.outstanding),
                    ))
                }
                Some(a) => inv.currency.round(a),
            };
            let result = PaymentResult {
                event_id: event_id.clone(),
                invoice_id: id.clone(),
                top_up_id: None,
                account_id: account.clone(),
                currency: inv.currency.code().to_string(),
                amount,
                at: c.now,
                reason: Some("marked paid out of band".into()),
            };
            match b.billing.record_payment(&result, true).await {
                Ok(outcome) => {
                    let after = self.existing_invoice(&account, &id).await?;
                    if after.status == InvoiceStatus::Paid {
                        self.publish(&[paid_event(&after)]).await?;
                    }
                    return Ok(json_response(
                        StatusCode::OK,
                        json!({
                            "payment_id": payment_id,
                            "duplicate": matches!(outcome, PaymentOutcome::Duplicate),
                            "amount": amount.to_string(),
                            "invoice": invoice_json(&after, true, true),
                        }),
                    ));
                }
                Err(meterline_shared::ports::StoreError::Conflict(_)) => continue,
                Err(e) => return Err(store_problem(&e)),
            }
        }
        Err(conflict(format!("invoice {id} kept changing; retry")))
    }

    /// `GET /v1/accounts/{account_id}/invoices/{invoice_id}/credit-notes` and
    /// `GET /v1/accounts/{account_id}/credit-notes`
    pub(crate) async fn list_credit_notes(&self, c: &Ctx) -> Outcome {
        let account: RefId = c.path("account_id")?;
        let account = account.0;
        let invoice = match c.params.get("invoice_id") {
            Some(_) => Some(c.path::<InvoiceId>("invoice_id")?.0),
            None => None,
        };
        let q = c.query_ok::<InvoicePageQuery>()?;
        let limit = q.limit.unwrap_or_default().0;
        let after = cursor_param(q.cursor.as_ref(), "CN#")?;
        let b = self.billing_api()?;
        match &invoice {
            Some(id) => {
                self.existing_invoice(&account, id).await?;
            }
            None => self.existing_account(&account).await?,
        }
        let page = b
            .issued
            .list_credit_notes(&account, invoice.as_deref(), after.as_deref(), limit)
            .await
            .map_err(|e| store_problem(&e))?;
        let data = page.items.iter().map(credit_note_json).collect();
        Ok(json_response(StatusCode::OK, list_json(data, page.next)))
    }

    /// `GET /v1/accounts/{account_id}/credit-notes/{credit_note_id}`
    pub(crate) async fn get_credit_note(&self, c: &Ctx) -> Outcome {
        let account: RefId = c.path("account_id")?;
        let account = account.0;
        let id = credit_note_param(c.param("credit_note_id"))?;
        let b = self.billing_api()?;
        match b.issued.credit_note(&account, &id).await {
            Ok(Some(n)) => Ok(json_response(StatusCode::OK, credit_note_json(&n))),
            Ok(None) => Err(Problem::not_found(format!("no credit note {id}"))),
            Err(e) => Err(store_problem(&e)),
        }
    }

    /// `POST /v1/accounts/{account_id}/invoices/{invoice_id}/credit-notes`
    pub(crate) async fn create_credit_note(&self, c: &Ctx) -> Outcome {
        let body = c.body_ok::<NewCreditNote>()?;
        let (account, id) = Self::path_ids(c)?;
        let amount = body.amount.0;
        let reason = body.reason.map(|r| r.0);
        let memo = body.memo.map(|m| m.0);
        // One note per key: the body's `credit_note_id`, the Idempotency-Key, or a new one.
        let key = match body.credit_note_id {
            Some(k) => k.0,
            None => c
                .req
                .headers()
                .get(meterline_shared::domain::access::idempotency::HEADER)
                .and_then(|v| v.to_str().ok())
                .filter(|k| is_valid_ref_id(k))
                .map(str::to_string)
                .unwrap_or_else(|| {
                    let r: [u8; 12] = crate::random();
                    r.iter().map(|b| format!("{b:02x}")).collect()
                }),
        };
        let note_id = manual_credit_note_id(&id, &key);
        let credit = ManualCredit { amount, reason, memo };
        let b = self.billing_api()?;
        let notes = CreditNotes {
            billing: b.billing.as_ref(),
            issued: b.issued.as_ref(),
            publisher: b.events.as_ref(),
        };
        match notes.issue(&account, &id, &note_id, &credit, c.now).await {
            Ok(Issued::Created(n)) => Ok(json_response(StatusCode::CREATED, credit_note_json(&n))),
            Ok(Issued::Existing(n)) => Ok(json_response(StatusCode::OK, credit_note_json(&n))),
            Err(IssueError::NoInvoice(_)) => Err(Problem::not_found(format!("no invoice {id}"))),
            Err(IssueError::Refused(e)) => Err(credit_refused(e)),
            Err(IssueError::KeptChanging(_)) => Err(conflict(format!("invoice {id} kept changing; retry"))),
            Err(IssueError::Store(e)) => Err(store_problem(&e)),
            Err(IssueError::Unpublished(e)) => Err(unpublished(&e)),
        }
    }

    /// `GET /v1/providers/{provider_id}/statements`
    pub(crate) async fn list_statements(&self, c: &Ctx) -> Outcome {
        let provider: RefId = c.path("provider_id")?;
        let provider = provider.0;
        let (from, to, limit, cursor) = c
            .query::<StatementList>()?
            .validate("query", StatementList::validate)?;
        let after = cursor_param(cursor.as_ref(), "STMT#")?;
        let b = self.billing_api()?;
        let page = b
            .issued
            .list_statements(&provider, from, to, after.as_deref(), limit)
            .await
            .map_err(|e| store_problem(&e))?;
        let op = is_operator(c);
        let data = page.items.iter().map(|e| statement_json(e, op)).collect();
        Ok(json_response(StatusCode::OK, list_json(data, page.next)))
    }

    /// `GET /v1/providers/{provider_id}/statements/{statement_id}`
    pub(crate) async fn get_statement(&self, c: &Ctx) -> Outcome {
        let provider: RefId = c.path("provider_id")?;
        let provider = provider.0;
        let raw = c.param("statement_id");
        let (end, invoice) = parse_statement_id(raw)
            .filter(|(_, inv)| InvoiceId::is_like(inv))
            .ok_or_else(|| {
                Problem::invalid_field(
                    "statement_id",
                    "invalid_format",
                    "must be a statement id this API returned",
                )
            })?;
        let b = self.billing_api()?;
        match b.issued.statement_entry_of(&provider, end, &invoice).await {
            Ok(Some(e)) => Ok(json_response(StatusCode::OK, statement_json(&e, is_operator(c)))),
            Ok(None) => Err(Problem::not_found(format!("no statement {raw}"))),
            Err(e) => Err(store_problem(&e)),
        }
    }

    /// `GET /v1/reports/tax?from=&to=`
    pub(crate) async fn tax_report(&self, c: &Ctx) -> Outcome {
        let (from, to, format) = c
            .query::<TaxReportQuery>()?
            .validate("query", TaxReportQuery::validate)?;
        let csv = wants_csv(c, format);
        let b = self.billing_api()?;
        let invoices = b
            .issued
            .invoices_issued(from, to)
            .await
            .map_err(|e| store_problem(&e))?;
        let rows = tax_summary(&invoices);
        if csv {
            let disposition = format!(
                "attachment; filename=\"tax-{}-{}.csv\"",
                from.format("%Y%m%dT%H%M%SZ"),
                to.format("%Y%m%dT%H%M%SZ")
            );
            return Ok(crate::response(
                StatusCode::OK,
                &[
                    ("content-type", "text/csv; charset=utf-8"),
                    ("content-disposition", &disposition),
                ],
                Body::Text(tax_summary_csv(&rows)),
            ));
        }
        let mut totals: BTreeMap<&str, (Decimal, Decimal)> = BTreeMap::new();
        for r in &rows {
            let t = totals.entry(r.currency.code()).or_default();
            t.0 += r.taxable;
            t.1 += r.tax;
        }
        let finalized = invoices
            .iter()
            .filter(|i| !matches!(i.status, InvoiceStatus::Draft | InvoiceStatus::Void))
            .count();
        Ok(json_response(
            StatusCode::OK,
            json!({
                "from": from,
                "to": to,
                "invoices": finalized,
                "rows": rows.iter().map(row_json).collect::<Vec<_>>(),
                "totals": totals.iter().map(|(cur, (taxable, tax))| json!({
                    "currency": cur, "taxable": taxable.to_string(), "tax": tax.to_string()
                })).collect::<Vec<_>>(),
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_note_ids_are_checked_after_the_router_decoded_them() {
        assert_eq!(
            credit_note_param("credit-note#inv_1#manual-cn1").unwrap(),
            "credit-note#inv_1#manual-cn1"
        );
        assert!(credit_note_param("credit-note#inv_1#evt_7").is_ok());
        assert!(credit_note_param("credit-note#inv_a~s_20261124T130000Z#inv_a~s_20261125T130000Z").is_ok());
        // The longest: two parts as long as the longest invoice id (a reservation's upfront).
        let part = "x".repeat(MAX_INVOICE_ID_LEN);
        assert!(credit_note_param(&format!("credit-note#{part}#{part}")).is_ok());
        let longest = "credit-note#".len() + 2 * (MAX_INVOICE_ID_LEN + 1);
        for bad in [
            "",
            "credit-note##x",
            "credit-note%23x",
            "a/b",
            "credit note",
            &format!("credit-note#{part}x#k"),
            &"x".repeat(longest + 1),
        ] {
            let p = credit_note_param(bad).unwrap_err();
            assert_eq!(p.errors[0].field, "credit_note_id", "{bad}");
        }
    }

    #[test]
    fn statement_ids_round_trip() {
        let t = Utc.with_ymd_and_hms(2026, 11, 25, 13, 0, 0).unwrap();
        let id = statement_id(t, "inv_acct_a~sub_a_20261124T130000Z");
        assert_eq!(
            parse_statement_id(&id),
            Some((t, "inv_acct_a~sub_a_20261124T130000Z".into()))
        );
        assert_eq!(parse_statement_id("nope"), None);
        assert_eq!(parse_statement_id("20261125T130000.000Z:"), None);
    }
}
