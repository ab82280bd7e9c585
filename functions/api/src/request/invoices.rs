//! Requests of the invoice, credit-note, statement and tax-report routes.

use super::types::{Amount, Cursor, InvoicePage, Memo, ReasonName, RefId, Statuses, Time, TotalBound};
use crate::limits::MAX_REPORT_DAYS;
use chrono::{DateTime, Duration, Utc};
use meterline_shared::domain::billing::ledger::InvoiceFilter;
use meterline_shared::domain::usage::FieldError;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

fn range_error(field: &str, message: impl Into<String>) -> Vec<FieldError> {
    vec![FieldError::new(field, "out_of_range", message)]
}

/// The filters and page of an account's invoices.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvoiceList {
    /// Comma-separated statuses: draft, open, paid, past_due, void, uncollectible.
    #[param(inline)]
    pub status: Option<Statuses>,
    /// Periods starting at or after.
    #[param(inline, example = json!("2026-11-24T00:00:00Z"))]
    pub period_from: Option<Time>,
    /// Periods starting before.
    #[param(inline, example = json!("2026-11-25T00:00:00Z"))]
    pub period_to: Option<Time>,
    /// Total at least.
    #[param(inline)]
    pub min_total: Option<TotalBound>,
    /// Total at most.
    #[param(inline)]
    pub max_total: Option<TotalBound>,
    #[param(inline)]
    pub limit: Option<InvoicePage>,
    #[param(inline)]
    pub cursor: Option<Cursor>,
}

/// The filter of `status`, `period_from`/`period_to`, `min_total`/`max_total`.
fn filter(
    status: &Option<Statuses>,
    period: (Option<Time>, Option<Time>),
    totals: (Option<TotalBound>, Option<TotalBound>),
) -> Result<InvoiceFilter, Vec<FieldError>> {
    let f = InvoiceFilter {
        statuses: status.clone().unwrap_or_default().0,
        period_from: period.0.map(|t| t.0),
        period_to: period.1.map(|t| t.0),
        min_total: totals.0.map(|d| d.0),
        max_total: totals.1.map(|d| d.0),
    };
    let mut errors = Vec::new();
    if let (Some(a), Some(b)) = (f.period_from, f.period_to) {
        if b < a {
            errors.extend(range_error("period_to", "must not be before period_from"));
        }
    }
    if let (Some(a), Some(b)) = (f.min_total, f.max_total) {
        if b < a {
            errors.extend(range_error("max_total", "must not be less than min_total"));
        }
    }
    if errors.is_empty() {
        Ok(f)
    } else {
        Err(errors)
    }
}

impl InvoiceList {
    pub fn validate(self) -> Result<(InvoiceFilter, usize, Option<Cursor>), Vec<FieldError>> {
        let f = filter(
            &self.status,
            (self.period_from, self.period_to),
            (self.min_total, self.max_total),
        )?;
        Ok((f, self.limit.unwrap_or_default().0, self.cursor))
    }
}

/// The filters and page of every account's invoices, by issue time.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AllInvoicesList {
    /// Inclusive (default 366 days before `issued_to`).
    #[param(inline, example = json!("2026-11-24T00:00:00Z"))]
    pub issued_from: Option<Time>,
    /// Exclusive (default now); at most 366 days after `issued_from`.
    #[param(inline, example = json!("2026-11-25T00:00:00Z"))]
    pub issued_to: Option<Time>,
    #[param(inline)]
    pub status: Option<Statuses>,
    #[param(inline, example = json!("2026-11-24T00:00:00Z"))]
    pub period_from: Option<Time>,
    #[param(inline, example = json!("2026-11-25T00:00:00Z"))]
    pub period_to: Option<Time>,
    #[param(inline)]
    pub min_total: Option<TotalBound>,
    #[param(inline)]
    pub max_total: Option<TotalBound>,
    #[param(inline)]
    pub limit: Option<InvoicePage>,
    #[param(inline)]
    pub cursor: Option<Cursor>,
}

