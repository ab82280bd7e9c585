//! The responses of the credit routes: grants, balances, the ledger and authorizations.

use super::{Meter, Problem};
use utoipa::{OpenApi, ToSchema};

/// Where an amount of credit is: `granted = available + held + consumed + forfeited`. Exact
/// decimals in the currency's minor units.
#[derive(ToSchema)]
struct CreditBalance {
    granted: String,
    available: String,
    held: String,
    consumed: String,
    forfeited: String,
}

/// Where a grant came from: `type` `operator` (with `note`), `top_up` (`payment_id`) or
/// `credit_note` (`credit_note_id`).
#[derive(ToSchema)]
struct GrantSource {
    #[schema(rename = "type")]
    kind: String,
    note: Option<String>,
    payment_id: Option<String>,
    credit_note_id: Option<String>,
}

/// A grant of credit with where its amount is now.
#[derive(ToSchema)]
struct CreditGrant {
    grant_id: String,
    account_id: String,
    amount: String,
    currency: String,
    /// `paid` or `promotional`.
    kind: String,
    /// Lower is consumed first.
    priority: u32,
    #[schema(format = DateTime)]
    effective_at: String,
    /// Null: it never expires.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// The meters it may pay for; empty: any.
    meters: Vec<Meter>,
    /// The providers it may pay for; empty: any.
    providers: Vec<String>,
    source: GrantSource,
    balance: CreditBalance,
    /// Its expiry has forfeited its remainder.
    expired: bool,
}

#[derive(ToSchema)]
struct CreditGrantList {
    /// By grant id.
    data: Vec<CreditGrant>,
}

/// An account's credit in one currency.
#[derive(ToSchema)]
struct CurrencyCreditBalance {
    currency: String,
    granted: String,
    available: String,
    held: String,
    consumed: String,
    forfeited: String,
}

#[derive(ToSchema)]
struct CreditBalances {
    account_id: String,
    /// One per currency the account has credit in, by code.
    data: Vec<CurrencyCreditBalance>,
}

/// Why an entry was written: `type` (`grant`, `hold`, `capture`, `release`, `hold_expiry`,
/// `draw_down`, `grant_expiry`, `invoice`) and the ids of the operation.
#[derive(ToSchema)]
struct EntryCause {
    #[schema(rename = "type")]
    kind: String,
    grant_id: Option<String>,
    hold_id: Option<String>,
    job: Option<String>,
    capture_id: Option<String>,
    batch_id: Option<String>,
    invoice_id: Option<String>,
    line: Option<u32>,
}

/// The part of an entry's amount that is one grant's.
#[derive(ToSchema)]
struct EntryPortion {
    grant_id: String,
    amount: String,
}

/// One movement of credit.
#[derive(ToSchema)]
struct LedgerEntry {
    /// 1, 2, ... per account.
    seq: u64,
    #[schema(format = DateTime)]
    at: String,
    currency: String,
    /// `granted`, `hold_placed`, `hold_captured`, `hold_released`, `hold_expired`,
    /// `drawn_from_hold`, `drawn_down`, `expired` or `applied_to_invoice`.
    kind: String,
    cause: EntryCause,
    portions: Vec<EntryPortion>,
    /// The sum of the portions.
    amount: String,
    /// What the operation asked for that no grant could pay.
    uncovered: String,
    /// The currency's available balance after the entry.
    available: String,
    /// The currency's held balance after the entry.
    held: String,
}

#[derive(ToSchema)]
struct CreditLedgerPage {
    /// In `seq` order.
    data: Vec<LedgerEntry>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// What a capture charged: `amount` in all, of which `uncovered` no grant could pay.
#[derive(ToSchema)]
struct CaptureResult {
    capture_id: String,
    amount: String,
    uncovered: String,
    beyond_hold: bool,
    #[schema(format = DateTime)]
    at: String,
}

/// A job's authorization: credit held for it until it is captured, released or expires.
#[derive(ToSchema)]
struct Authorization {
    hold_id: String,
    account_id: String,
    job_id: String,
    currency: String,
    /// The amount placed.
    amount: String,
    /// What it still holds (0 once closed).
    held: String,
    /// `open`, `captured`, `released` or `expired`.
    status: String,
    provider_id: Option<String>,
    meters: Vec<Meter>,
    #[schema(format = DateTime)]
    placed_at: String,
    #[schema(format = DateTime)]
    expires_at: String,
    /// Set once captured.
    captured: Option<CaptureResult>,
}

/// A problem (RFC 9457) naming the credit a hold needs, what is available to the job and the
/// shortfall, in `currency`.
#[derive(ToSchema)]
struct CreditShortfall {
    #[schema(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
    errors: Option<Vec<super::FieldError>>,
    currency: String,
    needed: String,
    available: String,
    shortfall: String,
}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/credit-grants", tag = "credits",
    responses(
        (status = 201, description = "The grant (a repeat of the same grant: as it is now)", body = CreditGrant),
        (status = 409, description = "The grant id was used for another grant, or the account has too many, or its ledger is full", body = Problem, content_type = "application/problem+json"),
    ))]
