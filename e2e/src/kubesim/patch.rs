//! The patch types the apiserver takes (but server-side apply, see `apply`): JSON merge
//! patch (RFC 7386), JSON patch (RFC 6902, `test` included) and strategic merge patch, whose
//! list semantics come from the Kubernetes types: lists of named things merge by their key,
//! `finalizers` merge as a set, other lists are replaced; `$patch: delete|replace`,
//! `$deleteFromPrimitiveList/` and `$setElementOrder/` directives (the order is not kept:
//! merged elements keep their place, new ones go last).

use super::errors::ApiError;
use serde_json::{Map, Value};

pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// A JSON pointer's tokens (`~1` is `/`, `~0` is `~`).
fn pointer(path: &str) -> Result<Vec<String>, ApiError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path.strip_prefix('/').ok_or_else(|| ApiError::bad_request(format!("invalid JSON pointer {path:?}")))?;
    Ok(rest.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect())
}

fn parent<'a>(doc: &'a mut Value, tokens: &[String], path: &str) -> Result<&'a mut Value, ApiError> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "the server rejected our request due to an error in our request: doc is missing path: \"{path}\""
            ))
        })?;
    }
    Ok(cur)
}

fn get(doc: &Value, path: &str) -> Result<Value, ApiError> {
    doc.pointer(path).cloned().ok_or_else(|| {
        ApiError::bad_request(format!(
            "the server rejected our request due to an error in our request: doc is missing path: \"{path}\""
        ))
    })
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let tokens = pointer(path)?;
    let (last, init) = tokens.split_last().ok_or_else(|| ApiError::bad_request("cannot remove the whole document"))?;
    let missing = || {
        ApiError::bad_request(format!(
            "the server rejected our request due to an error in our request: doc is missing path: \"{path}\""
        ))
    };
    match parent(doc, init, path)? {
        Value::Object(m) => m.remove(last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(missing())
            }
        }
        _ => Err(missing()),
    }
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    let tokens = pointer(path)?;
    let Some((last, init)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent(doc, init, path)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let i = if last == "-" { a.len() } else { last.parse().unwrap_or(usize::MAX) };
            if i > a.len() {
                return Err(ApiError::bad_request(format!("the server rejected our request due to an error in our request: insert index out of bounds: \"{path}\"")));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err(ApiError::bad_request(format!(
            "the server rejected our request due to an error in our request: doc is missing path: \"{path}\""
        ))),
    }
}

/// RFC 6902. A failed `test` is a 422 as from the apiserver.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), ApiError> {
    let ops = ops.as_array().ok_or_else(|| ApiError::bad_request("a JSON patch is a list of operations"))?;
    for op in ops {
        let path = op["path"].as_str().unwrap_or_default();
        let from = op["from"].as_str().unwrap_or_default();
        match op["op"].as_str().unwrap_or_default() {
            "add" => add(doc, path, op["value"].clone())?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => {
                remove(doc, path)?;
                add(doc, path, op["value"].clone())?;
            }
            "move" => {
                let v = remove(doc, from)?;
                add(doc, path, v)?;
            }
            "copy" => {
                let v = get(doc, from)?;
                add(doc, path, v)?;
            }
            "test" => {
                // As the apiserver's JSON patch library: a missing path tests equal to null
                // (kube-rs's finalizer helper relies on it when no finalizer is set yet).
                let current = doc.pointer(path).cloned().unwrap_or(Value::Null);
                if current != op["value"] {
                    return Err(ApiError {
                        code: 422,
                        reason: "Invalid",
                        message: format!("the server rejected our request due to an error in our request: testing value {path} failed: test failed"),
                        details: Value::Null,
                    });
                }
            }
            other => return Err(ApiError::bad_request(format!("Unexpected kind: {other}"))),
        }
    }
    Ok(())
}

/// The key a list of this name merges by, for the Kubernetes types kube-sim serves.
pub fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "ephemeralContainers" | "env" | "volumes" | "imagePullSecrets" => {
            Some("name")
        }
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ownerReferences" => Some("uid"),
        "conditions" => Some("type"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        // A container's ports merge by containerPort, a Service's by port.
        "ports" if items.iter().any(|p| p.get("containerPort").is_some()) => Some("containerPort"),
        "ports" => Some("port"),
        _ => None,
    }
}

/// Primitive lists that merge as sets.
pub fn set_list(field: &str) -> bool {
    field == "finalizers"
}

