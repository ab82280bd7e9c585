//! Path parameters: each name the route table uses has one type, which the handler reads it
//! with and the document describes it by.

use super::types::{CurrencyCode, RefId, Version};
use crate::limits;
use meterline_shared::adapters::http::problem::Problem;
use serde::de::DeserializeOwned;
use serde_json::json;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::PartialSchema;

/// A key's id: its 16-character prefix.
const KEY_ID_PATTERN: &str = "^[a-z2-7]{16}$";
/// A credit note id: `credit-note#<invoice id>#<key>` (each `#` percent-encoded in the path, as
/// clients encode path parameters); the key is the note's own id or the invoice of the close
/// that issued it, so each part is as long as an invoice id may be (`MAX_INVOICE_ID_LEN`).
const CREDIT_NOTE_PATTERN: &str = "^credit-note#[A-Za-z0-9_.:~-]{1,415}#[A-Za-z0-9_.:~-]{1,415}$";
/// A statement id: `<period end>:<invoice id>`.
const STATEMENT_PATTERN: &str = "^[0-9]{8}T[0-9]{6}\\.[0-9]{3}Z:[A-Za-z0-9_.:~-]{1,415}$";

fn string(pattern: &str, description: &str) -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .pattern(Some(pattern))
            .description(Some(description))
            .build(),
    ))
}

/// The example of a path parameter: the ids the examples of the request bodies create (and
/// the contract run seeds), so that an example request names something that exists.
pub fn example(name: &str) -> &'static str {
    match name {
        "account_id" => "acct_1",
        "provider_id" => "prov_1",
        "plan_id" => "pro",
        "subscription_id" => "sub_1",
        "budget_id" => "monthly",
        "hold_id" => "hold_1",
        "top_up_id" => "topup_1",
        "book_id" => "book_1",
        "invoice_id" => "inv_acct_1~sub_1_20260101T000000Z",
        "version" => "1",
        "base" => "BTC",
        "quote" => "USD",
        "key_id" => "abcdefghijklmnop",
        "credit_note_id" => "credit-note#inv_acct_1~sub_1_20260101T000000Z#cn_1",
        "statement_id" => "20261125T130000.000Z:inv_acct_1~sub_1_20261025T130000Z",
        _ => "",
    }
}

/// The schema of a path parameter, by name; `None` for a name no route should use.
pub fn schema(name: &str) -> Option<RefOr<Schema>> {
    let mut schema = match name {
        "account_id" | "provider_id" | "subscription_id" | "budget_id" | "plan_id" | "book_id"
        | "hold_id" | "top_up_id" => RefId::schema(),
        "invoice_id" => super::types::InvoiceId::schema(),
        "version" => Version::schema(),
        "base" | "quote" => CurrencyCode::schema(),
        "key_id" => string(KEY_ID_PATTERN, "The key's id (its prefix)"),
        "credit_note_id" => string(
            CREDIT_NOTE_PATTERN,
            "The note's `credit_note_id`, each `#` percent-encoded (`%23`)",
        ),
        "statement_id" => string(STATEMENT_PATTERN, "A `statement_id` from the list"),
        _ => return None,
    };
    if let RefOr::T(Schema::Object(o)) = &mut schema {
        let example = example(name);
        o.examples = vec![if name == "version" {
            json!(1)
        } else {
            json!(example)
        }];
    }
    Some(schema)
}

/// A path parameter read as its type: 400 naming it otherwise.
pub fn read<T: DeserializeOwned>(name: &str, raw: &str) -> Result<T, Problem> {
    let value = match name {
        "version" => raw.parse::<u64>().map(|n| json!(n)).unwrap_or(json!(raw)),
        _ => json!(raw),
    };
    serde_json::from_value::<T>(value).map_err(|e| {
        let message = e.to_string();
        let (code, text) = message.split_once(": ").unwrap_or(("invalid", message.as_str()));
        Problem::invalid_field(name, code, text)
    })
}

/// The id rule of a path parameter, for messages.
pub const ID_RULE: &str = limits::REF_ID_RULE;
