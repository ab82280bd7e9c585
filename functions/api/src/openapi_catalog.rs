//! The OpenAPI description of the account, subscription, provider, price-book and plan routes,
//! merged into the document by `openapi::document`.

#![allow(dead_code)] // The types and functions here only describe the API.

use utoipa::{OpenApi, ToSchema};

/// An RFC 9457 problem (the document's `Problem` schema).
#[derive(ToSchema)]
struct Problem {
    #[schema(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
}

const ID: &str = "1 to 128 of letters, digits and `_ - . :`";

/// An account as created or read. Amounts are decimal strings.
#[derive(ToSchema)]
struct Account {
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$")]
    account_id: String,
    /// ISO 4217 (or crypto asset) code of the invoices; fixed once an invoice exists.
    #[schema(example = "EUR")]
    currency: String,
    /// IANA timezone: invoices' issue and due dates are local dates. Default `UTC`.
    #[schema(example = "Europe/Berlin")]
    timezone: Option<String>,
    /// Payment terms (`{"type": "net", "days": 30}` or `{"type": "due_on_receipt"}`, at most
    /// 365 days), `grace_days`, `late_fee` and `fee_every_days`. Default net 30, no late fee.
    #[schema(value_type = Option<Object>)]
    policy: Option<serde_json::Value>,
    /// Payment is requested automatically when an invoice is finalized.
    auto_pay: Option<bool>,
    /// `{"jurisdiction": {"country": "DE", "region": null}, "exemption": null,
    /// "reverse_charge_tax_id": null}`.
    #[schema(value_type = Option<Object>)]
    tax: Option<serde_json::Value>,
    /// The invoice numbering: `{"prefix": "ML", "digits": 6}`; fixed once an invoice exists.
    #[schema(value_type = Option<Object>)]
    issuer: Option<serde_json::Value>,
    /// Read only.
    #[schema(value_type = Option<String>, read_only)]
    credit_balance: Option<String>,
}

#[derive(ToSchema)]
struct AccountPage {
    data: Vec<Account>,
    next_cursor: Option<String>,
}

/// A new subscription to a catalog plan.
#[derive(ToSchema)]
struct NewSubscription {
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$")]
    subscription_id: String,
    plan_id: String,
    /// Default: the plan's latest version.
    plan_version: Option<u32>,
    /// `hourly`, `daily`, `weekly` or `monthly`.
    cadence: String,
    /// `calendar` (default) or `anniversary`.
    alignment: Option<String>,
    /// RFC 3339, from 7 days ago to 366 days ahead; default now. Period 0 starts here.
    #[schema(format = DateTime)]
    start: Option<String>,
}

/// A subscription: schedule, plan, plan history and where its billing cycle stands.
#[derive(ToSchema)]
struct Subscription {
    subscription_id: String,
    account_id: String,
    schedule: Schedule,
    #[schema(value_type = Object)]
    plan: serde_json::Value,
    /// The catalog plan and version in force: `{"plan_id", "version"}`.
    #[schema(value_type = Option<Object>)]
    plan_ref: Option<serde_json::Value>,
    /// Changes of plan: `{"at", "plan", "plan_ref"}`, in order.
    #[schema(value_type = Option<Vec<Object>>)]
    plan_changes: Option<Vec<serde_json::Value>>,
    #[schema(format = DateTime)]
    started_at: String,
    #[schema(format = DateTime)]
    cancelled_at: Option<String>,
    #[schema(format = DateTime)]
    next_close_at: Option<String>,
    /// `active`, `cancelling` or `ended`.
    status: String,
}

/// When a subscription's periods start and end.
#[derive(ToSchema)]
struct Schedule {
    /// `hourly`, `daily`, `weekly` or `monthly`.
    cadence: String,
    /// `calendar` or `anniversary`.
    alignment: String,
    /// Where period 0 starts.
    #[schema(format = DateTime)]
    anchor: String,
    /// The account's IANA timezone: calendar periods follow its local midnights.
    timezone: String,
}

#[derive(ToSchema)]
struct SubscriptionPage {
    data: Vec<Subscription>,
    next_cursor: Option<String>,
}

#[derive(ToSchema)]
struct Cancel {
    /// `now` (the period's fee is prorated to now) or `period_end`.
    at: String,
}

#[derive(ToSchema)]
struct PlanChangeRequest {
    plan_id: String,
    plan_version: Option<u32>,
    /// `now` (prorated) or `period_end`.
    at: String,
}

