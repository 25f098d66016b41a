//! The Table form `kubectl get` asks for: columns of the kind (the ones kubectl users know for
//! pods, services, claims, namespaces and events; a CRD's additionalPrinterColumns), ages
//! written as the apiserver writes them.

use super::resources::Resource;
use serde_json::{json, Value};

/// A duration as Kubernetes shows ages: 45s, 3m12s, 15m, 5h3m, 30h, 3d4h, 20d, 1y30d.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y{}d", d / 365, d % 365)
    }
}

fn parse_time(t: &str) -> Option<i64> {
    // YYYY-MM-DDTHH:MM:SSZ
    let b = t.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let n = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, s) = (n(0..4)?, n(5..7)?, n(8..10)?, n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from civil (inverse of clock::rfc3339).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

pub fn age(obj: &Value) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    match obj["metadata"]["creationTimestamp"].as_str().and_then(parse_time) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

/// A JSONPath as printer columns use them: `.a.b`, `.a[0]`, `.a[?(@.k=="v")].b`.
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    let mut rest = path.trim_start_matches('{').trim_end_matches('}');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            cur = cur.get(&r[..end])?;
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (k, v) = filter.split_once("==")?;
                let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
                cur = cur.as_array()?.iter().find(|x| x[k.trim()].as_str() == Some(v))?;
            } else {
                cur = cur.get(inner.parse::<usize>().ok()?)?;
            }
        } else {
            return None;
        }
    }
    Some(cur)
}

fn cell(v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => json!("<none>"),
        Some(v) => v.clone(),
    }
}

fn column(name: &str, kind: &str, priority: u8) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": kind, "format": format, "description": name, "priority": priority})
}

