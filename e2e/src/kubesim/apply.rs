//! Server-side apply and field ownership: metadata.managedFields in the FieldsV1 form
//! (`f:` fields, `k:` items of keyed lists, `v:` members of sets, `.` for an item itself).
//! An apply sets the fields its manager names; a field another manager owns with another
//! value is a conflict (409) unless forced, which takes the field over; fields the manager
//! applied before and leaves out now are removed, unless another manager owns them too.
//! Updates (PUT, other patches) with a fieldManager take over the fields they change.

use super::clock;
use super::errors::ApiError;
use super::objects::{self, Part};
use super::patch::{merge_key, set_list, strategic};
use super::resources::Resource;
use super::store::{Key, Txn};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

type Path = Vec<String>;

/// Metadata fields a manager can own.
const OWNED_METADATA: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

/// The leaf paths (and item markers) an object sets.
fn paths(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>, top: bool) {
    let Value::Object(m) = v else {
        out.insert(prefix.clone());
        return;
    };
    if m.is_empty() && !top {
        out.insert(prefix.clone());
    }
    for (k, child) in m {
        if top && (k == "apiVersion" || k == "kind" || k == "status") {
            continue;
        }
        if top && k == "metadata" {
            prefix.push("f:metadata".into());
            for f in OWNED_METADATA {
                if let Some(c) = child.get(f) {
                    prefix.push(format!("f:{f}"));
                    field(f, c, prefix, out);
                    prefix.pop();
                }
            }
            prefix.pop();
            continue;
        }
        prefix.push(format!("f:{k}"));
        field(k, child, prefix, out);
        prefix.pop();
    }
}

fn item_key(key: &str, item: &Value) -> String {
    format!("k:{}", json!({key: item[key]}))
}

fn field(name: &str, v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    match v {
        Value::Array(items) if set_list(name) => {
            for i in items {
                prefix.push(format!("v:{i}"));
                out.insert(prefix.clone());
                prefix.pop();
            }
        }
        Value::Array(items) => match merge_key(name, items) {
            Some(key) if items.iter().all(|i| i.get(key).is_some()) => {
                for i in items {
                    prefix.push(item_key(key, i));
                    let mut marker = prefix.clone();
                    marker.push(".".into());
                    out.insert(marker);
                    paths(i, prefix, out, false);
                    prefix.pop();
                }
            }
            _ => {
                out.insert(prefix.clone());
            }
        },
        _ => paths(v, prefix, out, false),
    }
}

fn fields_of(obj: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    paths(obj, &mut Vec::new(), &mut out, true);
    out
}

/// The value a path reaches (for a `.` marker, the item itself).
fn at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for p in path {
        if p == "." {
            return Some(cur);
        }
        if let Some(f) = p.strip_prefix("f:") {
            cur = cur.get(f)?;
        } else if let Some(k) = p.strip_prefix("k:") {
            let want: Map<String, Value> = serde_json::from_str(k).ok()?;
            cur = cur.as_array()?.iter().find(|i| want.iter().all(|(wk, wv)| &i[wk] == wv))?;
        } else if let Some(v) = p.strip_prefix("v:") {
            let want: Value = serde_json::from_str(v).ok()?;
            return cur.as_array()?.iter().find(|i| **i == want);
        }
    }
    Some(cur)
}

fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, init)) = path.split_last() else { return };
    if last == "." {
        // The item itself: remove it from its list.
        if let Some((item, list_path)) = init.split_last() {
            let want: Map<String, Value> =
                item.strip_prefix("k:").and_then(|k| serde_json::from_str(k).ok()).unwrap_or_default();
            if let Some(Value::Array(list)) = at_mut(obj, list_path) {
                list.retain(|i| !want.iter().all(|(wk, wv)| &i[wk] == wv));
            }
        }
        return;
    }
    match at_mut(obj, init) {
        Some(Value::Object(m)) => {
            if let Some(f) = last.strip_prefix("f:") {
                m.remove(f);
            }
        }
        Some(Value::Array(list)) => {
            if let Some(v) = last.strip_prefix("v:").and_then(|v| serde_json::from_str::<Value>(v).ok()) {
                list.retain(|i| *i != v);
            }
        }
        _ => {}
    }
}