/// What the change does to the recurring fees of the period it takes effect in, in the
/// account's currency (net of tax, each line rounded once): what the period's invoice will carry.
#[derive(ToSchema)]
struct PlanChangePreview {
    #[schema(format = DateTime)]
    effective_at: String,
    #[schema(value_type = Object)]
    period: serde_json::Value,
    currency: String,
    fees_before: String,
    fees_after: String,
    /// The current plan's fee for the rest of the period.
    credit: String,
    /// The new plan's fee for the rest of the period.
    charge: String,
    /// `charge - credit`.
    difference: String,
    #[schema(value_type = Vec<Object>)]
    lines: Vec<serde_json::Value>,
    /// The rate the amounts were converted at, when `currency` is not the price books'.
    rate: Option<PreviewRate>,
    /// `true` when `currency` is not the price books': the preview converts at the latest
    /// rate, the close at the rate in force at the period's end, so the invoice may differ.
    indicative: bool,
}

#[derive(ToSchema)]
struct PreviewRate {
    /// `BASE/QUOTE`.
    #[schema(example = "USD/EUR")]
    pair: String,
    rate: String,
    /// The instant the rate describes.
    #[schema(format = DateTime)]
    as_of: String,
}

#[derive(ToSchema)]
struct PreviewResponse {
    subscription_id: String,
    preview: PlanChangePreview,
}

#[derive(ToSchema)]
struct ChangeResponse {
    subscription: Subscription,
    preview: PlanChangePreview,
}

#[derive(ToSchema)]
struct Provider {
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$")]
    provider_id: String,
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// The marketplace's fee on the provider's sales, percent (0 to 100, at most 4 places).
    #[schema(example = "15")]
    fee_percent: String,
    /// When the provider is paid its share of a reservation's upfront: `over_term` (default)
    /// or `at_purchase`.
    #[schema(example = "over_term", pattern = "^(over_term|at_purchase)$")]
    upfront_payout: Option<String>,
    #[schema(format = DateTime, read_only)]
    created_at: Option<String>,
    /// When the name or fee last changed.
    #[schema(format = DateTime, read_only)]
    updated_at: Option<String>,
}

#[derive(ToSchema)]
struct ProviderPage {
    data: Vec<Provider>,
    next_cursor: Option<String>,
}

/// A change of a provider: its `name` (operator or its provider key), its `fee_percent`
/// (operator only: 403 for a provider key). At least one.
#[derive(ToSchema)]
struct ProviderUpdate {
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
    /// Percent, 0 to 100, at most 4 places. Applies to the periods closed after the change;
    /// statements of closed invoices keep the fee they were closed with.
    #[schema(example = "10")]
    fee_percent: Option<String>,
    /// `over_term` or `at_purchase` (operator only): applies to upfront invoices issued after
    /// the change.
    #[schema(example = "at_purchase", pattern = "^(over_term|at_purchase)$")]
    upfront_payout: Option<String>,
}

/// The provider as changed.
#[derive(ToSchema)]
struct UpdatedProvider {
    provider_id: String,
    name: String,
    fee_percent: String,
    upfront_payout: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: Option<String>,
    /// Always `periods_closed_after_change`: the close reads the fee when it closes a period.
    #[schema(example = "periods_closed_after_change")]
    fee_applies_to: String,
}

#[derive(ToSchema)]
struct NewPlan {
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$")]
    plan_id: String,
    /// Plan terms (docs/pricing.md): `name`, `recurring_fee`, `allowances`, `reservations`,
    /// `minimum`, `maximum`, `tax_mode`; amounts in the price books' currency, at most 12
    /// decimal places; at most 50 allowances and 50 reservations.
    #[schema(value_type = Object)]
    plan: serde_json::Value,
    /// The next version, if given (409 otherwise); default: the next.
    version: Option<u32>,
}

#[derive(ToSchema)]
struct PlanVersion {
    plan_id: String,
    version: u32,
    #[schema(value_type = Object)]
    plan: serde_json::Value,
    #[schema(format = DateTime)]
    created_at: String,
}

#[derive(ToSchema)]
struct PlanPage {
    data: Vec<PlanVersion>,
    next_cursor: Option<String>,
}

#[derive(ToSchema)]
struct BookPage {
    /// Price books (docs/pricing.md).
    #[schema(value_type = Vec<Object>)]
    data: Vec<serde_json::Value>,
    next_cursor: Option<String>,
}

