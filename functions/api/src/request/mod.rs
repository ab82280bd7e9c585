//! Typed requests: every route's query string and body are one Rust type that derives
//! `Deserialize` (rejecting unknown fields) and its OpenAPI description (`ToSchema` for bodies,
//! `IntoParams` for queries). The route table ([`crate::Api::ROUTES`]) names both types of each
//! route; the document takes the route's parameters and body schema from them, and the handler
//! parses its request with [`Ctx::query`] and [`Ctx::body`], which refuse a type the route does
//! not declare. So the document and the validation cannot disagree.
//!
//! Parsing reports every field error, not the first: unknown and missing fields come from the
//! type's own description (its properties and `required`), then serde reads the rest, and each
//! field it refuses is named with its path (`policy.terms.days`, `fingerprints[0]`) and left out
//! so the others are still read. What a field's type checks (an id's characters, a decimal
//! string, an RFC 3339 time, a range) is in [`types`]; what spans fields (a range's ends, a role
//! and its tenant) is each request type's `validate()`, which returns the domain value or every
//! error. Errors become one RFC 9457 problem (400) naming each field.

pub mod accounts;
pub mod catalog;
pub mod credits;
pub mod estimates;
pub mod invoices;
pub mod keys;
pub mod path;
pub mod rates;
pub mod top_ups;
pub mod types;
pub mod usage;

use crate::routes::Ctx;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::RequestExt;
use meterline_shared::adapters::http::problem::Problem;
use meterline_shared::domain::usage::FieldError;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::any::TypeId;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// The body of a route that takes none: nothing, or `{}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

/// The query of a route that takes no parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NoQuery {}

/// A body type: its id, its schema's name, and its schema with those it refers to.
pub type BodyShape = (TypeId, String, Vec<(String, RefOr<Schema>)>);

/// A route's request types, as the route table declares them: what the document describes and
/// what the handler may parse.
#[derive(Clone, Copy)]
pub struct Shape {
    pub query: fn() -> (TypeId, Vec<Parameter>),
    /// `None`: the route takes no body.
    pub body: Option<fn() -> BodyShape>,
}

fn query_shape<Q: IntoParams + 'static>() -> (TypeId, Vec<Parameter>) {
    (TypeId::of::<Q>(), Q::into_params(|| Some(ParameterIn::Query)))
}

fn body_shape<B: ToSchema + 'static>() -> BodyShape {
    let mut schemas = vec![(B::name().into_owned(), B::schema())];
    B::schemas(&mut schemas);
    (TypeId::of::<B>(), B::name().into_owned(), schemas)
}

impl Shape {
    /// A route with query `Q` and no body.
    pub const fn query<Q: IntoParams + 'static>() -> Shape {
        Shape {
            query: query_shape::<Q>,
            body: None,
        }
    }

    /// A route with query `Q` and body `B`.
    pub const fn body<Q: IntoParams + 'static, B: ToSchema + 'static>() -> Shape {
        Shape {
            query: query_shape::<Q>,
            body: Some(body_shape::<B>),
        }
    }
}

/// 400 listing every field error.
pub fn invalid(what: &str, errors: Vec<FieldError>) -> Problem {
    let detail = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    let (slug, title) = match what {
        "query" => ("invalid-parameter", "Invalid parameter"),
        _ => ("invalid-body", "Invalid request body"),
    };
    Problem::new(400, slug, title, detail).with_errors(errors)
}

/// A value read with every structural error found, and the value itself when the fields that
/// remain (the refused optional ones left out) still make one.
pub struct Parsed<T> {
    pub value: Option<T>,
    pub errors: Vec<FieldError>,
}

impl<T: DeserializeOwned> Parsed<T> {
    /// The value, or a 400 naming every field.
    pub fn into_result(self, what: &str) -> Result<T, Problem> {
        match self.value {
            Some(v) if self.errors.is_empty() => Ok(v),
            _ => Err(invalid(what, self.errors)),
        }
    }

    /// Runs the type's cross-field checks on the value, adding their errors to the structural
    /// ones (a field already named is not named twice): the domain value, or every error.
    pub fn validate<D>(
        self,
        what: &str,
        check: impl FnOnce(T) -> Result<D, Vec<FieldError>>,
    ) -> Result<D, Problem> {
        let Some(value) = self.value else {
            return Err(invalid(what, self.errors));
        };
        combine::<T, D>(what, self.errors, check(value))
    }
}

/// `result` if there are no `errors`, else a 400 naming `errors` and those of `result` (a field
/// already named is not named twice), in the order of `T`'s fields.
pub fn combine<T: DeserializeOwned, D>(
    what: &str,
    mut errors: Vec<FieldError>,
    result: Result<D, Vec<FieldError>>,
) -> Result<D, Problem> {
    match result {
        Ok(d) if errors.is_empty() => Ok(d),
        Ok(_) => Err(invalid(what, errors)),
        Err(more) => {
            for e in more {
                if !errors.iter().any(|x| names_same_field(&x.field, &e.field)) {
                    errors.push(e);
                }
            }
            in_order::<T>(&mut errors);
            Err(invalid(what, errors))
        }
    }
}

