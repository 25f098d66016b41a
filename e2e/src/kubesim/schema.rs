//! A CRD's structural schema applied to its custom resources, as the apiserver applies it:
//! defaults filled in, unknown fields found (pruned, or refused under strict field
//! validation, kubectl's default), values checked (type, required, enum, bounds, lengths,
//! patterns) and x-kubernetes-validations CEL rules evaluated with `self` bound to the value.
//! Messages follow the apiserver's, so what a user reads is what a real cluster says.

use super::errors::Cause;
use serde_json::{json, Value};

/// Fills absent fields that have a default, top down (a defaulted object gets its own
/// fields' defaults too).
pub fn default(schema: &Value, v: &mut Value) {
    match v {
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            for (name, prop) in props.into_iter().flatten() {
                if !map.contains_key(name) {
                    if let Some(d) = prop.get("default") {
                        map.insert(name.clone(), d.clone());
                    }
                }
                if let Some(child) = map.get_mut(name) {
                    default(prop, child);
                }
            }
            if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (name, child) in map.iter_mut() {
                    if props.is_none_or(|p| !p.contains_key(name)) {
                        default(extra, child);
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                default(&schema["items"], item);
            }
        }
        _ => {}
    }
}

/// Where a CRD's schema is not structural (the apiserver refuses those CRDs): every object
/// field needs a type, unless it preserves unknown fields or is int-or-string.
pub fn structural(schema: &Value, path: &str, out: &mut Vec<Cause>) {
    let free = schema["x-kubernetes-preserve-unknown-fields"] == json!(true)
        || schema["x-kubernetes-int-or-string"] == json!(true);
    if schema.get("type").is_none() && !free {
        out.push(Cause {
            reason: "FieldValueRequired",
            field: format!("{path}.type"),
            value: None,
            detail: "must not be empty for specified object fields".into(),
        });
    }
    for (name, child) in schema["properties"].as_object().into_iter().flatten() {
        structural(child, &format!("{path}.properties[{name}]"), out);
    }
    if schema["items"].is_object() {
        structural(&schema["items"], &format!("{path}.items"), out);
    }
    if schema["additionalProperties"].is_object() {
        structural(&schema["additionalProperties"], &format!("{path}.additionalProperties"), out);
    }
}