const PAGE: &str = "Page size, 1 to 100 (default 50)";
const CURSOR: &str = "`next_cursor` of the previous page";

#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = Account,
    responses((status = 201, description = "The account, created", body = Account),
        (status = 409, description = "The account exists", body = Problem, content_type = "application/problem+json")))]
fn create_account() {}

#[utoipa::path(get, path = "/v1/accounts", tag = "accounts",
    params(("limit" = Option<u32>, Query, description = PAGE), ("cursor" = Option<String>, Query, description = CURSOR)),
    responses((status = 200, description = "Accounts in id order", body = AccountPage)))]
fn list_accounts() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}", tag = "accounts",
    params(("account_id" = String, Path, description = ID)),
    responses((status = 200, description = "The account", body = Account)))]
fn get_account() {}

#[utoipa::path(post, path = "/v1/accounts/{account_id}", tag = "accounts", request_body = Account,
    description = "Updates the fields given. The currency and the issuer can change only while the account has no invoice (and no credit).",
    params(("account_id" = String, Path, description = ID)),
    responses((status = 200, description = "The account, updated", body = Account)))]
fn update_account() {}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/subscriptions", tag = "subscriptions", request_body = NewSubscription,
    params(("account_id" = String, Path, description = ID)),
    responses((status = 201, description = "The subscription, created", body = Subscription),
        (status = 409, description = "The subscription exists", body = Problem, content_type = "application/problem+json")))]
fn create_subscription() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/subscriptions", tag = "subscriptions",
    params(("account_id" = String, Path, description = ID), ("limit" = Option<u32>, Query, description = PAGE), ("cursor" = Option<String>, Query, description = CURSOR)),
    responses((status = 200, description = "Subscriptions in id order", body = SubscriptionPage)))]
fn list_subscriptions() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/subscriptions/{subscription_id}", tag = "subscriptions",
    params(("account_id" = String, Path, description = ID), ("subscription_id" = String, Path, description = ID)),
    responses((status = 200, description = "The subscription", body = Subscription)))]
fn get_subscription() {}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/subscriptions/{subscription_id}/cancel", tag = "subscriptions", request_body = Cancel,
    description = "Cancels now (the open period's fee is prorated to now when it closes) or at the end of the open period. Cancelling again keeps the sooner cancellation.",
    params(("account_id" = String, Path, description = ID), ("subscription_id" = String, Path, description = ID)),
    responses((status = 200, description = "The subscription", body = Subscription),
        (status = 409, description = "The subscription has ended, or changed meanwhile", body = Problem, content_type = "application/problem+json")))]
fn cancel_subscription() {}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/subscriptions/{subscription_id}/change/preview", tag = "subscriptions", request_body = PlanChangeRequest,
    description = "What a change of plan would do to the period's recurring fees; nothing is written.",
    params(("account_id" = String, Path, description = ID), ("subscription_id" = String, Path, description = ID)),
    responses((status = 200, description = "The proration", body = PreviewResponse)))]
fn preview_change() {}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/subscriptions/{subscription_id}/change", tag = "subscriptions", request_body = PlanChangeRequest,
    description = "Changes the plan now (both plans' fees prorated by seconds, usage rated under the plan in force when it happened) or at the end of the open period.",
    params(("account_id" = String, Path, description = ID), ("subscription_id" = String, Path, description = ID)),
    responses((status = 200, description = "The subscription, changed, and the proration", body = ChangeResponse),
        (status = 409, description = "The subscription has ended, is cancelled, or changed meanwhile", body = Problem, content_type = "application/problem+json")))]
fn apply_change() {}

#[utoipa::path(post, path = "/v1/providers", tag = "providers", request_body = Provider,
    responses((status = 201, description = "The provider, created", body = Provider),
        (status = 409, description = "The provider exists", body = Problem, content_type = "application/problem+json")))]
fn create_provider() {}

#[utoipa::path(get, path = "/v1/providers/{provider_id}", tag = "providers",
    params(("provider_id" = String, Path, description = ID)),
    responses((status = 200, description = "The provider", body = Provider)))]
fn get_provider() {}

#[utoipa::path(get, path = "/v1/providers", tag = "providers",
    params(("limit" = Option<u32>, Query, description = PAGE), ("cursor" = Option<String>, Query, description = CURSOR)),
    responses((status = 200, description = "Providers in id order", body = ProviderPage)))]