fn pod_cells(p: &Value) -> Vec<Value> {
    let statuses = p["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
    let total = p["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = statuses.iter().filter(|s| s["ready"] == json!(true)).count();
    let restarts: i64 = statuses.iter().filter_map(|s| s["restartCount"].as_i64()).sum();
    let mut status = p["status"]["phase"].as_str().unwrap_or("Pending").to_string();
    for s in &statuses {
        if let Some(reason) = s["state"]["waiting"]["reason"].as_str().or(s["state"]["terminated"]["reason"].as_str()) {
            status = reason.to_string();
        }
    }
    if !p["metadata"]["deletionTimestamp"].is_null() {
        status = "Terminating".into();
    }
    vec![
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts),
        json!(age(p)),
        cell(p["status"].get("podIP")),
        cell(p["spec"].get("nodeName")),
    ]
}

/// The Name column, then string columns of these names.
fn named(names: &[&str]) -> Vec<Value> {
    let mut out = vec![column("Name", "string", 0)];
    out.extend(names.iter().map(|n| column(n, "string", 0)));
    out
}

/// The cells of one row after the name.
type Cells = Box<dyn Fn(&Value) -> Vec<Value>>;

fn columns(r: &Resource) -> (Vec<Value>, Cells) {
    let name = column("Name", "string", 0);
    match (r.group.as_str(), r.plural.as_str()) {
        ("", "pods") => (
            vec![
                name,
                column("Ready", "string", 0),
                column("Status", "string", 0),
                column("Restarts", "integer", 0),
                column("Age", "string", 0),
                column("IP", "string", 1),
                column("Node", "string", 1),
            ],
            Box::new(pod_cells),
        ),
        ("", "services") => (
            named(&["Type", "Cluster-IP", "External-IP", "Port(s)", "Age"]),
            Box::new(|s: &Value| {
                let ports: Vec<String> = s["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
                    .collect();
                let ports = if ports.is_empty() { "<none>".to_string() } else { ports.join(",") };
                vec![
                    cell(s["spec"].get("type")),
                    cell(s["spec"].get("clusterIP")),
                    json!("<none>"),
                    json!(ports),
                    json!(age(s)),
                ]
            }),
        ),
        ("", "persistentvolumeclaims") => (
            named(&["Status", "Volume", "Capacity", "Access Modes", "StorageClass", "Age"]),
            Box::new(|c: &Value| {
                let modes: Vec<&str> = c["spec"]["accessModes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|m| match m {
                        "ReadWriteOnce" => "RWO",
                        "ReadOnlyMany" => "ROX",
                        "ReadWriteMany" => "RWX",
                        "ReadWriteOncePod" => "RWOP",
                        o => o,
                    })
                    .collect();
                let phase = if c["metadata"]["deletionTimestamp"].is_null() {
                    cell(c["status"].get("phase"))
                } else {
                    json!("Terminating")
                };
                vec![
                    phase,
                    cell(c["spec"].get("volumeName")),
                    cell(c["status"]["capacity"].get("storage")),
                    json!(modes.join(",")),
                    cell(c["spec"].get("storageClassName")),
                    json!(age(c)),
                ]
            }),
        ),
        ("", "secrets") => (
            vec![name, column("Type", "string", 0), column("Data", "integer", 0), column("Age", "string", 0)],
            Box::new(|s: &Value| {
                vec![cell(s.get("type")), json!(s["data"].as_object().map_or(0, |d| d.len())), json!(age(s))]
            }),
        ),
        ("", "configmaps") => (
            vec![name, column("Data", "integer", 0), column("Age", "string", 0)],
            Box::new(|c: &Value| {
                let n =
                    c["data"].as_object().map_or(0, |d| d.len()) + c["binaryData"].as_object().map_or(0, |d| d.len());
                vec![json!(n), json!(age(c))]
            }),
        ),
        ("", "namespaces") => {
            (named(&["Status", "Age"]), Box::new(|n: &Value| vec![cell(n["status"].get("phase")), json!(age(n))]))
        }
        _ if !r.printer_columns.is_empty() => {
            let cols = r.printer_columns.clone();
            let mut defs = vec![name];
            defs.extend(cols.iter().map(|c| {
                let kind = c["type"].as_str().unwrap_or("string");
                let kind = if kind == "date" { "string" } else { kind };
                column(c["name"].as_str().unwrap_or_default(), kind, c["priority"].as_u64().unwrap_or(0) as u8)
            }));
            let has_age = cols.iter().any(|c| c["jsonPath"] == json!(".metadata.creationTimestamp"));
            if !has_age {
                defs.push(column("Age", "string", 0));
            }
            (
                defs,
                Box::new(move |o: &Value| {
                    let mut cells: Vec<Value> = cols
                        .iter()
                        .map(|c| {
                            let path = c["jsonPath"].as_str().unwrap_or_default();
                            if c["type"] == json!("date") {
                                return json!(json_path(o, path).and_then(Value::as_str).and_then(parse_time).map_or(
                                    "<unknown>".to_string(),
                                    |t| {
                                        let now = std::time::SystemTime::now()
                                            .duration_since(std::time::UNIX_EPOCH)
                                            .unwrap_or_default()
                                            .as_secs() as i64;
                                        human_duration(now - t)
                                    }
                                ));
                            }
                            cell(json_path(o, path))
                        })
                        .collect();
                    if !has_age {
                        cells.push(json!(age(o)));
                    }
                    cells
                }),
            )
        }
        _ => (named(&["Age"]), Box::new(|o: &Value| vec![json!(age(o))])),
    }
}

/// `objects` as a meta.k8s.io/v1 Table; rows carry the object (`full`) or its metadata.
pub fn render(r: &Resource, objects: &[Value], rv: u64, full: bool) -> Value {
    let (defs, cells) = columns(r);
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut c = vec![json!(o["metadata"]["name"].as_str().unwrap_or_default())];
            c.extend(cells(o));
            let object = if full {
                o.clone()
            } else {
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})
            };
            json!({"cells": c, "object": object})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_kubectl_shows_them() {
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(192), "3m12s");
        assert_eq!(human_duration(900), "15m");
        assert_eq!(human_duration(5 * 3600 + 180), "5h3m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86_400 + 4 * 3600), "3d4h");
        assert_eq!(parse_time("2026-11-21T13:00:21Z"), Some(1_795_266_021));
    }

    #[test]
    fn printer_column_paths() {
        let o = json!({"spec": {"replicas": 3}, "status": {"conditions": [{"type": "Ready", "status": "True"}], "members": [{"name": "a"}]}});
        assert_eq!(json_path(&o, ".spec.replicas"), Some(&json!(3)));
        assert_eq!(json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"), Some(&json!("True")));
        assert_eq!(json_path(&o, ".status.members[0].name"), Some(&json!("a")));
        assert_eq!(json_path(&o, ".status.missing"), None);
    }
}
