//! Reading and writing DynamoDB attribute values.

use crate::ports::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

pub type Item = HashMap<String, AttributeValue>;

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn string_map(m: &BTreeMap<String, String>) -> AttributeValue {
    AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), s(v))).collect())
}

fn missing(name: &str) -> StoreError {
    StoreError::Corrupt(format!("attribute `{name}` is missing or of the wrong type"))
}

pub fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| missing(name))
}

pub fn get_opt_s(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

pub fn get_decimal(item: &Item, name: &str) -> Result<Decimal, StoreError> {
    let text = item
        .get(name)
        .and_then(|v| v.as_n().ok())
        .ok_or_else(|| missing(name))?;
    crate::domain::usage::event::parse_decimal_text(text)
        .or_else(|| Decimal::from_str(text).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("attribute `{name}` is not a decimal: {text}")))
}

pub fn get_u64(item: &Item, name: &str) -> Result<u64, StoreError> {
    let text = item
        .get(name)
        .and_then(|v| v.as_n().ok())
        .ok_or_else(|| missing(name))?;
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("attribute `{name}` is not a count: {text}")))
}

pub fn get_string_map(item: &Item, name: &str) -> Result<BTreeMap<String, String>, StoreError> {
    match item.get(name) {
        None => Ok(BTreeMap::new()),
        Some(AttributeValue::M(m)) => m
            .iter()
            .map(|(k, v)| {
                v.as_s()
                    .map(|v| (k.clone(), v.clone()))
                    .map_err(|_| missing(name))
            })
            .collect(),
        Some(_) => Err(missing(name)),
    }
}

pub fn parse<T: FromStr>(item: &Item, name: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    let text = get_s(item, name)?;
    text.parse()
        .map_err(|e: T::Err| StoreError::Corrupt(format!("attribute `{name}`: {e}")))
}
