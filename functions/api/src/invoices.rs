//! Issued invoices, credit notes, provider statements and the tax report (`docs/api.md`).
//!
//! Reads are open to the account's customer key (invoices, credit notes) or the provider's key
//! (statements); what changes an invoice (void, mark paid, credit notes) and the tax report are
//! operator routes. The decisions are `meterline_shared::domain::billing::ledger`; the reads and
//! conditional writes go through the `IssuedInvoices` port (`meterline_shared::ports::issued`).

use crate::{
    account_param, body_bytes, decode_token, encode_token, json_response, limit_param, store_problem,
    time_param, Ctx, Outcome,
};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::http::StatusCode;
use lambda_http::{Body, RequestExt, Response};
use meterline_shared::adapters::http::problem::Problem;
use meterline_shared::domain::access::keys::Principal;
use meterline_shared::domain::billing::close::MAX_INVOICE_ID_LEN;
use meterline_shared::domain::billing::events::{
    credit_note_event, paid_event, voided_event, BillingEvent, PaymentResult,
};
use meterline_shared::domain::billing::ledger::{
    check_void, jurisdiction_code, manual_credit_note, manual_credit_note_id, tax_summary, tax_summary_csv,
    treatment_code, CreditNoteError, CreditReason, InvoiceFilter, ManualCredit, TaxSummaryRow, VoidError,
};
use meterline_shared::domain::billing::{CreditNoteDoc, Invoice, InvoiceStatus};
use meterline_shared::domain::usage::event::is_valid_ref_id;
use meterline_shared::domain::usage::FieldError;
use meterline_shared::ports::billing::PaymentOutcome;
use meterline_shared::ports::issued::{CreditNoteOutcome, StatementEntry};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::str::FromStr;

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

fn id_param(name: &str, raw: &str) -> Result<String, Problem> {
    if is_valid_ref_id(raw) {
        Ok(raw.to_string())
    } else {
        Err(Problem::invalid_field(
            name,
            "invalid_format",
            crate::limits::REF_ID_RULE,
        ))
    }
}

/// Whether `id` may be an invoice id: 1 to [`MAX_INVOICE_ID_LEN`] of the id characters and `~`
/// (`inv_<account>~<subscription>_<start>`; any other such text is simply not found).
fn is_invoice_id_like(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_INVOICE_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:~".contains(&b))
}

/// An invoice id from the path.
fn invoice_param(raw: &str) -> Result<String, Problem> {
    match is_invoice_id_like(raw) {
        true => Ok(raw.to_string()),
        false => Err(Problem::invalid_field(
            "invoice_id",
            "invalid_format",
            "must be an `invoice_id` this API returned",
        )),
    }
}

/// A credit note id from the path (decoded by the router): `credit-note#<invoice id>#<key>`,
/// each `#` sent as `%23` (a bare `#` would end the path).
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

fn decimal_param(q: &QueryMap, name: &str) -> Result<Option<Decimal>, Problem> {
    q.first(name)
        .map(|v| {
            Decimal::from_str(v)
                .ok()
                .filter(|d| d.abs() < crate::limits::MAX_TOTAL_FILTER)
                .ok_or_else(|| {
                    Problem::invalid_field(name, "invalid_format", "must be a decimal, e.g. 12.50")
                })
        })
        .transpose()
}

