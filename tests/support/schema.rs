//! A strict check of a JSON value against a schema of the OpenAPI document the API serves:
//! `$ref`, `type` (with `null`), `properties`/`required`, `items`, `additionalProperties`,
//! `oneOf`/`anyOf`/`allOf`, `enum`, `minItems`/`maxItems`. Strict: a property the schema does
//! not list is an error too, so a response field the document forgets is caught (schemathesis
//! accepts extra properties). Included by the tests that use it (`#[path]`).

use serde_json::Value;

/// The JSON schema of a documented response.
pub fn response_schema(doc: &Value, path: &str, method: &str, status: &str) -> Value {
    let schema = &doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "no JSON schema for {method} {path} {status}");
    schema.clone()
}

/// Every way `value` departs from `schema`, as `path: problem`.
pub fn violations(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(doc, schema, value, "$", &mut out);
    out
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            let target = &doc["components"]["schemas"][name];
            assert!(target.is_object(), "unresolved {r}");
            resolve(doc, target)
        }
        None => schema,
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

fn check(doc: &Value, schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    for (key, all) in [("oneOf", false), ("anyOf", false), ("allOf", true)] {
        if let Some(subs) = schema[key].as_array() {
            let results: Vec<Vec<String>> = subs.iter().map(|s| violations_at(doc, s, v, at)).collect();
            let ok = if all {
                results.iter().all(Vec::is_empty)
            } else {
                results.iter().any(Vec::is_empty)
            };
            if !ok {
                out.push(format!("{at}: matches no branch of {key}: {results:?}"));
            }
            return;
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() && !types.iter().any(|t| type_matches(t, v)) {
        out.push(format!("{at}: {v} is not of type {types:?}"));
        return;
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(v) {
            out.push(format!("{at}: {v} is not one of {options:?}"));
        }
    }
    if let Some(obj) = v.as_object() {
        let props = schema["properties"].as_object();
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !obj.contains_key(name) {
                out.push(format!("{at}: required `{name}` is missing"));
            }
        }
        for (k, child) in obj {
            let here = format!("{at}.{k}");
            match props.and_then(|p| p.get(k)) {
                Some(s) => check(doc, s, child, &here, out),
                None => match &schema["additionalProperties"] {
                    Value::Object(_) => check(doc, &schema["additionalProperties"], child, &here, out),
                    Value::Bool(true) => {}
                    _ if props.is_none() && types.contains(&"object") => {}
                    _ => out.push(format!("{here}: not in the schema")),
                },
            }
        }
    }
    if let Some(items) = v.as_array() {
        if let Some(min) = schema["minItems"].as_u64() {
            if (items.len() as u64) < min {
                out.push(format!("{at}: fewer than {min} items"));
            }
        }
        if let Some(max) = schema["maxItems"].as_u64() {
            if items.len() as u64 > max {
                out.push(format!("{at}: more than {max} items"));
            }
        }
        if schema["items"].is_object() {
            for (i, item) in items.iter().enumerate() {
                check(doc, &schema["items"], item, &format!("{at}[{i}]"), out);
            }
        }
    }
}

fn violations_at(doc: &Value, schema: &Value, v: &Value, at: &str) -> Vec<String> {
    let mut out = Vec::new();
    check(doc, schema, v, at, &mut out);
    out
}