/// What `GET /v1/invoices` asks for.
pub struct AllInvoices {
    pub filter: InvoiceFilter,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

impl AllInvoicesList {
    pub fn validate(self, now: DateTime<Utc>) -> Result<AllInvoices, Vec<FieldError>> {
        let to = self.issued_to.map_or(now + Duration::minutes(1), |t| t.0);
        let from = self
            .issued_from
            .map_or(to - Duration::days(MAX_REPORT_DAYS), |t| t.0);
        let mut errors = Vec::new();
        if to <= from || to - from > Duration::days(MAX_REPORT_DAYS) {
            errors.extend(range_error(
                "issued_to",
                format!("must be after `issued_from` and at most {MAX_REPORT_DAYS} days later"),
            ));
        }
        let filter = filter(
            &self.status,
            (self.period_from, self.period_to),
            (self.min_total, self.max_total),
        );
        match filter {
            Ok(filter) if errors.is_empty() => Ok(AllInvoices {
                filter,
                from,
                to,
                limit: self.limit.unwrap_or_default().0,
                cursor: self.cursor,
            }),
            Ok(_) => Err(errors),
            Err(more) => {
                errors.extend(more);
                Err(errors)
            }
        }
    }
}

/// `limit` and `cursor` of the credit-note lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvoicePageQuery {
    #[param(inline)]
    pub limit: Option<InvoicePage>,
    #[param(inline)]
    pub cursor: Option<Cursor>,
}

/// A checked [`StatementList`]: periods ending from, before, the page size and the cursor.
pub type StatementAsk = (DateTime<Utc>, DateTime<Utc>, usize, Option<Cursor>);

/// A provider's statements: periods ending in `[period_from, period_to)`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatementList {
    /// Periods ending at or after.
    #[param(inline, example = json!("2026-11-24T00:00:00Z"))]
    pub period_from: Option<Time>,
    /// Periods ending before.
    #[param(inline, example = json!("2026-11-25T00:00:00Z"))]
    pub period_to: Option<Time>,
    #[param(inline)]
    pub limit: Option<InvoicePage>,
    #[param(inline)]
    pub cursor: Option<Cursor>,
}

impl StatementList {
    pub fn validate(self) -> Result<StatementAsk, Vec<FieldError>> {
        let from = self.period_from.map_or(DateTime::<Utc>::UNIX_EPOCH, |t| t.0);
        let end_of_time = chrono::NaiveDate::from_ymd_opt(9999, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(DateTime::<Utc>::MAX_UTC, |t| t.and_utc());
        let to = self.period_to.map_or(end_of_time, |t| t.0);
        if to < from {
            return Err(range_error("period_to", "must not be before period_from"));
        }
        Ok((from, to, self.limit.unwrap_or_default().0, self.cursor))
    }
}

/// The format of the tax report.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    Json,
    Csv,
}

/// A checked [`TaxReportQuery`]: from, to and the format asked for.
pub type ReportAsk = (DateTime<Utc>, DateTime<Utc>, Option<ReportFormat>);

/// The range of a tax report: `[from, to)`, at most 366 days.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaxReportQuery {
    /// Inclusive.
    #[param(inline, example = json!("2026-11-24T00:00:00Z"))]
    pub from: Time,
    /// Exclusive; at most 366 days after `from`.
    #[param(inline, example = json!("2026-11-25T00:00:00Z"))]
    pub to: Time,
    /// `json` (default) or `csv` (also with `Accept: text/csv`).
    #[param(inline)]
    pub format: Option<ReportFormat>,
}

impl TaxReportQuery {
    pub fn validate(self) -> Result<ReportAsk, Vec<FieldError>> {
        let (from, to) = (self.from.0, self.to.0);
        if to <= from || to - from > Duration::days(MAX_REPORT_DAYS) {
            return Err(range_error(
                "to",
                format!("must be after `from` and at most {MAX_REPORT_DAYS} days later"),
            ));
        }
        Ok((from, to, self.format))
    }
}

/// Records a payment made outside the payment service.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"payment_id": "wire-1", "amount": "10.00"}))]
pub struct MarkPaid {
    /// The payment's id: the same id twice records one payment.
    #[schema(inline)]
    pub payment_id: RefId,
    /// In the invoice currency, at most the outstanding amount; default all of it.
    #[serde(default)]
    #[schema(inline)]
    pub amount: Option<Amount>,
}

/// A credit note against an invoice.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": "5.00", "reason": "order_change", "memo": "goodwill"}))]
pub struct NewCreditNote {
    /// In the invoice currency, at most what can still be credited (the total less earlier
    /// credit notes).
    #[schema(inline)]
    pub amount: Amount,
    #[serde(default)]
    #[schema(inline)]
    pub reason: Option<ReasonName>,
    #[serde(default)]
    #[schema(inline)]
    pub memo: Option<Memo>,
    /// Makes the note exactly once (default: the Idempotency-Key).
    #[serde(default)]
    #[schema(inline)]
    pub credit_note_id: Option<RefId>,
}