pub fn strategic(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut v = patch.clone();
        v.as_object_mut().map(|m| m.remove("$patch"));
        *target = v;
        return Ok(());
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    for (k, v) in p {
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" || k == "$patch" {
            continue;
        }
        let t = target.as_object_mut().expect("an object");
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(gone)) = (t.get_mut(field), v.as_array()) {
                list.retain(|x| !gone.contains(x));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match v {
            Value::Array(items) => {
                let current = t.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                merge_list(k, current, items)?;
            }
            Value::Object(_) => strategic(t.entry(k.clone()).or_insert(Value::Null), v)?,
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}

fn merge_list(field: &str, current: &mut Value, items: &[Value]) -> Result<(), ApiError> {
    if !current.is_array() {
        *current = Value::Array(Vec::new());
    }
    let list = current.as_array_mut().expect("an array");
    if set_list(field) {
        for x in items {
            if !list.contains(x) {
                list.push(x.clone());
            }
        }
        return Ok(());
    }
    let Some(key) = merge_key(field, items) else {
        *list = items.to_vec();
        return Ok(());
    };
    if items.iter().any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace")) {
        *list = items.iter().filter(|i| i.get("$patch").is_none()).cloned().collect();
        return Ok(());
    }
    for item in items {
        let id = item
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::bad_request(format!("map: {item} does not contain declared merge key: {key}")))?;
        let pos = list.iter().position(|x| x.get(key) == Some(&id));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                list.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic(&mut list[i], item)?,
            (None, false) => {
                let mut fresh = Value::Null;
                strategic(&mut fresh, item)?;
                list.push(fresh);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_sets_and_removes() {
        let mut d = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge(&mut d, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(d, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn json_patch_with_test() {
        let mut d = json!({"spec": {"replicas": 3, "l": ["a"]}});
        let ops = json!([
            {"op": "test", "path": "/spec/replicas", "value": 3},
            {"op": "replace", "path": "/spec/replicas", "value": 5},
            {"op": "add", "path": "/spec/l/-", "value": "b"},
            {"op": "copy", "from": "/spec/replicas", "path": "/spec/copy"},
            {"op": "move", "from": "/spec/copy", "path": "/spec/moved"},
            {"op": "remove", "path": "/spec/l/0"},
        ]);
        json_patch(&mut d, &ops).unwrap();
        assert_eq!(d, json!({"spec": {"replicas": 5, "l": ["b"], "moved": 5}}));
        let e = json_patch(&mut d, &json!([{"op": "test", "path": "/spec/replicas", "value": 3}])).unwrap_err();
        assert_eq!(e.code, 422);
        json_patch(&mut d, &json!([{"op": "test", "path": "/metadata/finalizers", "value": null}, {"op": "add", "path": "/metadata", "value": {"finalizers": ["f"]}}])).unwrap();
        assert_eq!(d["metadata"]["finalizers"], json!(["f"]));
        assert!(json_patch(&mut d, &json!([{"op": "test", "path": "/spec/missing", "value": 1}])).is_err());
        let e = json_patch(&mut d, &json!([{"op": "remove", "path": "/spec/nothing"}])).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(d["spec"]["replicas"], 5, "a failed patch is not half applied by the caller (it patches a copy)");
    }

    #[test]
    fn strategic_merge_merges_named_lists_and_sets() {
        let mut pod = json!({"metadata": {"finalizers": ["a"]}, "spec": {"containers": [
            {"name": "c1", "image": "x:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "c2", "image": "y:1"}
        ], "tolerations": [{"key": "k"}]}});
        let patch = json!({"metadata": {"finalizers": ["b", "a"]}, "spec": {
            "$setElementOrder/containers": [{"name": "c1"}, {"name": "c2"}],
            "containers": [{"name": "c1", "env": [{"name": "B", "value": "2"}]}, {"name": "c2", "$patch": "delete"}, {"name": "c3", "image": "z"}],
            "tolerations": [{"key": "other"}]}});
        strategic(&mut pod, &patch).unwrap();
        assert_eq!(pod["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(
            pod["spec"]["containers"],
            json!([
                {"name": "c1", "image": "x:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "c3", "image": "z"}
            ])
        );
        assert_eq!(pod["spec"]["tolerations"], json!([{"key": "other"}]), "lists without a key are replaced");
        strategic(&mut pod, &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})).unwrap();
        assert_eq!(pod["metadata"]["finalizers"], json!(["b"]));
    }
}