/// Whether two error paths name the same field or one holds the other (`job` and `job.start`).
fn names_same_field(a: &str, b: &str) -> bool {
    let within = |outer: &str, inner: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
    };
    within(a, b) || within(b, a)
}

/// The schemas a description refers to, by name.
type Components = std::collections::BTreeMap<String, RefOr<Schema>>;

fn components<T: ToSchema>() -> Components {
    let mut list = Vec::new();
    T::schemas(&mut list);
    list.into_iter().collect()
}

/// The object schema a value is described by: references resolved, and of a `oneOf` (an
/// optional member) the first alternative that is an object.
fn object_schema<'a>(
    schema: &'a RefOr<Schema>,
    comps: &'a Components,
) -> Option<&'a utoipa::openapi::schema::Object> {
    match schema {
        RefOr::Ref(r) => {
            let name = r.ref_location.rsplit('/').next()?;
            object_schema(comps.get(name)?, comps)
        }
        RefOr::T(Schema::Object(o)) if !o.properties.is_empty() => Some(o),
        // An optional member: `oneOf` null and its type. (Any other `oneOf` is left to serde.)
        RefOr::T(Schema::OneOf(o)) if o.items.len() == 2 => {
            let is_null = |i: &RefOr<Schema>| {
                matches!(i, RefOr::T(Schema::Object(n))
                    if n.schema_type == utoipa::openapi::schema::SchemaType::Type(utoipa::openapi::schema::Type::Null))
            };
            match (is_null(&o.items[0]), is_null(&o.items[1])) {
                (true, false) => object_schema(&o.items[1], comps),
                (false, true) => object_schema(&o.items[0], comps),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Names every unknown member (and leaves it out) and every missing required one of `value`
/// and the objects in it, as the description lists them.
fn precheck(
    value: &mut Value,
    schema: &RefOr<Schema>,
    comps: &Components,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let (Value::Object(map), Some(o)) = (value, object_schema(schema, comps)) else {
        return;
    };
    let name = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    let known: Vec<&String> = o.properties.keys().collect();
    let unknown: Vec<String> = map
        .keys()
        .filter(|k| !o.properties.contains_key(*k))
        .cloned()
        .collect();
    for k in unknown {
        let expected: Vec<&str> = known.iter().map(|k| k.as_str()).collect();
        errors.push(FieldError::new(
            name(&k),
            "unknown_field",
            format!("is not a field here; expected one of {}", expected.join(", ")),
        ));
        map.remove(&k);
    }
    for r in o.required.iter().filter(|r| !map.contains_key(*r)) {
        errors.push(FieldError::new(name(r), "required", "is required"));
    }
    for (k, v) in map.iter_mut() {
        if let Some(s) = o.properties.get(k) {
            precheck(v, s, comps, &name(k), errors);
        }
    }
}

/// One step of an error's path.
enum Step {
    Key(String),
    Index(usize),
}

fn steps(path: &serde_path_to_error::Path) -> Vec<Step> {
    path.iter()
        .filter_map(|s| match s {
            serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
            serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
            _ => None,
        })
        .collect()
}

/// Removes the object member deepest on `path` (an array is removed whole, so that the indices
/// of its other items keep naming them). False when there is none.
fn remove_at(root: &mut Value, path: &[Step]) -> bool {
    let Some(last) = path.iter().rposition(|s| matches!(s, Step::Key(_))) else {
        return false;
    };
    let mut node = root;
    for step in &path[..last] {
        let next = match (step, node) {
            (Step::Key(k), Value::Object(m)) => m.get_mut(k),
            (Step::Index(i), Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    match (&path[last], node) {
        (Step::Key(k), Value::Object(m)) => m.remove(k).is_some(),
        _ => false,
    }
}

/// The field names of a struct type, in declaration order (what serde's derive passes to the
/// deserializer); empty for other types.
fn field_order<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Introspect<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Introspect<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("introspection"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("introspection"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Introspect(&mut fields));
    fields
}

/// Orders errors as a reader expects them: unknown fields first, then by the fields' order in
/// the type (errors of one field in the order found).
fn in_order<'de, T: Deserialize<'de>>(errors: &mut [FieldError]) {
    let order = field_order::<T>();
    errors.sort_by_key(|e| {
        let top = e.field.split(['.', '[']).next().unwrap_or_default();
        (
            e.code != "unknown_field",
            order.iter().position(|f| *f == top).unwrap_or(usize::MAX),
        )
    });
}

/// Reads `map` as `T`. `described`: its description and the schemas it refers to, checked first
/// so that every unknown and missing field is named.
pub(crate) fn read<T: DeserializeOwned>(
    map: Map<String, Value>,
    described: Option<(&RefOr<Schema>, &Components)>,
) -> Parsed<T> {
    let mut errors = Vec::new();
    let mut root = Value::Object(map);
    if let Some((schema, comps)) = described {
        precheck(&mut root, schema, comps, "", &mut errors);
    }
    // Each refused member is named and left out, and the rest read again: serde stops at the
    // first error, and reports a missing field only once every present one has been read. A
    // missing field leaves out the object that lacks it.
    for _ in 0..256 {
        match serde_path_to_error::deserialize::<_, T>(root.clone()) {
            Ok(v) => {
                in_order::<T>(&mut errors);
                return Parsed {
                    value: Some(v),
                    errors,
                };
            }
            Err(e) => {
                let message = e.inner().to_string();
                let error = field_error(&e.path().to_string(), &message);
                let mut target = steps(e.path());
                if message.starts_with("unknown field ") {
                    let key = error.field.rsplit('.').next().unwrap_or_default().to_string();
                    if !matches!(target.last(), Some(Step::Key(k)) if *k == key) {
                        target.push(Step::Key(key));
                    }
                }
                if !errors.iter().any(|x| names_same_field(&x.field, &error.field)) {
                    errors.push(error);
                }
                if !remove_at(&mut root, &target) {
                    break;
                }
            }
        }
    }
    in_order::<T>(&mut errors);
    Parsed { value: None, errors }
}

/// A serde error at `path` as a field error: serde's own messages get a code; the field types
/// of [`types`] write theirs as `code: message`.
fn field_error(path: &str, message: &str) -> FieldError {
    let path = if path == "." { "" } else { path };
    let join = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    let quoted = |m: &str| m.split('`').nth(1).unwrap_or_default().to_string();
    if let Some(rest) = message.strip_prefix("missing field ") {
        return FieldError::new(join(&quoted(rest)), "required", "is required");
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        // The path may already end with the unknown key.
        let name = quoted(rest);
        let field = if path == name || path.ends_with(&format!(".{name}")) {
            path.to_string()
        } else {
            join(&name)
        };
        let expected = rest.split_once(", ").map(|(_, e)| e).unwrap_or("no fields");
        return FieldError::new(field, "unknown_field", format!("is not a field here; {expected}"));
    }
    let field = if path.is_empty() {
        "body".to_string()
    } else {
        path.to_string()
    };
    if let Some((code, text)) = message.split_once(": ") {
        if !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return FieldError::new(field, code, text);
        }
    }
    let code = if message.starts_with("invalid type") {
        "invalid_type"
    } else if message.starts_with("unknown variant") || message.starts_with("invalid value") {
        "invalid_value"
    } else if message.starts_with("invalid length") {
        "invalid_length"
    } else {
        "invalid"
    };
    FieldError::new(field, code, message)
}

/// Reads a JSON body as `B`: an empty body is `{}`.
pub fn parse_body<B: DeserializeOwned + ToSchema>(bytes: &[u8]) -> Parsed<B> {
    let fail = |code: &str, message: String| Parsed {
        value: None,
        errors: vec![FieldError::new("body", code, message)],
    };
    let value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(v) => v,
            Err(e) => return fail("invalid_json", format!("is not JSON: {e}")),
        }
    };
    let (schema, comps) = (B::schema(), components::<B>());
    match value {
        Value::Object(map) => read(map, Some((&schema, &comps))),
        _ if object_schema(&schema, &comps).is_some() => fail("invalid_type", "must be a JSON object".into()),
        other => match serde_path_to_error::deserialize::<_, B>(other) {
            Ok(v) => Parsed {
                value: Some(v),
                errors: Vec::new(),
            },
            Err(e) => Parsed {
                value: None,
                errors: vec![field_error(&e.path().to_string(), &e.inner().to_string())],
            },
        },
    }
}

/// Reads a query string as `Q`: each parameter's values joined by commas (a repeated
/// `status=open&status=paid` reads as `open,paid`).
pub fn parse_query<Q: DeserializeOwned + IntoParams>(q: &QueryMap) -> Parsed<Q> {
    let params = Q::into_params(|| Some(ParameterIn::Query));
    let mut described = utoipa::openapi::schema::ObjectBuilder::new();
    for p in &params {
        if let Some(schema) = &p.schema {
            described = described.property(&p.name, schema.clone());
        }
        if matches!(p.required, utoipa::openapi::Required::True) {
            described = described.required(&p.name);
        }
    }
    let described = RefOr::T(Schema::Object(described.build()));
    let mut map = Map::new();
    for (k, _) in q.iter() {
        if map.contains_key(k) {
            continue;
        }
        let all = q.all(k).unwrap_or_default();
        map.insert(k.to_string(), Value::String(all.join(",")));
    }
    read(map, Some((&described, &Components::new())))
}

impl Ctx {
    /// Refuses a request type the route does not declare: the document would describe another.
    fn declared(&self, got: TypeId, declared: Option<TypeId>, what: &str) -> Result<(), Problem> {
        if declared == Some(got) {
            Ok(())
        } else {
            tracing::error!(route = %self.route, what, "the handler parses a type its route does not declare");
            Err(Problem::new(
                500,
                "undeclared-request-type",
                "Internal error",
                format!("the {what} this handler reads is not the one its route declares"),
            ))
        }
    }

    /// The query string, read as the route's declared query type.
    pub fn query<Q: DeserializeOwned + IntoParams + 'static>(&self) -> Result<Parsed<Q>, Problem> {
        self.declared(TypeId::of::<Q>(), Some((self.shape.query)().0), "query")?;
        Ok(parse_query(&self.req.query_string_parameters()))
    }

    /// The query string as `Q`, or a 400 naming every parameter.
    pub fn query_ok<Q: DeserializeOwned + IntoParams + 'static>(&self) -> Result<Q, Problem> {
        self.query::<Q>()?.into_result("query")
    }

    /// The body, read as the route's declared body type.
    pub fn body<B: DeserializeOwned + ToSchema + 'static>(&self) -> Result<Parsed<B>, Problem> {
        self.declared(TypeId::of::<B>(), self.shape.body.map(|b| b().0), "body")?;
        Ok(parse_body(crate::body_bytes(self.req.body())))
    }

    /// The body's bytes, for a declared body type that reads them its own way (the usage body,
    /// whose events are checked one by one).
    pub fn raw_body<B: ToSchema + 'static>(&self) -> Result<&[u8], Problem> {
        self.declared(TypeId::of::<B>(), self.shape.body.map(|b| b().0), "body")?;
        Ok(crate::body_bytes(self.req.body()))
    }

    /// The body as `B`, or a 400 naming every field.
    pub fn body_ok<B: DeserializeOwned + ToSchema + 'static>(&self) -> Result<B, Problem> {
        self.body::<B>()?.into_result("body")
    }
}

