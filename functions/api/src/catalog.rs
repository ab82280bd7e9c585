//! Provider, price-book and plan routes (see `docs/api.md`):
//!
//! - `POST /v1/providers` (operator), `GET /v1/providers` (operator),
//!   `GET /v1/providers/{provider_id}`: a provider and the marketplace's fee on its sales (kept
//!   in the catalog's `fees`, which the close reads).
//! - `POST /v1/providers/{provider_id}`: its name (operator or its provider key) or fee
//!   (operator only). A fee change applies to the periods closed after it; statements of
//!   closed invoices keep the fee they were closed with.
//! - `POST /v1/price-books` (operator): a new book, or a new version of one, validated with
//!   the books in force; versions are immutable (409 on an existing id and version).
//! - `GET /v1/price-books` (latest version of each book), `GET /v1/price-books/{book_id}/versions`,
//!   `GET /v1/price-books/{book_id}/versions/{version}`, `GET /v1/providers/{provider_id}/price-books`.
//! - `POST /v1/plans` (operator: a new version of a named plan), `GET /v1/plans`,
//!   `GET /v1/plans/{plan_id}`, `GET /v1/plans/{plan_id}/versions` (any key).

use crate::accounts::page_of;
use crate::request::accounts::CatalogList;
use crate::request::catalog::{NewPlan, NewPriceBook, NewProvider, PlanQuery, ProviderUpdate};
use crate::request::types::{RefId, Version};
use crate::{json_response, store_problem, Ctx, Outcome};
use lambda_http::http::StatusCode;
use meterline_shared::adapters::http::problem::Problem;
use meterline_shared::domain::pricing::{validate_books, Owner, PriceBook, ValidationIssue};
use meterline_shared::domain::pricing::{CatalogData, UpfrontPayout};
use meterline_shared::domain::usage::event::is_valid_ref_id;
use meterline_shared::domain::usage::FieldError;
use meterline_shared::ports::directory::{PlanDoc, ProviderDoc, Written};
use serde_json::{json, Value};

/// The catalog is one DynamoDB item (at most 400 KB): writes that would make its document
/// larger than this are refused.
pub const MAX_CATALOG_BYTES: usize = 350_000;
/// Prices a book may have, allowances and reservations a plan may have.
pub const MAX_PRICES: usize = 500;
pub const MAX_PLAN_ITEMS: usize = 50;
/// Decimal places of amounts and quantities in books and plans.
pub const MAX_SCALE: u32 = 12;

fn issues_problem(issues: Vec<ValidationIssue>, prefix: &str) -> Problem {
    let errors: Vec<FieldError> = issues
        .into_iter()
        .map(|i| FieldError::new(format!("{prefix}{}", i.path), i.code, i.message))
        .collect();
    crate::request::invalid("body", errors)
}

fn conflict(slug: &str, title: &str, detail: impl Into<String>) -> Problem {
    Problem::new(409, slug, title, detail)
}

fn race() -> Problem {
    conflict(
        "conflict",
        "Concurrent change",
        "the catalog changed while it was written; retry",
    )
}

fn book_json(b: &PriceBook) -> Value {
    json!(b)
}

fn latest_versions(data: &CatalogData) -> Vec<&PriceBook> {
    let mut latest: std::collections::BTreeMap<&str, &PriceBook> = Default::default();
    for b in &data.books {
        let e = latest.entry(b.id.as_str()).or_insert(b);
        if b.version > e.version {
            *e = b;
        }
    }
    latest.into_values().collect()
}