fn at_mut<'a>(obj: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = obj;
    for p in path {
        if let Some(f) = p.strip_prefix("f:") {
            cur = cur.get_mut(f)?;
        } else if let Some(k) = p.strip_prefix("k:") {
            let want: Map<String, Value> = serde_json::from_str(k).ok()?;
            cur = cur.as_array_mut()?.iter_mut().find(|i| want.iter().all(|(wk, wv)| &i[wk] == wv))?;
        }
    }
    Some(cur)
}

/// The FieldsV1 form of a set of paths.
fn to_fields_v1(set: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for p in path {
            cur = cur.entry(p.clone()).or_insert_with(|| json!({})).as_object_mut().expect("an object");
        }
    }
    Value::Object(root)
}

fn from_fields_v1(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    let Some(m) = v.as_object() else { return };
    if m.is_empty() {
        out.insert(prefix.clone());
    }
    for (k, child) in m {
        prefix.push(k.clone());
        from_fields_v1(child, prefix, out);
        prefix.pop();
    }
}

struct Entry {
    manager: String,
    operation: String,
    fields: BTreeSet<Path>,
    raw: Value,
}

fn entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let mut fields = BTreeSet::new();
            from_fields_v1(&e["fieldsV1"], &mut Vec::new(), &mut fields);
            Entry {
                manager: e["manager"].as_str().unwrap_or_default().into(),
                operation: e["operation"].as_str().unwrap_or_default().into(),
                fields,
                raw: e.clone(),
            }
        })
        .collect()
}

fn store_entries(obj: &mut Value, list: Vec<Entry>, api_version: &str) {
    let out: Vec<Value> = list
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut raw = if e.raw.is_object() { e.raw } else { json!({}) };
            raw["manager"] = json!(e.manager);
            raw["operation"] = json!(e.operation);
            raw["apiVersion"] = json!(raw["apiVersion"].as_str().unwrap_or(api_version));
            raw["time"] = json!(clock::now());
            raw["fieldsType"] = json!("FieldsV1");
            raw["fieldsV1"] = to_fields_v1(&e.fields);
            raw
        })
        .collect();
    if out.is_empty() {
        obj["metadata"].as_object_mut().map(|m| m.remove("managedFields"));
    } else {
        obj["metadata"]["managedFields"] = Value::Array(out);
    }
}

/// Records that `manager` (by a PUT or a non-apply patch) set the fields that differ from `old`.
pub fn record_update(new: &mut Value, old: Option<&Value>, manager: &str, operation: &str) {
    let api_version = new["apiVersion"].as_str().unwrap_or("v1").to_string();
    let base = old.unwrap_or(new);
    let mut list = entries(base);
    let changed: BTreeSet<Path> =
        fields_of(new).into_iter().filter(|p| old.is_none_or(|o| at(o, p) != at(new, p))).collect();
    if changed.is_empty() {
        new["metadata"]["managedFields"] = base["metadata"]["managedFields"].clone();
        return;
    }
    for e in list.iter_mut() {
        e.fields.retain(|p| !changed.contains(p));
    }
    match list.iter_mut().find(|e| e.manager == manager && e.operation == operation) {
        Some(e) => e.fields.extend(changed),
        None => {
            list.push(Entry { manager: manager.into(), operation: operation.into(), fields: changed, raw: Value::Null })
        }
    }
    store_entries(new, list, &api_version);
}

