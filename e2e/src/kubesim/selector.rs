//! Label selectors (`a=b,c!=d,e in (f,g),h notin (i),j,!k`) and field selectors
//! (`metadata.name=x,involvedObject.uid!=y`: any dotted path to a scalar).

use super::errors::ApiError;
use serde_json::Value;

#[derive(Debug, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Debug, Default)]
pub struct Selector {
    reqs: Vec<Req>,
    /// Field selectors read paths in the object; label selectors read metadata.labels.
    fields: bool,
}

/// Splits on commas outside parentheses.
fn terms(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter().map(str::trim).filter(|t| !t.is_empty()).collect()
}

fn set(s: &str) -> Result<Vec<String>, ApiError> {
    let inner = s.trim().strip_prefix('(').and_then(|s| s.strip_suffix(')'));
    let inner = inner
        .ok_or_else(|| ApiError::bad_request(format!("unable to parse requirement: found '{s}', expected: '('")))?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
}

/// `k!=v`, `k==v` or `k=v`: the requirements both kinds of selector share.
fn equality(t: &str) -> Option<Req> {
    if let Some((k, v)) = t.split_once("!=") {
        Some(Req::NotEq(k.trim().into(), v.trim().into()))
    } else {
        let (k, v) = t.split_once("==").or_else(|| t.split_once('='))?;
        Some(Req::Eq(k.trim().into(), v.trim().into()))
    }
}

impl Selector {
    pub fn labels(s: &str) -> Result<Selector, ApiError> {
        let mut reqs = Vec::new();
        for t in terms(s) {
            let req = if let Some(req) = equality(t) {
                req
            } else if let Some((k, v)) = t.split_once(" notin ") {
                Req::NotIn(k.trim().into(), set(v)?)
            } else if let Some((k, v)) = t.split_once(" in ") {
                Req::In(k.trim().into(), set(v)?)
            } else if let Some(k) = t.strip_prefix('!') {
                Req::NotExists(k.trim().into())
            } else if t.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) {
                Req::Exists(t.into())
            } else {
                return Err(ApiError::bad_request(format!("unable to parse requirement: {t:?}")));
            };
            reqs.push(req);
        }
        Ok(Selector { reqs, fields: false })
    }

    pub fn fields(s: &str) -> Result<Selector, ApiError> {
        let mut reqs = Vec::new();
        for t in terms(s) {
            let req = equality(t)
                .ok_or_else(|| ApiError::bad_request(format!("invalid selector: '{t}'; can't understand '{t}'")))?;
            reqs.push(req);
        }
        Ok(Selector { reqs, fields: true })
    }

    fn value(&self, obj: &Value, key: &str) -> Option<String> {
        let v = if self.fields {
            key.split('.').try_fold(obj, |v, part| v.get(part))?
        } else {
            obj["metadata"]["labels"].get(key)?
        };
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|r| match r {
            Req::Eq(k, v) => {
                self.value(obj, k).as_deref() == Some(v)
                    || (self.fields && v.is_empty() && self.value(obj, k).is_none())
            }
            Req::NotEq(k, v) => self.value(obj, k).as_deref() != Some(v),
            Req::In(k, vs) => self.value(obj, k).is_some_and(|x| vs.contains(&x)),
            Req::NotIn(k, vs) => self.value(obj, k).is_none_or(|x| !vs.contains(&x)),
            Req::Exists(k) => self.value(obj, k).is_some(),
            Req::NotExists(k) => self.value(obj, k).is_none(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_in_every_form() {
        let obj = json!({"metadata": {"name": "p", "labels": {"app": "cairn", "tier": "db"}}});
        let yes = [
            "app=cairn",
            "app==cairn",
            "app!=x",
            "app in (x, cairn)",
            "app notin (x)",
            "tier",
            "!gone",
            "app=cairn,tier=db",
            "",
        ];
        for s in yes {
            assert!(Selector::labels(s).unwrap().matches(&obj), "{s}");
        }
        let no = ["app=x", "app!=cairn", "app in (x,y)", "app notin (cairn)", "gone", "!tier", "app=cairn,tier=web"];
        for s in no {
            assert!(!Selector::labels(s).unwrap().matches(&obj), "{s}");
        }
        assert!(Selector::labels("app in x").is_err());
    }

    #[test]
    fn field_selectors_read_paths() {
        let obj =
            json!({"metadata": {"name": "p", "namespace": "ns"}, "involvedObject": {"uid": "u1"}, "spec": {"n": 3}});
        assert!(Selector::fields("metadata.name=p,metadata.namespace=ns").unwrap().matches(&obj));
        assert!(Selector::fields("involvedObject.uid=u1,spec.n=3").unwrap().matches(&obj));
        assert!(!Selector::fields("metadata.name!=p").unwrap().matches(&obj));
        assert!(Selector::fields("spec.nodeName=").unwrap().matches(&obj), "an absent field equals the empty string");
    }
}