fn cursor_param(q: &QueryMap, prefix: &str) -> Result<Option<String>, Problem> {
    match q.first("cursor") {
        None => Ok(None),
        Some(c) => {
            let d = decode_token(c)?;
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

/// The list filters: `status` (comma-separated), `period_from`, `period_to`, `min_total`,
/// `max_total`.
pub(crate) fn invoice_filter(q: &QueryMap) -> Result<InvoiceFilter, Problem> {
    let mut statuses = Vec::new();
    for v in q.all("status").unwrap_or_default() {
        for part in v.split(',').filter(|p| !p.is_empty()) {
            let s = InvoiceStatus::ALL
                .iter()
                .find(|s| s.as_str() == part)
                .ok_or_else(|| {
                    Problem::invalid_field(
                        "status",
                        "invalid_value",
                        "must be draft, open, paid, past_due, void or uncollectible (comma-separated)",
                    )
                })?;
            statuses.push(*s);
        }
    }
    let f = InvoiceFilter {
        statuses,
        period_from: time_param(q, "period_from")?,
        period_to: time_param(q, "period_to")?,
        min_total: decimal_param(q, "min_total")?,
        max_total: decimal_param(q, "max_total")?,
    };
    if let (Some(a), Some(b)) = (f.period_from, f.period_to) {
        if b < a {
            return Err(Problem::invalid_field(
                "period_to",
                "out_of_range",
                "must not be before period_from",
            ));
        }
    }
    if let (Some(a), Some(b)) = (f.min_total, f.max_total) {
        if b < a {
            return Err(Problem::invalid_field(
                "max_total",
                "out_of_range",
                "must not be less than min_total",
            ));
        }
    }
    Ok(f)
}

/// An invoice as the API shows it: the provider statements (fees, payouts) to operators only;
/// without lines in lists.
fn invoice_json(inv: &Invoice, with_lines: bool, operator: bool) -> Value {
    let mut v = serde_json::to_value(inv).expect("invoices serialize");
    let m = v.as_object_mut().expect("an object");
    if !operator {
        m.remove("statements");
    }
    if !with_lines {
        m.remove("lines");
        m.remove("statements");
    }
    v
}

fn credit_note_json(n: &CreditNoteDoc) -> Value {
    let mut v = serde_json::to_value(n).expect("credit notes serialize");
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

fn object_body(c: &Ctx) -> Result<Map<String, Value>, Problem> {
    let bytes = body_bytes(c.req.body());
    if bytes.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Problem::invalid_field(
            "body",
            "invalid_type",
            "must be a JSON object",
        )),
        Err(e) => Err(Problem::invalid_field(
            "body",
            "invalid_json",
            format!("is not JSON: {e}"),
        )),
    }
}

fn body_decimal(m: &Map<String, Value>, field: &str) -> Result<Option<Decimal>, Problem> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= crate::limits::MAX_DECIMAL_CHARS => {
            Decimal::from_str(s).map(Some).map_err(|_| {
                Problem::invalid_field(
                    field,
                    "invalid_format",
                    "must be a decimal string, e.g. \"12.50\"",
                )
            })
        }
        Some(_) => Err(Problem::invalid_field(
            field,
            "invalid_type",
            "must be a decimal string, e.g. \"12.50\"",
        )),
    }
}

fn body_id(m: &Map<String, Value>, field: &str) -> Result<Option<String>, Problem> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if is_valid_ref_id(s) => Ok(Some(s.clone())),
        Some(_) => Err(Problem::invalid_field(
            field,
            "invalid_format",
            "must be 1 to 128 of letters, digits and `_ - . :`",
        )),
    }
}

