//! The responses of the top-up routes.

use super::Problem;
use utoipa::{OpenApi, ToSchema};

/// A top-up: `pending` until its payment's result, then `succeeded` (its grant, of the same id,
/// is made) or `failed` (a later success still settles it).
#[derive(ToSchema)]
struct TopUp {
    top_up_id: String,
    account_id: String,
    /// In the currency's minor units.
    amount: String,
    currency: String,
    /// `pending`, `succeeded` or `failed`.
    status: String,
    #[schema(format = DateTime)]
    requested_at: String,
    /// The payment that paid it, or last failed it.
    payment_id: Option<String>,
    #[schema(format = DateTime)]
    settled_at: Option<String>,
    /// The payment service's reason of a failure.
    failure: Option<String>,
    /// The grant it made, once `succeeded` (the top-up's id).
    grant_id: Option<String>,
}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/top-ups", tag = "credits",
    responses(
        (status = 201, description = "The top-up, pending, its payment requested (a repeat: as it is now)", body = TopUp),
        (status = 409, description = "The top-up id was used for another amount", body = Problem, content_type = "application/problem+json"),
    ))]
fn create_top_up() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/top-ups/{top_up_id}", tag = "credits",
    responses((status = 200, description = "The top-up", body = TopUp)))]
fn get_top_up() {}

#[derive(OpenApi)]
#[openapi(paths(create_top_up, get_top_up))]
pub(crate) struct TopUpsDoc;