fn conflict_error(r: &Resource, name: &str, conflicts: &[(String, Path)]) -> ApiError {
    let show = |p: &Path| -> String {
        p.iter()
            .filter(|s| *s != ".")
            .map(|s| match s.strip_prefix("f:") {
                Some(f) => format!(".{f}"),
                None => format!("[{}]", &s[2..]),
            })
            .collect()
    };
    let v = r.api_version();
    let message = if conflicts.len() == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with \"{}\" using {v}: {}",
            conflicts[0].0,
            show(&conflicts[0].1)
        )
    } else {
        let lines: Vec<String> =
            conflicts.iter().map(|(m, p)| format!("- conflict with \"{m}\" using {v}: {}", show(p))).collect();
        format!("Apply failed with {} conflicts:\n{}", conflicts.len(), lines.join("\n"))
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\" using {v}"), "field": show(p)}))
        .collect();
    ApiError {
        code: 409,
        reason: "Conflict",
        message,
        details: json!({"name": name, "group": r.group, "kind": r.plural, "causes": causes}),
    }
}

/// Server-side apply of `applied` by `manager` to the object at `key` (created if absent).
#[allow(clippy::too_many_arguments)]
pub fn apply(
    t: &mut Txn<'_>,
    r: &Resource,
    key: &Key,
    namespace: &str,
    applied: Value,
    manager: &str,
    force: bool,
    part: Part,
) -> Result<Value, ApiError> {
    if applied["metadata"]["name"].as_str().is_some_and(|n| n != key.2) {
        return Err(ApiError::bad_request("the name of the object does not match the name on the URL"));
    }
    let mine = fields_of(&applied);
    let Some(current) = t.get(key) else {
        let mut obj = applied.clone();
        obj["metadata"]["name"] = json!(key.2);
        let list = vec![Entry { manager: manager.into(), operation: "Apply".into(), fields: mine, raw: Value::Null }];
        store_entries(&mut obj, list, &r.api_version());
        return objects::create(t, r, namespace, obj);
    };
    let mut list = entries(&current);
    let mut conflicts = Vec::new();
    for e in list.iter_mut().filter(|e| e.manager != manager) {
        let contested: Vec<Path> =
            mine.iter().filter(|p| e.fields.contains(*p) && at(&current, p) != at(&applied, p)).cloned().collect();
        for p in contested {
            if force {
                e.fields.remove(&p);
            } else {
                conflicts.push((e.manager.clone(), p));
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflict_error(r, &key.2, &conflicts));
    }
    let before: BTreeSet<Path> = list
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply")
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut new = current.clone();
    let mut body = applied.clone();
    if let Some(m) = body.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|k, _| OWNED_METADATA.contains(&k.as_str()));
    }
    strategic(&mut new, &body)?;
    // What this manager gave up, unless someone else still holds it.
    for p in before.difference(&mine) {
        if !list.iter().any(|e| e.manager != manager && e.fields.contains(p)) {
            remove_at(&mut new, p);
        }
    }
    list.retain(|e| !(e.manager == manager && e.operation == "Apply"));
    list.push(Entry { manager: manager.into(), operation: "Apply".into(), fields: mine, raw: Value::Null });
    store_entries(&mut new, list, &r.api_version());
    new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    objects::update(t, r, key, new, part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_an_object_in_fieldsv1_form() {
        let obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1"}, "finalizers": ["f"]},
            "spec": {"containers": [{"name": "c", "image": "i"}], "tolerations": [{"key": "k"}]}});
        let v1 = to_fields_v1(&fields_of(&obj));
        assert_eq!(
            v1,
            json!({
                "f:metadata": {"f:labels": {"f:a": {}}, "f:finalizers": {"v:\"f\"": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}, "f:tolerations": {}}
            })
        );
        let mut back = BTreeSet::new();
        from_fields_v1(&v1, &mut Vec::new(), &mut back);
        assert_eq!(back, fields_of(&obj));
    }

    #[test]
    fn updates_take_over_the_fields_they_change() {
        let old =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let mut new = old.clone();
        record_update(&mut new, None, "first", "Update");
        let mut next = new.clone();
        next["data"]["a"] = json!("9");
        record_update(&mut next, Some(&new), "second", "Update");
        let e = entries(&next);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].fields, BTreeSet::from([vec!["f:data".to_string(), "f:b".to_string()]]));
        assert_eq!(e[1].manager, "second");
        assert_eq!(e[1].fields, BTreeSet::from([vec!["f:data".to_string(), "f:a".to_string()]]));
    }
}