fn reject_unknown(m: &Map<String, Value>, known: &[&str]) -> Result<(), Problem> {
    match m.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(Problem::invalid_field(
            k,
            "unknown_field",
            format!("is not one of {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

fn wants_csv(c: &Ctx) -> Result<bool, Problem> {
    let q = c.req.query_string_parameters();
    match q.first("format") {
        Some("csv") => return Ok(true),
        Some("json") => return Ok(false),
        Some(_) => {
            return Err(Problem::invalid_field(
                "format",
                "invalid_value",
                "must be `json` or `csv`",
            ))
        }
        None => {}
    }
    Ok(c.req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/csv")))
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

/// The events of a credit note: `CreditNoteIssued`, and `InvoicePaid` when `paid` (the note
/// left nothing outstanding).
fn credit_note_events(note: &CreditNoteDoc, paid: Option<&Invoice>) -> Vec<BillingEvent> {
    let mut out = vec![credit_note_event(note)];
    out.extend(paid.map(paid_event));
    out
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
        b.events.publish(events).await.map_err(|e| {
            tracing::error!(error = %e, "billing events not published");
            Problem::new(
                503,
                "unavailable",
                "Service unavailable",
                "the change was made but its events could not be published; retry the same request to publish them",
            )
        })
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
        Ok((
            account_param(c.param("account_id"))?,
            invoice_param(c.param("invoice_id"))?,
        ))
    }

    /// `GET /v1/accounts/{account_id}/invoices`
    pub(crate) async fn list_invoices(&self, c: &Ctx) -> Outcome {
        let account = account_param(c.param("account_id"))?;
        let q = c.req.query_string_parameters();
        let filter = invoice_filter(&q)?;
        let limit = limit_param(&q, DEFAULT_PAGE, MAX_PAGE)?;
        let after = cursor_param(&q, "INV#")?;
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
        let q = c.req.query_string_parameters();
        let filter = invoice_filter(&q)?;
        let to = time_param(&q, "issued_to")?.unwrap_or(c.now + chrono::Duration::minutes(1));
        let from = time_param(&q, "issued_from")?.unwrap_or(to - chrono::Duration::days(MAX_REPORT_DAYS));
        if to <= from || to - from > chrono::Duration::days(MAX_REPORT_DAYS) {
            return Err(Problem::invalid_field(
                "issued_to",
                "out_of_range",
                format!("must be after `issued_from` and at most {MAX_REPORT_DAYS} days later"),
            ));
        }
        let limit = limit_param(&q, DEFAULT_PAGE, MAX_PAGE)?;
        let after = match q.first("cursor") {
            None => None,
            Some(c) => {
                let d = decode_token(c)?;
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
        let (account, id) = Self::path_ids(c)?;
        let body = object_body(c)?;
        reject_unknown(&body, &[])?;
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
        let (account, id) = Self::path_ids(c)?;
        let body = object_body(c)?;
        reject_unknown(&body, &["payment_id", "amount"])?;
        let payment_id = body_id(&body, "payment_id")?
            .ok_or_else(|| Problem::invalid_field("payment_id", "required", "is required"))?;
        let amount = body_decimal(&body, "amount")?;
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
        let account = account_param(c.param("account_id"))?;
        let invoice = match c.params.get("invoice_id") {
            Some(raw) => Some(invoice_param(raw)?),
            None => None,
        };
        let q = c.req.query_string_parameters();
        let limit = limit_param(&q, DEFAULT_PAGE, MAX_PAGE)?;
        let after = cursor_param(&q, "CN#")?;
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
        let account = account_param(c.param("account_id"))?;
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
        let (account, id) = Self::path_ids(c)?;
        let body = object_body(c)?;
        reject_unknown(&body, &["amount", "reason", "memo", "credit_note_id"])?;
        let amount = body_decimal(&body, "amount")?
            .ok_or_else(|| Problem::invalid_field("amount", "required", "is required"))?;
        let reason = match body.get("reason") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(
                CreditReason::ALL
                    .into_iter()
                    .find(|r| r.as_str() == s)
                    .ok_or_else(|| {
                        Problem::invalid_field(
                            "reason",
                            "invalid_value",
                            "must be duplicate, fraudulent, order_change or product_unsatisfactory",
                        )
                    })?,
            ),
            Some(_) => {
                return Err(Problem::invalid_field(
                    "reason",
                    "invalid_type",
                    "must be a string",
                ))
            }
        };
        let memo = match body.get("memo") {
            None | Some(Value::Null) => None,
            Some(Value::String(s))
                if s.chars().count() <= MAX_MEMO_CHARS && !s.chars().any(char::is_control) =>
            {
                Some(s.clone())
            }
            Some(_) => {
                return Err(Problem::invalid_field(
                    "memo",
                    "invalid",
                    format!(
                        "must be a string of at most {MAX_MEMO_CHARS} characters without control characters"
                    ),
                ))
            }
        };
        // One note per key: the body's `credit_note_id`, the Idempotency-Key, or a new one.
        let key = match body_id(&body, "credit_note_id")? {
            Some(k) => k,
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
        for _ in 0..ATTEMPTS {
            // The invoice and its `credited` first, then the notes: a note issued in between
            // changes `credited`, and the write's condition fails.
            let (inv, manual) = match b.issued.invoice_for_credit(&account, &id).await {
                Ok(Some(found)) => found,
                Ok(None) => return Err(Problem::not_found(format!("no invoice {id}"))),
                Err(e) => return Err(store_problem(&e)),
            };
            if let Some(existing) = b
                .issued
                .credit_note(&account, &note_id)
                .await
                .map_err(|e| store_problem(&e))?
            {
                // A retry: publish the note's events again (same ids), in case they were lost.
                let paid = (inv.status == InvoiceStatus::Paid).then_some(&inv);
                self.publish(&credit_note_events(&existing, paid)).await?;
                return Ok(json_response(StatusCode::OK, credit_note_json(&existing)));
            }
            let credited = b
                .issued
                .credited(&account, &id)
                .await
                .map_err(|e| store_problem(&e))?;
            let effect =
                manual_credit_note(&inv, credited, &note_id, &credit, c.now).map_err(|e| match e {
                    CreditNoteError::Status(..) => conflict(e.to_string()),
                    CreditNoteError::NotPositive => unprocessable("amount", "out_of_range", e.to_string()),
                    CreditNoteError::NotRounded { .. } => {
                        unprocessable("amount", "too_precise", e.to_string())
                    }
                    CreditNoteError::OverCredit { .. } => {
                        unprocessable("amount", "over_credit", e.to_string())
                    }
                })?;
            match b
                .issued
                .issue_credit_note(&inv, manual, &effect)
                .await
                .map_err(|e| store_problem(&e))?
            {
                CreditNoteOutcome::Created => {
                    let paid = (effect.status == InvoiceStatus::Paid && inv.status != InvoiceStatus::Paid)
                        .then_some(&inv);
                    self.publish(&credit_note_events(&effect.note, paid)).await?;
                    return Ok(json_response(StatusCode::CREATED, credit_note_json(&effect.note)));
                }
                CreditNoteOutcome::Exists(n) => {
                    let now = self.existing_invoice(&account, &id).await?;
                    let paid = (now.status == InvoiceStatus::Paid).then_some(&now);
                    self.publish(&credit_note_events(&n, paid)).await?;
                    return Ok(json_response(StatusCode::OK, credit_note_json(&n)));
                }
                CreditNoteOutcome::Conflict => continue,
            }
        }
        Err(conflict(format!("invoice {id} kept changing; retry")))
    }

    /// `GET /v1/providers/{provider_id}/statements`
    pub(crate) async fn list_statements(&self, c: &Ctx) -> Outcome {
        let provider = id_param("provider_id", c.param("provider_id"))?;
        let q = c.req.query_string_parameters();
        let from = time_param(&q, "period_from")?.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let to = time_param(&q, "period_to")?
            .unwrap_or_else(|| Utc.with_ymd_and_hms(9999, 1, 1, 0, 0, 0).unwrap());
        if to < from {
            return Err(Problem::invalid_field(
                "period_to",
                "out_of_range",
                "must not be before period_from",
            ));
        }
        let limit = limit_param(&q, DEFAULT_PAGE, MAX_PAGE)?;
        let after = cursor_param(&q, "STMT#")?;
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
        let provider = id_param("provider_id", c.param("provider_id"))?;
        let raw = c.param("statement_id");
        let (end, invoice) = parse_statement_id(raw)
            .filter(|(_, inv)| is_invoice_id_like(inv))
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
        let q = c.req.query_string_parameters();
        let from = time_param(&q, "from")?
            .ok_or_else(|| Problem::invalid_field("from", "required", "is required (RFC 3339)"))?;
        let to = time_param(&q, "to")?
            .ok_or_else(|| Problem::invalid_field("to", "required", "is required (RFC 3339)"))?;
        if to <= from || to - from > chrono::Duration::days(MAX_REPORT_DAYS) {
            return Err(Problem::invalid_field(
                "to",
                "out_of_range",
                format!("must be after `from` and at most {MAX_REPORT_DAYS} days later"),
            ));
        }
        let csv = wants_csv(c)?;
        let b = self.billing_api()?;
        let invoices = b
            .issued
            .invoices_issued(from, to)
            .await
            .map_err(|e| store_problem(&e))?;
        let rows = tax_summary(&invoices);
        if csv {
            return Ok(Response::builder()
                .status(200)
                .header("content-type", "text/csv; charset=utf-8")
                .header(
                    "content-disposition",
                    format!(
                        "attachment; filename=\"tax-{}-{}.csv\"",
                        from.format("%Y%m%dT%H%M%SZ"),
                        to.format("%Y%m%dT%H%M%SZ")
                    ),
                )
                .body(Body::Text(tax_summary_csv(&rows)))
                .expect("valid response"));
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

    fn q(pairs: &[(&str, &str)]) -> QueryMap {
        let m: std::collections::HashMap<String, Vec<String>> =
            pairs.iter().fold(Default::default(), |mut m, (k, v)| {
                m.entry(k.to_string())
                    .or_insert_with(Vec::new)
                    .push(v.to_string());
                m
            });
        QueryMap::from(m)
    }

    #[test]
    fn filters_parse_and_name_the_bad_parameter() {
        let f = invoice_filter(&q(&[("status", "open,paid"), ("min_total", "1.5")])).unwrap();
        assert_eq!(f.statuses, vec![InvoiceStatus::Open, InvoiceStatus::Paid]);
        assert_eq!(f.min_total, Some(Decimal::new(15, 1)));
        for (k, v) in [
            ("status", "opened"),
            ("min_total", "x"),
            ("max_total", "1e400"),
            ("period_from", "yesterday"),
        ] {
            let p = invoice_filter(&q(&[(k, v)])).unwrap_err();
            assert_eq!(p.errors[0].field, k);
        }
        let p = invoice_filter(&q(&[("min_total", "5"), ("max_total", "4")])).unwrap_err();
        assert_eq!(p.errors[0].field, "max_total");
    }

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

/// The OpenAPI description of these routes, merged into the document by `openapi.rs`.
#[allow(dead_code)] // The types and functions here only describe the API.
pub(crate) mod doc {
    use utoipa::{OpenApi, ToSchema};

    #[derive(ToSchema)]
    struct Problem {}

    /// A page of a list: `next_cursor` is null on the last page.
    #[derive(ToSchema)]
    struct InvoicePage {
        /// Invoices without `lines`, by invoice id (each subscription's in period order).
        data: Vec<Invoice>,
        next_cursor: Option<String>,
    }

    #[derive(ToSchema)]
    struct CreditNotePage {
        /// Credit notes by id.
        data: Vec<CreditNote>,
        next_cursor: Option<String>,
    }

    #[derive(ToSchema)]
    struct StatementPage {
        /// Statement entries by period end, then invoice id.
        data: Vec<StatementEntry>,
        next_cursor: Option<String>,
    }

    /// A provider's statement for one invoice.
    #[derive(ToSchema)]
    struct StatementEntry {
        /// `<period end>:<invoice id>`.
        statement_id: String,
        invoice_id: String,
        period_end: String,
        /// The invoice was voided: nothing is paid out on it.
        voided: bool,
        /// usage_billed, tax, fee_percent, marketplace_fee, payout.
        statement: Object,
        /// Operators only.
        account_id: Option<String>,
    }

    #[derive(ToSchema)]
    struct Object {}
    /// A billing period, `[start, end)`.
    #[derive(ToSchema)]
    struct Period {
        #[schema(format = DateTime)]
        start: String,
        #[schema(format = DateTime)]
        end: String,
    }
    /// An invoice: one subscription's period, or a reservation's upfront. Amounts are decimal
    /// strings in `currency`.
    #[derive(ToSchema)]
    struct Invoice {
        invoice_id: String,
        account_id: String,
        subscription_id: String,
        /// `period` (a subscription's billing period) or `reservation_upfront` (a reservation's
        /// upfront, invoiced once at purchase).
        kind: String,
        period: Period,
        /// `draft`, `open`, `paid`, `past_due`, `void` or `uncollectible`.
        status: String,
        /// Assigned at finalization.
        number: Option<String>,
        /// The numbering: `prefix`, `digits`.
        issuer: Object,
        currency: String,
        /// The lines (not in lists).
        lines: Option<Vec<Object>>,
        net_total: String,
        tax_total: String,
        /// `net_total + tax_total`.
        total: String,
        /// Account credit used at finalization.
        credit_applied: String,
        /// `total - credit_applied`.
        amount_due: String,
        /// What is still owed.
        outstanding: String,
        /// The exchange of a converted invoice.
        conversion: Option<Object>,
        #[schema(format = DateTime)]
        issued_at: String,
        #[schema(format = Date)]
        due_date: String,
        auto_pay: bool,
        /// What each provider earns from it: operators only, not in lists.
        statements: Option<Object>,
    }
    /// A credit note: a manual one, or the correction of late usage.
    #[derive(ToSchema)]
    struct CreditNote {
        credit_note_id: String,
        account_id: String,
        original_invoice_id: String,
        original_period: Period,
        /// The close (or the manual note) that issued it.
        issued_with: String,
        currency: String,
        /// The corrections, as (negative) differences.
        lines: Vec<Object>,
        /// Positive: the amount credited.
        amount: String,
        #[schema(format = DateTime)]
        issued_at: String,
        /// `manual`, `late_usage` or `reservation_refund`.
        kind: String,
    }

    /// Records a payment made outside the payment service.
    #[derive(ToSchema)]
    struct MarkPaid {
        /// The payment's id: the same id twice records one payment.
        #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$")]
        payment_id: String,
        /// A decimal string in the invoice currency, at most the outstanding amount; default all
        /// of it.
        amount: Option<String>,
    }

    #[derive(ToSchema)]
    struct MarkPaidResult {
        payment_id: String,
        /// This payment id was recorded before: nothing changed.
        duplicate: bool,
        amount: Option<String>,
        invoice: Invoice,
    }

    /// A credit note against an invoice.
    #[derive(ToSchema)]
    struct NewCreditNote {
        /// A positive decimal string in the invoice currency, at most what can still be
        /// credited (the total less earlier credit notes).
        amount: String,
        /// `duplicate`, `fraudulent`, `order_change` or `product_unsatisfactory`.
        reason: Option<String>,
        #[schema(max_length = 500)]
        memo: Option<String>,
        /// Makes the note exactly once (default: the Idempotency-Key).
        #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$")]
        credit_note_id: Option<String>,
    }

    /// Taxable amount and tax per currency, jurisdiction, rate and treatment.
    #[derive(ToSchema)]
    struct TaxReport {
        from: String,
        to: String,
        /// Finalized invoices issued in the range (void excluded).
        invoices: u64,
        rows: Vec<TaxRow>,
        totals: Vec<Object>,
    }

    #[derive(ToSchema)]
    struct TaxRow {
        currency: String,
        /// `DE`, `US-CA`; null when not attributable.
        jurisdiction: Option<String>,
        rate: Option<String>,
        treatment: Option<String>,
        taxable: String,
        tax: String,
        invoices: u64,
    }

    const ACCOUNT: &str = "1 to 128 of letters, digits and `_ - . :`";

    #[utoipa::path(get, path = "/v1/accounts/{account_id}/invoices", tag = "invoices",
        description = "The account's invoices, filtered, without lines.",
        params(("account_id" = String, Path, description = ACCOUNT),
            ("status" = Option<String>, Query, description = "Comma-separated statuses: draft, open, paid, past_due, void, uncollectible"),
            ("period_from" = Option<String>, Query, description = "RFC 3339: periods starting at or after"),
            ("period_to" = Option<String>, Query, description = "RFC 3339: periods starting before"),
            ("min_total" = Option<String>, Query, description = "Decimal: total at least"),
            ("max_total" = Option<String>, Query, description = "Decimal: total at most"),
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
            ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
        responses((status = 200, description = "A page of invoices", body = InvoicePage)))]
    fn list_invoices() {}

    #[utoipa::path(get, path = "/v1/invoices", tag = "invoices",
        description = "Every account's invoices issued in [issued_from, issued_to), by issue time, filtered, without lines.",
        params(
            ("issued_from" = Option<String>, Query, description = "RFC 3339, inclusive (default 366 days before issued_to)"),
            ("issued_to" = Option<String>, Query, description = "RFC 3339, exclusive (default now); at most 366 days after issued_from"),
            ("status" = Option<String>, Query, description = "Comma-separated statuses: draft, open, paid, past_due, void, uncollectible"),
            ("period_from" = Option<String>, Query, description = "RFC 3339: periods starting at or after"),
            ("period_to" = Option<String>, Query, description = "RFC 3339: periods starting before"),
            ("min_total" = Option<String>, Query, description = "Decimal: total at least"),
            ("max_total" = Option<String>, Query, description = "Decimal: total at most"),
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
            ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
        responses((status = 200, description = "A page of invoices", body = InvoicePage)))]
    fn list_all_invoices() {}

    #[utoipa::path(get, path = "/v1/accounts/{account_id}/invoices/{invoice_id}", tag = "invoices",
        description = "One invoice with its lines (and, for operators, its provider statements).",
        params(("account_id" = String, Path, description = ACCOUNT), ("invoice_id" = String, Path, description = "The invoice's id")),
        responses((status = 200, description = "The invoice", body = Invoice)))]
    fn get_invoice() {}

    #[utoipa::path(post, path = "/v1/accounts/{account_id}/invoices/{invoice_id}/void", tag = "invoices",
        description = "Voids an open, past-due or uncollectible invoice with no payment and no credit note; the credit balance it consumed returns to the account. Voiding a void invoice changes nothing (200). Publishes `InvoiceVoided` (again on a repeat, same id); 503 when publishing failed after the write: retry.",
        params(("account_id" = String, Path, description = ACCOUNT), ("invoice_id" = String, Path, description = "The invoice's id")),
        responses((status = 200, description = "The voided invoice", body = Invoice),
            (status = 409, description = "The invoice cannot be voided", body = Problem, content_type = "application/problem+json")))]
    fn void_invoice() {}

    #[utoipa::path(post, path = "/v1/accounts/{account_id}/invoices/{invoice_id}/mark-paid", tag = "invoices",
        description = "Records a payment made out of band, once per payment id. Publishes `InvoicePaid` when nothing is left outstanding (again on a repeat, same id); 503 when publishing failed after the write: retry.",
        request_body = MarkPaid,
        params(("account_id" = String, Path, description = ACCOUNT), ("invoice_id" = String, Path, description = "The invoice's id")),
        responses((status = 200, description = "The payment and the invoice after it", body = MarkPaidResult),
            (status = 409, description = "The invoice cannot be paid (paid, void, draft)", body = Problem, content_type = "application/problem+json")))]
    fn mark_paid() {}

    #[utoipa::path(get, path = "/v1/accounts/{account_id}/invoices/{invoice_id}/credit-notes", tag = "invoices",
        params(("account_id" = String, Path, description = ACCOUNT), ("invoice_id" = String, Path, description = "The invoice's id"),
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
            ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
        responses((status = 200, description = "The credit notes against the invoice", body = CreditNotePage)))]
    fn list_invoice_credit_notes() {}

    #[utoipa::path(post, path = "/v1/accounts/{account_id}/invoices/{invoice_id}/credit-notes", tag = "invoices",
        description = "Issues a credit note: it lowers the invoice's outstanding amount first (to paid at zero), the rest goes to the account's credit balance. Publishes `CreditNoteIssued` (and `InvoicePaid` when it leaves nothing outstanding), again for a known note; 503 when publishing failed after the write: retry.",
        request_body = NewCreditNote,
        params(("account_id" = String, Path, description = ACCOUNT), ("invoice_id" = String, Path, description = "The invoice's id")),
        responses((status = 201, description = "The credit note", body = CreditNote),
            (status = 200, description = "A credit note with this id exists", body = CreditNote)))]
    fn create_credit_note() {}

    #[utoipa::path(get, path = "/v1/accounts/{account_id}/credit-notes", tag = "invoices",
        params(("account_id" = String, Path, description = ACCOUNT),
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
            ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
        responses((status = 200, description = "The account's credit notes", body = CreditNotePage)))]
    fn list_credit_notes() {}

    #[utoipa::path(get, path = "/v1/accounts/{account_id}/credit-notes/{credit_note_id}", tag = "invoices",
        description = "One credit note of the account (manual or for late usage); 404 for another account's.",
        params(("account_id" = String, Path, description = ACCOUNT), ("credit_note_id" = String, Path, description = "The note's `credit_note_id`, each `#` sent as `%23`")),
        responses((status = 200, description = "The credit note; `kind` is `manual` or `late_usage`", body = Object),
            (status = 404, description = "No such credit note on this account", body = Problem, content_type = "application/problem+json")))]
    fn get_credit_note() {}

    #[utoipa::path(get, path = "/v1/providers/{provider_id}/statements", tag = "statements",
        description = "The provider's statement entries, one per invoice with its lines.",
        params(("provider_id" = String, Path, description = "The provider's id"),
            ("period_from" = Option<String>, Query, description = "RFC 3339: periods ending at or after"),
            ("period_to" = Option<String>, Query, description = "RFC 3339: periods ending before"),
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
            ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
        responses((status = 200, description = "A page of statement entries", body = StatementPage)))]
    fn list_statements() {}

    #[utoipa::path(get, path = "/v1/providers/{provider_id}/statements/{statement_id}", tag = "statements",
        params(("provider_id" = String, Path, description = "The provider's id"), ("statement_id" = String, Path, description = "A `statement_id` from the list")),
        responses((status = 200, description = "The statement entry", body = StatementEntry)))]
    fn get_statement() {}

    #[utoipa::path(get, path = "/v1/reports/tax", tag = "reports",
        description = "Taxable amount and tax per currency, jurisdiction, rate and treatment over the finalized invoices issued in [from, to) (void excluded). CSV with `Accept: text/csv` or `format=csv`.",
        params(("from" = String, Query, description = "RFC 3339, inclusive"), ("to" = String, Query, description = "RFC 3339, exclusive; at most 366 days after `from`"),
            ("format" = Option<String>, Query, description = "`json` (default) or `csv`")),
        responses((status = 200, description = "The report", content(
            (TaxReport = "application/json"),
            (String = "text/csv", example = "currency,jurisdiction,rate,treatment,taxable,tax,invoices\r\nUSD,DE,0.19,standard,31.00,5.89,2\r\n")))))]
    fn tax_report() {}

    #[derive(OpenApi)]
    #[openapi(paths(
        list_all_invoices,
        list_invoices,
        get_invoice,
        void_invoice,
        mark_paid,
        list_invoice_credit_notes,
        create_credit_note,
        list_credit_notes,
        get_credit_note,
        list_statements,
        get_statement,
        tax_report
    ))]
    pub(crate) struct InvoicesDoc;
}