fn list_providers() {}

#[utoipa::path(post, path = "/v1/providers/{provider_id}", tag = "providers", request_body = ProviderUpdate,
    params(("provider_id" = String, Path, description = ID)),
    responses((status = 200, description = "The provider, changed (unchanged fields kept)", body = UpdatedProvider),
        (status = 403, description = "A provider key tried to change the fee", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The catalog kept changing while it was written; retry", body = Problem, content_type = "application/problem+json")))]
fn update_provider() {}

#[utoipa::path(get, path = "/v1/providers/{provider_id}/price-books", tag = "price books",
    params(("provider_id" = String, Path, description = ID), ("limit" = Option<u32>, Query, description = PAGE), ("cursor" = Option<String>, Query, description = CURSOR)),
    responses((status = 200, description = "Every version of the provider's books, by id and version", body = BookPage)))]
fn list_provider_books() {}

#[utoipa::path(post, path = "/v1/price-books", tag = "price books", request_body = Object,
    description = "A price book (docs/pricing.md): a new book, or a new version of one (higher version, effective from now or later; an open-ended previous version ends where it starts). Validated with the books in force: problems name the JSON path (`prices[0].model.tiers[1].up_to`).",
    responses((status = 201, description = "The version, stored", body = Object),
        (status = 409, description = "The version exists (versions are immutable), or the catalog is full", body = Problem, content_type = "application/problem+json")))]
fn create_price_book() {}

#[utoipa::path(get, path = "/v1/price-books", tag = "price books",
    params(("limit" = Option<u32>, Query, description = PAGE), ("cursor" = Option<String>, Query, description = CURSOR)),
    responses((status = 200, description = "The latest version of each book, by id", body = BookPage)))]
fn list_price_books() {}

#[utoipa::path(get, path = "/v1/price-books/{book_id}/versions", tag = "price books",
    params(("book_id" = String, Path, description = ID), ("limit" = Option<u32>, Query, description = PAGE), ("cursor" = Option<String>, Query, description = CURSOR)),
    responses((status = 200, description = "The book's versions, oldest first", body = BookPage)))]
fn list_book_versions() {}

#[utoipa::path(get, path = "/v1/price-books/{book_id}/versions/{version}", tag = "price books",
    params(("book_id" = String, Path, description = ID), ("version" = u32, Path, description = "From 1")),
    responses((status = 200, description = "The version", body = Object)))]
fn get_book_version() {}

#[utoipa::path(post, path = "/v1/plans", tag = "plans", request_body = NewPlan,
    responses((status = 201, description = "The plan's new version", body = PlanVersion),
        (status = 409, description = "Not the next version (versions are immutable)", body = Problem, content_type = "application/problem+json")))]
fn create_plan() {}

#[utoipa::path(get, path = "/v1/plans", tag = "plans",
    params(("limit" = Option<u32>, Query, description = PAGE), ("cursor" = Option<String>, Query, description = CURSOR)),
    responses((status = 200, description = "The latest version of each plan, by id", body = PlanPage)))]
fn list_plans() {}

#[utoipa::path(get, path = "/v1/plans/{plan_id}", tag = "plans",
    params(("plan_id" = String, Path, description = ID), ("version" = Option<u32>, Query, description = "A version; default the latest")),
    responses((status = 200, description = "The plan", body = PlanVersion)))]
fn get_plan() {}

#[utoipa::path(get, path = "/v1/plans/{plan_id}/versions", tag = "plans",
    params(("plan_id" = String, Path, description = ID), ("limit" = Option<u32>, Query, description = PAGE), ("cursor" = Option<String>, Query, description = CURSOR)),
    responses((status = 200, description = "The plan's versions, oldest first", body = PlanPage)))]
fn list_plan_versions() {}

#[derive(OpenApi)]
#[openapi(paths(
    create_account,
    list_accounts,
    get_account,
    update_account,
    create_subscription,
    list_subscriptions,
    get_subscription,
    cancel_subscription,
    preview_change,
    apply_change,
    create_provider,
    list_providers,
    get_provider,
    update_provider,
    list_provider_books,
    create_price_book,
    list_price_books,
    list_book_versions,
    get_book_version,
    create_plan,
    list_plans,
    get_plan,
    list_plan_versions
))]
pub(crate) struct CatalogDoc;