fn create_grant() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/credit-grants", tag = "credits",
    responses((status = 200, description = "The account's grants with their balances", body = CreditGrantList)))]
fn list_grants() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/credit-balances", tag = "credits",
    responses((status = 200, description = "The account's credit per currency", body = CreditBalances)))]
fn get_balances() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/credit-ledger", tag = "credits",
    responses((status = 200, description = "The account's credit ledger, by page", body = CreditLedgerPage)))]
fn get_ledger() {}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/authorizations", tag = "credits",
    responses(
        (status = 201, description = "The hold placed (a repeat of the same authorization: as it is now)", body = Authorization),
        (status = 402, description = "The credit the job may use does not cover it", body = CreditShortfall, content_type = "application/problem+json"),
        (status = 409, description = "The hold id was used for another authorization, or the account's ledger is full", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The job cannot be priced", body = Problem, content_type = "application/problem+json"),
    ))]
fn create_authorization() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/authorizations/{hold_id}", tag = "credits",
    responses((status = 200, description = "The authorization", body = Authorization)))]
fn get_authorization() {}

/// Charge a job's hold at the job's end
///
/// Usage sent as usage events is drawn from the free balance as it is ingested (see
/// docs/credits.md, "Draw-down"): end such a job with `release`. Capture charges what is not sent
/// as usage (a fixed job fee, usage metered elsewhere); capturing ingested usage charges it twice.
#[utoipa::path(post, path = "/v1/accounts/{account_id}/authorizations/{hold_id}/capture", tag = "credits",
    responses(
        (status = 200, description = "The hold, captured: what it charged, the rest released", body = Authorization),
        (status = 409, description = "The hold is not open (captured, released or expired), or the amount is more than it holds without `beyond_hold`", body = Problem, content_type = "application/problem+json"),
    ))]
fn capture_authorization() {}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/authorizations/{hold_id}/release", tag = "credits",
    responses(
        (status = 200, description = "The hold, released", body = Authorization),
        (status = 409, description = "The hold was captured or expired", body = Problem, content_type = "application/problem+json"),
    ))]
fn release_authorization() {}

/// An account's spend limits: amounts in `currency`, a limit not set is null.
#[derive(ToSchema)]
struct SpendLimits {
    account_id: String,
    currency: String,
    /// Reaching it announces `SpendThresholdReached`.
    soft: Option<String>,
    /// Reaching it announces `SpendLimitReached` (`hard_limit`).
    hard: Option<String>,
}

/// Set an account's spend limits
///
/// Replaces the limits set before. The usage-ingest draw-down checks each billing period's
/// drawn spend against them (docs/credits.md, "Spend control"); a changed limit is a new
/// crossing, announced again.
#[utoipa::path(put, path = "/v1/accounts/{account_id}/spend-limits", tag = "credits",
    responses((status = 200, description = "The limits set", body = SpendLimits)))]
fn put_spend_limits() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/spend-limits", tag = "credits",
    responses(
        (status = 200, description = "The account's spend limits", body = SpendLimits),
        (status = 404, description = "No such account (also another tenant's), or no limits set on it", body = Problem, content_type = "application/problem+json"),
    ))]
fn get_spend_limits() {}

#[derive(OpenApi)]
#[openapi(paths(
    create_grant,
    list_grants,
    get_balances,
    get_ledger,
    create_authorization,
    get_authorization,
    capture_authorization,
    release_authorization,
    put_spend_limits,
    get_spend_limits
))]
pub(crate) struct CreditsDoc;