/// Checks a new book (or version) against the catalog and returns the catalog with it, and the
/// book as stored.
pub(crate) fn with_book(
    data: &CatalogData,
    mut book: PriceBook,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(CatalogData, PriceBook), Problem> {
    if !is_valid_ref_id(&book.id) {
        return Err(Problem::invalid_field(
            "id",
            "invalid_format",
            crate::limits::REF_ID_RULE,
        ));
    }
    if let Owner::Provider { id } = &book.owner {
        if !is_valid_ref_id(id) {
            return Err(Problem::invalid_field(
                "owner.id",
                "invalid_format",
                crate::limits::REF_ID_RULE,
            ));
        }
    }
    if book.prices.len() > MAX_PRICES {
        return Err(Problem::invalid_field(
            "prices",
            "too_many",
            format!("at most {MAX_PRICES} prices"),
        ));
    }
    if book.version == 0 {
        return Err(Problem::invalid_field(
            "version",
            "out_of_range",
            "must be a whole number from 1",
        ));
    }
    if book.effective_from < now {
        return Err(Problem::invalid_field(
            "effective_from",
            "in_the_past",
            "must not be before now: billed periods are never re-priced",
        ));
    }
    let versions: Vec<&PriceBook> = data.books.iter().filter(|b| b.id == book.id).collect();
    if versions.iter().any(|b| b.version == book.version) {
        return Err(conflict(
            "version-exists",
            "Version exists",
            format!(
                "book {} version {} exists; versions are immutable",
                book.id, book.version
            ),
        ));
    }
    let mut next = data.clone();
    if let Some(prev) = versions.iter().max_by_key(|b| b.version) {
        if book.version < prev.version {
            return Err(conflict(
                "version-not-newest",
                "Not the newest version",
                format!(
                    "book {} is at version {}; a new version must be higher",
                    book.id, prev.version
                ),
            ));
        }
        if prev.owner != book.owner {
            return Err(Problem::invalid_field(
                "owner",
                "owner_changed",
                "a book's versions keep its owner",
            ));
        }
        // The open-ended previous version ends where this one starts (its prices never change).
        if prev.effective_to.is_none() && prev.effective_from < book.effective_from {
            let (id, v, from) = (prev.id.clone(), prev.version, book.effective_from);
            if let Some(p) = next.books.iter_mut().find(|b| b.id == id && b.version == v) {
                p.effective_to = Some(from);
            }
        }
    }
    book.currency = book.currency.to_uppercase();
    next.books.push(book.clone());
    let index = next.books.len() - 1;
    if let Err(e) = validate_books(&next.books) {
        // The new book's issues, relative to it; others' issues (an overlap) by their index.
        let own = format!("[{index}].");
        let issues =
            e.0.into_iter()
                .map(|mut i| {
                    if let Some(rest) = i.path.strip_prefix(&own) {
                        i.path = rest.to_string();
                    } else {
                        i.path = format!("catalog{}", i.path);
                    }
                    i
                })
                .collect();
        return Err(issues_problem(issues, ""));
    }
    Ok((next, book))
}

/// Writes a provider's settings the close reads into the catalog: its fee and when it is paid
/// a reservation's upfront (only `at_purchase` is stored: over the term is the default).
fn provider_settings(data: &mut CatalogData, doc: &ProviderDoc) {
    data.fees.insert(doc.provider_id.clone(), doc.fee_percent);
    match doc.upfront_payout {
        UpfrontPayout::OverTerm => data.upfront_payouts.remove(&doc.provider_id),
        p => data.upfront_payouts.insert(doc.provider_id.clone(), p),
    };
}

/// Fields of a provider a provider key may change (the fee is the operator's).
const PROVIDER_FIELDS: [&str; 1] = ["name"];

/// How a provider update's fee applies, stated in its response.
pub const FEE_APPLIES_TO: &str = "periods_closed_after_change";

fn provider_update_json(doc: &ProviderDoc) -> lambda_http::Response<lambda_http::Body> {
    let mut v = json!(doc);
    v["fee_applies_to"] = json!(FEE_APPLIES_TO);
    json_response(StatusCode::OK, v)
}

fn list(data: Vec<Value>, next: Option<String>) -> Outcome {
    Ok(json_response(
        StatusCode::OK,
        json!({"data": data, "next_cursor": next}),
    ))
}

impl crate::Api {
    pub(crate) async fn create_provider(&self, c: &Ctx) -> Outcome {
        let body = c.body_ok::<NewProvider>()?;
        let api = self.billing_api()?;
        let doc = ProviderDoc {
            provider_id: body.provider_id.0,
            name: body.name.0,
            fee_percent: body.fee_percent.0,
            created_at: c.now,
            updated_at: None,
            upfront_payout: body.upfront_payout.map(|p| p.0).unwrap_or_default(),
        };
        if api
            .directory
            .provider(&doc.provider_id)
            .await
            .map_err(|e| store_problem(&e))?
            .is_some()
        {
            return Err(conflict(
                "provider-exists",
                "Provider exists",
                format!("provider {} exists", doc.provider_id),
            ));
        }
        let (mut data, rev) = api
            .directory
            .catalog_revision()
            .await
            .map_err(|e| store_problem(&e))?;
        provider_settings(&mut data, &doc);
        match api
            .directory
            .create_provider(&doc, &data, rev)
            .await
            .map_err(|e| store_problem(&e))?
        {
            Written::Yes => Ok(json_response(StatusCode::CREATED, json!(doc))),
            Written::Conflict => Err(race()),
        }
    }

    pub(crate) async fn get_provider(&self, c: &Ctx) -> Outcome {
        let id: RefId = c.path("provider_id")?;
        let id = id.0;
        let api = self.billing_api()?;
        let doc = api
            .directory
            .provider(&id)
            .await
            .map_err(|e| store_problem(&e))?
            .ok_or_else(|| Problem::not_found(format!("no provider {id}")))?;
        Ok(json_response(StatusCode::OK, json!(doc)))
    }

    pub(crate) async fn list_providers(&self, c: &Ctx) -> Outcome {
        let (limit, after) = c.query_ok::<CatalogList>()?.page()?;
        let api = self.billing_api()?;
        let page = api
            .directory
            .providers(after.as_deref(), limit)
            .await
            .map_err(|e| store_problem(&e))?;
        list(
            page.items.iter().map(|d| json!(d)).collect(),
            page.next.as_deref().map(crate::encode_token),
        )
    }

    /// Changes a provider's name or (operator only) its fee. The fee is written to the catalog
    /// with its revision as condition; the close reads it when it closes a period, so the new
    /// fee applies to every period closed after the change, and statements already written for
    /// closed invoices keep the fee they were closed with.
    pub(crate) async fn update_provider(&self, c: &Ctx) -> Outcome {
        let id: RefId = c.path("provider_id")?;
        let id = id.0;
        let body = c.body_ok::<ProviderUpdate>()?;
        let given = body.given().map_err(|e| crate::request::invalid("body", e))?;
        if matches!(
            c.principal,
            Some(meterline_shared::domain::access::keys::Principal::Provider { .. })
        ) {
            crate::accounts::tenant_may_change(&given, &PROVIDER_FIELDS, "a provider key")?;
        }
        let (name, fee) = (body.name.map(|n| n.0), body.fee_percent.map(|f| f.0));
        let payout = body.upfront_payout.map(|p| p.0);
        let api = self.billing_api()?;
        for _ in 0..3 {
            let current = api
                .directory
                .provider(&id)
                .await
                .map_err(|e| store_problem(&e))?
                .ok_or_else(|| Problem::not_found(format!("no provider {id}")))?;
            let mut doc = current.clone();
            if let Some(n) = &name {
                doc.name = n.clone();
            }
            if let Some(fee) = fee {
                doc.fee_percent = fee;
            }
            if let Some(p) = payout {
                doc.upfront_payout = p;
            }
            if doc == current {
                return Ok(provider_update_json(&doc));
            }
            doc.updated_at = Some(c.now);
            let (mut data, rev) = api
                .directory
                .catalog_revision()
                .await
                .map_err(|e| store_problem(&e))?;
            provider_settings(&mut data, &doc);
            match api
                .directory
                .update_provider(&doc, &data, rev)
                .await
                .map_err(|e| store_problem(&e))?
            {
                Written::Yes => return Ok(provider_update_json(&doc)),
                Written::Conflict => continue,
            }
        }
        Err(race())
    }

    pub(crate) async fn create_price_book(&self, c: &Ctx) -> Outcome {
        let book = c
            .body::<NewPriceBook>()?
            .validate("body", NewPriceBook::validate)?;
        let api = self.billing_api()?;
        let (data, rev) = api
            .directory
            .catalog_revision()
            .await
            .map_err(|e| store_problem(&e))?;
        let (next, stored) = with_book(&data, book, c.now)?;
        let size = serde_json::to_string(&next)
            .map(|s| s.len())
            .unwrap_or(usize::MAX);
        if size > MAX_CATALOG_BYTES {
            return Err(Problem::new(
                409,
                "catalog-full",
                "The catalog is full",
                format!("the catalog would be {size} bytes; it is one item of at most {MAX_CATALOG_BYTES}"),
            ));
        }
        match api
            .directory
            .replace_catalog(&next, rev)
            .await
            .map_err(|e| store_problem(&e))?
        {
            Written::Yes => Ok(json_response(StatusCode::CREATED, book_json(&stored))),
            Written::Conflict => Err(race()),
        }
    }

    pub(crate) async fn list_price_books(&self, c: &Ctx) -> Outcome {
        let (limit, after) = c.query_ok::<CatalogList>()?.page()?;
        let api = self.billing_api()?;
        let data = api.billing.catalog().await.map_err(|e| store_problem(&e))?;
        let (page, next) = page_of(latest_versions(&data), |b| b.id.clone(), after.as_deref(), limit);
        list(page.into_iter().map(book_json).collect(), next)
    }

    pub(crate) async fn list_book_versions(&self, c: &Ctx) -> Outcome {
        let id: RefId = c.path("book_id")?;
        let id = id.0;
        let (limit, after) = c.query_ok::<CatalogList>()?.page()?;
        let api = self.billing_api()?;
        let data = api.billing.catalog().await.map_err(|e| store_problem(&e))?;
        let mut versions: Vec<&PriceBook> = data.books.iter().filter(|b| b.id == id).collect();
        if versions.is_empty() {
            return Err(Problem::not_found(format!("no price book {id}")));
        }
        versions.sort_by_key(|b| b.version);
        let (page, next) = page_of(
            versions,
            |b| format!("{:010}", b.version),
            after.as_deref(),
            limit,
        );
        list(page.into_iter().map(book_json).collect(), next)
    }

    pub(crate) async fn get_book_version(&self, c: &Ctx) -> Outcome {
        let id: RefId = c.path("book_id")?;
        let id = id.0;
        let version: Version = c.path("version")?;
        let version = version.0 as u32;
        let api = self.billing_api()?;
        let data = api.billing.catalog().await.map_err(|e| store_problem(&e))?;
        data.books
            .iter()
            .find(|b| b.id == id && b.version == version)
            .map(|b| json_response(StatusCode::OK, book_json(b)))
            .ok_or_else(|| Problem::not_found(format!("no price book {id} version {version}")))
    }

    pub(crate) async fn list_provider_books(&self, c: &Ctx) -> Outcome {
        let provider: RefId = c.path("provider_id")?;
        let provider = provider.0;
        let (limit, after) = c.query_ok::<CatalogList>()?.page()?;
        let api = self.billing_api()?;
        if api
            .directory
            .provider(&provider)
            .await
            .map_err(|e| store_problem(&e))?
            .is_none()
        {
            return Err(Problem::not_found(format!("no provider {provider}")));
        }
        let data = api.billing.catalog().await.map_err(|e| store_problem(&e))?;
        let mut books: Vec<&PriceBook> = data
            .books
            .iter()
            .filter(|b| matches!(&b.owner, Owner::Provider { id } if *id == provider))
            .collect();
        books.sort_by(|a, b| (&a.id, a.version).cmp(&(&b.id, b.version)));
        let (page, next) = page_of(
            books,
            |b| format!("{}#{:010}", b.id, b.version),
            after.as_deref(),
            limit,
        );
        list(page.into_iter().map(book_json).collect(), next)
    }

    pub(crate) async fn create_plan(&self, c: &Ctx) -> Outcome {
        let (plan_id, plan, version) = c.body::<NewPlan>()?.validate("body", NewPlan::validate)?;
        let api = self.billing_api()?;
        let latest = api
            .directory
            .plan(&plan_id, None)
            .await
            .map_err(|e| store_problem(&e))?;
        let next = latest.as_ref().map_or(1, |l| l.version + 1);
        if let Some(v) = version {
            if v != next {
                return Err(conflict(
                    "version-exists",
                    "Not the next version",
                    format!(
                        "plan {plan_id} is at version {}; versions are immutable, the next is {next}",
                        next - 1
                    ),
                ));
            }
        }
        let doc = PlanDoc {
            plan_id,
            version: next,
            plan,
            created_at: c.now,
        };
        match api
            .directory
            .put_plan_version(&doc)
            .await
            .map_err(|e| store_problem(&e))?
        {
            Written::Yes => Ok(json_response(StatusCode::CREATED, json!(doc))),
            Written::Conflict => Err(conflict(
                "conflict",
                "Concurrent change",
                "another version was written meanwhile; retry",
            )),
        }
    }

    pub(crate) async fn list_plans(&self, c: &Ctx) -> Outcome {
        let (limit, after) = c.query_ok::<CatalogList>()?.page()?;
        let api = self.billing_api()?;
        let page = api
            .directory
            .plans(after.as_deref(), limit)
            .await
            .map_err(|e| store_problem(&e))?;
        list(
            page.items.iter().map(|d| json!(d)).collect(),
            page.next.as_deref().map(crate::encode_token),
        )
    }

    pub(crate) async fn get_plan(&self, c: &Ctx) -> Outcome {
        let id: RefId = c.path("plan_id")?;
        let id = id.0;
        let version = c.query_ok::<PlanQuery>()?.version.map(|v| v.0 as u32);
        let api = self.billing_api()?;
        let doc = api
            .directory
            .plan(&id, version)
            .await
            .map_err(|e| store_problem(&e))?
            .ok_or_else(|| Problem::not_found(format!("no plan {id}")))?;
        Ok(json_response(StatusCode::OK, json!(doc)))
    }

    pub(crate) async fn list_plan_versions(&self, c: &Ctx) -> Outcome {
        let id: RefId = c.path("plan_id")?;
        let id = id.0;
        let (limit, after) = c.query_ok::<CatalogList>()?.page()?;
        let api = self.billing_api()?;
        let versions = api
            .directory
            .plan_versions(&id)
            .await
            .map_err(|e| store_problem(&e))?;
        if versions.is_empty() {
            return Err(Problem::not_found(format!("no plan {id}")));
        }
        let (page, next) = page_of(
            versions,
            |d| format!("{:010}", d.version),
            after.as_deref(),
            limit,
        );
        list(page.iter().map(|d| json!(d)).collect(), next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
        s.parse().unwrap()
    }

    fn book(id: &str, version: u32, from: &str, price: &str) -> PriceBook {
        serde_json::from_value(json!({"id": id, "owner": {"kind": "provider", "id": "p1"}, "currency": "USD",
            "version": version, "effective_from": from,
            "prices": [{"id": "cpu", "meter": "cpu_seconds", "model": {"type": "per_unit", "unit_price": price}}]}))
        .unwrap()
    }

    #[test]
    fn a_new_version_supersedes_the_open_ended_one_and_versions_are_immutable() {
        let now = t("2026-01-01T00:00:00Z");
        let (d, _) = with_book(
            &CatalogData::default(),
            book("b", 1, "2026-01-01T00:00:00Z", "0.1"),
            now,
        )
        .unwrap();
        let (d, _) = with_book(&d, book("b", 2, "2026-02-01T00:00:00Z", "0.2"), now).unwrap();
        assert_eq!(d.books[0].effective_to, Some(t("2026-02-01T00:00:00Z")));
        assert_eq!(
            d.books[0].prices,
            book("b", 1, "2026-01-01T00:00:00Z", "0.1").prices
        );
        let again = with_book(&d, book("b", 2, "2026-03-01T00:00:00Z", "0.3"), now).unwrap_err();
        assert_eq!(again.status, 409);
        let past = with_book(&d, book("b", 3, "2025-03-01T00:00:00Z", "0.3"), now).unwrap_err();
        assert_eq!(past.errors[0].field, "effective_from");
        let mut bad = book("c", 1, "2026-03-01T00:00:00Z", "-1");
        bad.prices[0].meter = "nope".into();
        let p = with_book(&d, bad, now).unwrap_err();
        let fields: Vec<&str> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"prices[0].meter"), "{fields:?}");
    }
}