/// The paths of fields the schema does not declare (metadata, apiVersion and kind at the top
/// are the apiserver's own), and the value with them removed.
pub fn prune(schema: &Value, v: &mut Value, path: &str, unknown: &mut Vec<String>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == json!(true) && schema.get("properties").is_none() {
        return;
    }
    match v {
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            let keep_unknown = schema["x-kubernetes-preserve-unknown-fields"] == json!(true);
            let names: Vec<String> = map.keys().cloned().collect();
            for name in names {
                let child_path = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                if path.is_empty() && ["metadata", "apiVersion", "kind"].contains(&name.as_str()) {
                    continue;
                }
                let child_schema = props.and_then(|p| p.get(&name)).or(extra);
                match child_schema {
                    Some(s) => prune(s, map.get_mut(&name).expect("a key listed"), &child_path, unknown),
                    None if keep_unknown => {}
                    None => {
                        unknown.push(child_path);
                        map.remove(&name);
                    }
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                prune(&schema["items"], item, &format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A bound as the apiserver prints it: 9, not 9.0.
fn go_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

fn invalid(path: &str, value: &Value, detail: String) -> Cause {
    Cause { reason: "FieldValueInvalid", field: path.to_string(), value: Some(value.clone()), detail }
}

/// Every way `v` breaks `schema`, at `path`.
pub fn validate(schema: &Value, v: &Value, path: &str, out: &mut Vec<Cause>) {
    let shown = if path.is_empty() { "<root>".to_string() } else { path.to_string() };
    if v.is_null() {
        if schema["nullable"] != json!(true) && schema.get("type").is_some() {
            let t = schema["type"].as_str().unwrap_or_default();
            out.push(Cause {
                reason: "FieldValueTypeInvalid",
                field: shown.clone(),
                value: Some(json!("null")),
                detail: format!("{shown} in body must be of type {t}: \"null\""),
            });
        }
        return;
    }
    let int_or_string = schema["x-kubernetes-int-or-string"] == json!(true);
    if let Some(t) = schema["type"].as_str() {
        let actual = type_name(v);
        let ok = actual == t
            || (t == "number" && actual == "integer")
            || (int_or_string && (actual == "integer" || actual == "string"));
        if !ok {
            out.push(Cause {
                reason: "FieldValueTypeInvalid",
                field: shown.clone(),
                value: Some(json!(actual)),
                detail: format!("{shown} in body must be of type {t}: \"{actual}\""),
            });
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(v) {
            let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
            out.push(Cause {
                reason: "FieldValueNotSupported",
                field: shown.clone(),
                value: Some(v.clone()),
                detail: format!("supported values: {}", list.join(", ")),
            });
        }
    }
    if let Some(x) = v.as_f64() {
        let exclusive = |k: &str| schema[k] == json!(true);
        if let Some(min) = schema["minimum"].as_f64() {
            if x < min || (exclusive("exclusiveMinimum") && x == min) {
                let op = if exclusive("exclusiveMinimum") { "greater than" } else { "greater than or equal to" };
                out.push(invalid(&shown, v, format!("{shown} in body should be {op} {}", go_number(min))));
            }
        }
        if let Some(max) = schema["maximum"].as_f64() {
            if x > max || (exclusive("exclusiveMaximum") && x == max) {
                let op = if exclusive("exclusiveMaximum") { "less than" } else { "less than or equal to" };
                out.push(invalid(&shown, v, format!("{shown} in body should be {op} {}", go_number(max))));
            }
        }
    }
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = schema["minLength"].as_u64().filter(|m| len < *m) {
            out.push(invalid(&shown, v, format!("{shown} in body should be at least {min} chars long")));
        }
        if let Some(max) = schema["maxLength"].as_u64().filter(|m| len > *m) {
            out.push(Cause {
                reason: "FieldValueTooLong",
                field: shown.clone(),
                value: None,
                detail: format!("may not be more than {max} bytes"),
            });
        }
        if let Some(p) = schema["pattern"].as_str() {
            if regex::Regex::new(p).is_ok_and(|re| !re.is_match(s)) {
                out.push(invalid(&shown, v, format!("{shown} in body should match '{p}'")));
            }
        }
    }
    match v {
        Value::Object(map) => {
            for req in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if !map.contains_key(req) {
                    let field = if path.is_empty() { req.to_string() } else { format!("{path}.{req}") };
                    out.push(Cause { reason: "FieldValueRequired", field, value: None, detail: String::new() });
                }
            }
            for (name, child) in map {
                let child_path = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                let s = schema["properties"]
                    .get(name)
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
                if let Some(s) = s {
                    validate(s, child, &child_path, out);
                }
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(min) = schema["minItems"].as_u64().filter(|m| n < *m) {
                out.push(invalid(&shown, v, format!("{shown} in body should have at least {min} items")));
            }
            if let Some(max) = schema["maxItems"].as_u64().filter(|m| n > *m) {
                out.push(Cause {
                    reason: "FieldValueTooMany",
                    field: shown.clone(),
                    value: None,
                    detail: format!("must have at most {max} items"),
                });
            }
            for (i, item) in items.iter().enumerate() {
                validate(&schema["items"], item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
    for rule in schema["x-kubernetes-validations"].as_array().into_iter().flatten() {
        if let Some(cause) = cel_rule(rule, v, &shown) {
            out.push(cause);
        }
    }
}

/// One x-kubernetes-validations rule on `v`: a Cause when it does not hold (or cannot run).
fn cel_rule(rule: &Value, v: &Value, path: &str) -> Option<Cause> {
    let src = rule["rule"].as_str()?;
    let field = match rule["fieldPath"].as_str() {
        Some(fp) => format!("{path}{fp}"),
        None => path.to_string(),
    };
    let fail = |detail: String| Cause {
        reason: "FieldValueInvalid",
        field: field.clone(),
        value: Some(json!(type_name(v))),
        detail,
    };
    let program = match cel_interpreter::Program::compile(src) {
        Ok(p) => p,
        Err(e) => return Some(fail(format!("compilation failed: {e}"))),
    };
    let mut ctx = cel_interpreter::Context::default();
    if let Err(e) = ctx.add_variable("self", Signed(v)) {
        return Some(fail(format!("self: {e}")));
    }
    match program.execute(&ctx) {
        Ok(cel_interpreter::Value::Bool(true)) => None,
        Ok(cel_interpreter::Value::Bool(false)) => {
            let message = rule["message"].as_str().map(str::to_string).unwrap_or_else(|| format!("failed rule: {src}"));
            Some(fail(message))
        }
        Ok(other) => Some(fail(format!("rule {src} gave {other:?}, not a bool"))),
        Err(e) => Some(fail(format!("rule {src}: {e}"))),
    }
}

/// JSON as CEL sees Kubernetes objects: whole numbers are `int` (signed), not `uint`.
struct Signed<'a>(&'a Value);

impl serde::Serialize for Signed<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Number(n) if n.is_i64() || n.is_u64() => match n.as_i64() {
                Some(i) => s.serialize_i64(i),
                None => self.0.serialize(s),
            },
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(&Signed(i))?;
                }
                seq.end()
            }
            Value::Object(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, &Signed(v))?;
                }
                map.end()
            }
            other => other.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["version"],
                    "properties": {
                        "replicas": {"type": "integer", "default": 3, "minimum": 1, "maximum": 9,
                            "x-kubernetes-validations": [{"rule": "self % 2 == 1", "message": "replicas must be odd"}]},
                        "version": {"type": "string", "pattern": "^v[0-9]+$"},
                        "topology": {"type": "string", "enum": ["stacked", "external"], "default": "external"},
                        "backup": {"type": "object", "properties": {"bucket": {"type": "string", "minLength": 3}}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    }
                },
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            }
        })
    }

    fn causes(v: &Value) -> Vec<String> {
        let mut out = Vec::new();
        validate(&schema(), v, "", &mut out);
        out.iter().map(|c| format!("{}: {}", c.field, c.detail)).collect()
    }

    #[test]
    fn defaults_fill_absent_fields_only() {
        let mut v = json!({"spec": {"version": "v1", "replicas": 5}});
        default(&schema(), &mut v);
        assert_eq!(v["spec"]["replicas"], 5);
        assert_eq!(v["spec"]["topology"], "external");
    }

    #[test]
    fn each_rule_is_checked_with_the_apiservers_words() {
        assert_eq!(causes(&json!({"spec": {"version": "v1", "replicas": 3}})), Vec::<String>::new());
        assert_eq!(causes(&json!({"spec": {"version": "v1", "replicas": 4}})), ["spec.replicas: replicas must be odd"]);
        assert_eq!(
            causes(&json!({"spec": {"version": "v1", "replicas": 11}})),
            ["spec.replicas: spec.replicas in body should be less than or equal to 9"]
        );
        assert_eq!(causes(&json!({"spec": {"replicas": 1}})), ["spec.version: "]);
        assert_eq!(
            causes(&json!({"spec": {"version": "1.0"}})),
            ["spec.version: spec.version in body should match '^v[0-9]+$'"]
        );
        assert_eq!(
            causes(&json!({"spec": {"version": "v1", "replicas": "three"}})),
            ["spec.replicas: spec.replicas in body must be of type integer: \"string\""]
        );
        assert_eq!(
            causes(&json!({"spec": {"version": "v1", "topology": "x"}})),
            ["spec.topology: supported values: \"stacked\", \"external\""]
        );
        assert_eq!(causes(&json!({"spec": {"version": "v1", "labels": {"a": 1}}})).len(), 1);
        assert_eq!(causes(&json!({"spec": {"version": "v1", "backup": {"bucket": "b"}}})).len(), 1);
    }

    #[test]
    fn unknown_fields_are_found_and_pruned_but_preserved_where_the_schema_says() {
        let mut v = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"version": "v1", "colour": "red", "backup": {"bucket": "abc", "extra": 1}}, "status": {"anything": 1}});
        let mut unknown = Vec::new();
        prune(&schema(), &mut v, "", &mut unknown);
        assert_eq!(unknown, ["spec.backup.extra", "spec.colour"]);
        assert!(v["spec"].get("colour").is_none());
        assert_eq!(v["status"]["anything"], 1);
        assert_eq!(v["metadata"]["name"], "a");
    }
}