/// The schema of a type, for tests and the document.
pub fn schema_of<T: PartialSchema>() -> RefOr<Schema> {
    T::schema()
}

#[cfg(test)]
mod tests {
    use super::types::{RefId, Time};
    use super::*;

    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        id: RefId,
        at: Option<Time>,
        count: u32,
        nested: Option<Inner>,
    }

    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        a: u32,
    }

    fn fields(body: &str) -> Vec<(String, String)> {
        parse_body::<Sample>(body.as_bytes())
            .errors
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn every_field_error_is_named_with_its_path() {
        assert_eq!(
            fields(r#"{"id": "a b", "at": "yesterday", "zz": 1, "nested": {"a": "x"}}"#),
            pairs(&[
                ("zz", "unknown_field"),
                ("id", "invalid_format"),
                ("at", "invalid_format"),
                ("count", "required"),
                ("nested.a", "invalid_type"),
            ])
        );
        assert_eq!(
            fields(r#"{"id": "a1", "count": 1, "nested": {"b": 1}}"#),
            pairs(&[("nested.b", "unknown_field"), ("nested.a", "required")])
        );
        assert_eq!(fields("[1]"), pairs(&[("body", "invalid_type")]));
        assert_eq!(fields("{"), pairs(&[("body", "invalid_json")]));
        assert!(fields(r#"{"id": "a1", "count": 1}"#).is_empty());
    }

    #[test]
    fn a_time_that_is_not_rfc_3339_says_so_with_the_value() {
        let p = parse_body::<Sample>(br#"{"id": "a1", "count": 1, "at": "2026-13-01"}"#);
        assert_eq!(p.errors[0].field, "at");
        assert!(
            p.errors[0].message.contains("`2026-13-01`"),
            "{}",
            p.errors[0].message
        );
        assert!(
            p.errors[0].message.contains("RFC 3339"),
            "{}",
            p.errors[0].message
        );
    }

    #[test]
    fn query_parameters_are_read_like_fields() {
        #[derive(Debug, Deserialize, IntoParams)]
        #[serde(deny_unknown_fields)]
        #[into_params(parameter_in = Query)]
        #[allow(dead_code)]
        struct Q {
            from: Option<Time>,
            id: RefId,
        }
        let q: QueryMap = std::collections::HashMap::from([
            ("from".to_string(), vec!["x".to_string()]),
            ("other".to_string(), vec!["1".to_string()]),
        ])
        .into();
        let got: Vec<String> = parse_query::<Q>(&q).errors.into_iter().map(|e| e.field).collect();
        assert_eq!(got, ["other", "from", "id"]);
    }
}
