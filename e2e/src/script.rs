//! etcdctl scripts run side by side against etcd and Cairn.
//!
//! Format: one etcdctl command per line (shell quoting), `#` comments. A line ending in `<<`
//! takes the following lines, up to a line `>>`, as its standard input (for `txn`). A line
//! ending in `#=> NAME` captures the lease id it prints as NAME; `$NAME` in later lines is
//! that id (each server's own), and outputs show the name instead of the id. A line starting
//! with `@` runs a command that does not exit by itself (watch) until its output is quiet; its
//! standard input, if any, stays open until then.

use crate::harness::{etcdctl, etcdctl_until_quiet, Kind, Member};
use regex::Regex;
use std::time::Duration;

pub struct Step {
    pub line: String,
    pub args: Vec<String>,
    pub stdin: Option<String>,
    pub capture: Option<String>,
    pub until_quiet: bool,
}

pub fn parse(script: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut lines = script.lines();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (t, until_quiet) = match t.strip_prefix('@') {
            Some(rest) => (rest.trim(), true),
            None => (t, false),
        };
        let (t, capture) = match t.split_once("#=>") {
            Some((cmd, name)) => (cmd.trim(), Some(name.trim().to_string())),
            None => (t, None),
        };
        let (cmd, stdin) = match t.strip_suffix("<<") {
            Some(cmd) => {
                let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != ">>").collect();
                (cmd.trim(), Some(body.join("\n") + "\n"))
            }
            None => (t, None),
        };
        let args = shell_words::split(cmd).unwrap_or_else(|e| panic!("bad script line {cmd:?}: {e}"));
        steps.push(Step { line: cmd.to_string(), args, stdin, capture, until_quiet });
    }
    steps
}

/// Lease ids captured from one server, by name.
#[derive(Default)]
pub struct Vars(Vec<(String, i64)>);

impl Vars {
    fn substitute(&self, arg: &str) -> String {
        let mut out = arg.to_string();
        // Longest names first, so $L10 is not read as $L1 followed by 0.
        let mut vars: Vec<_> = self.0.iter().collect();
        vars.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
        for (name, id) in vars {
            out = out.replace(&format!("${name}"), &format!("{id:x}"));
        }
        out
    }

    /// Shows captured ids (hex or decimal) by their names.
    fn name_ids(&self, s: &str) -> String {
        let mut out = s.to_string();
        for (name, id) in &self.0 {
            // etcdctl prints ids zero-padded to 16 hex digits.
            let re = Regex::new(&format!(r"\b(0*{:x}|{})\b", id, id)).expect("valid regex");
            out = re.replace_all(&out, regex::NoExpand(&format!("${name}"))).into_owned();
        }
        out
    }
}

/// Ids differ between any two clusters; everything else must not. Remaining lease TTLs depend
/// on timing, so they are masked here and checked by their own tests.
pub fn normalize(s: &str) -> String {
    let rules = [
        (r#""cluster_id":\d+"#, r#""cluster_id":<ID>"#),
        (r#""member_id":\d+"#, r#""member_id":<ID>"#),
        (r#""ClusterID" : \d+"#, r#""ClusterID" : <ID>"#),
        (r#""MemberID" : \d+"#, r#""MemberID" : <ID>"#),
        (r"lease [0-9a-f]+ granted", "lease <LEASE> granted"),
        (r#""ID":\d+"#, r#""ID":<LEASE>"#),
        (r#""ID" : \d+"#, r#""ID" : <LEASE>"#),
        (r"remaining\(\d+s\)", "remaining(<n>s)"),
        // Uncaptured lease ids, as `lease list` prints them.
        (r"(?m)^[0-9a-f]{16}$", "<LEASE>"),
        (r#""ttl":\d+,"granted-ttl""#, r#""ttl":<n>,"granted-ttl""#),
        // `endpoint` commands name the endpoint they asked.
        (r"127\.0\.0\.1:\d+", "<ENDPOINT>"),
    ];
    let mut out = s.to_string();
    for (re, with) in rules {
        out = Regex::new(re).expect("valid regex").replace_all(&out, with).into_owned();
    }
    sort_lease_keys(&out)
}

/// etcd keeps a lease's keys in a Go map, so it lists them in random order: compare them as
/// sets (sorted), in the text and the JSON forms.
fn sort_lease_keys(s: &str) -> String {
    let sorted = |items: &str, sep: &str| {
        let mut v: Vec<&str> = items.split(sep).filter(|x| !x.is_empty()).collect();
        v.sort_unstable();
        v.join(sep)
    };
    let text = Regex::new(r"attached keys\(\[([^\]]*)\]\)").expect("valid regex");
    let out = text.replace_all(s, |c: &regex::Captures| format!("attached keys([{}])", sorted(&c[1], " ")));
    let json = Regex::new(r#""keys":\[([^\]]*)\]"#).expect("valid regex");
    json.replace_all(&out, |c: &regex::Captures| format!(r#""keys":[{}]"#, sorted(&c[1], ","))).into_owned()
}

/// A step's normalised transcript and whether etcdctl succeeded.
pub fn run_step(endpoint: &str, step: &Step, vars: &mut Vars) -> (String, bool) {
    let args: Vec<String> = step.args.iter().map(|a| vars.substitute(a)).collect();
    let o = if step.until_quiet {
        etcdctl_until_quiet(endpoint, &args, step.stdin.as_deref(), Duration::from_millis(700))
    } else {
        etcdctl(endpoint, &args, step.stdin.as_deref())
    };
    if let Some(name) = &step.capture {
        let hex = Regex::new(r"lease ([0-9a-f]+) granted").expect("valid regex");
        let json = Regex::new(r#""ID":(\d+)"#).expect("valid regex");
        let id = hex
            .captures(&o.stdout)
            .and_then(|c| i64::from_str_radix(&c[1], 16).ok())
            .or_else(|| json.captures(&o.stdout).and_then(|c| c[1].parse().ok()))
            .unwrap_or_else(|| panic!("{endpoint}: `{}` printed no lease id: {}{}", step.line, o.stdout, o.errors));
        vars.0.push((name.clone(), id));
    }
    let raw = format!("{}{}\n[{}]", o.stdout, o.errors, if o.success { "ok" } else { "failed" });
    (normalize(&vars.name_ids(&raw)), o.success)
}

pub struct Comparison {
    pub steps: usize,
    /// Steps that succeeded against the reference.
    pub ok_steps: usize,
    /// Each step whose outputs differ, both outputs shown.
    pub diffs: Vec<String>,
}

/// Runs every step against both endpoints, in lockstep.
pub fn compare(script: &str, reference: &str, candidate: &str) -> Comparison {
    let mut c = Comparison { steps: 0, ok_steps: 0, diffs: Vec::new() };
    let (mut ref_vars, mut cand_vars) = (Vars::default(), Vars::default());
    for step in parse(script) {
        let (want, ok) = run_step(reference, &step, &mut ref_vars);
        let (got, _) = run_step(candidate, &step, &mut cand_vars);
        c.steps += 1;
        c.ok_steps += ok as usize;
        if want != got {
            c.diffs.push(format!("$ etcdctl {}\n--- etcd:\n{want}\n--- cairn:\n{got}\n", step.line));
        }
    }
    c
}

/// Starts Debian's etcd and cairn, runs `script` against both in lockstep and fails with every
/// step whose outputs differ, or if most steps failed on etcd too (a vacuous pass).
pub fn assert_same_as_etcd(script: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let etcd = Member::start(Kind::Etcd, &dir.path().join("etcd"), &[]);
    let cairn = Member::start(Kind::Cairn, &dir.path().join("cairn"), &[]);
    let result = compare(script, &etcd.client_addr, &cairn.client_addr);
    assert!(result.diffs.is_empty(), "{} step(s) differ:\n{}", result.diffs.len(), result.diffs.join("\n"));
    assert!(
        result.ok_steps * 10 >= result.steps * 6,
        "only {} of {} steps succeeded on etcd",
        result.ok_steps,
        result.steps
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_ids_are_named_in_every_form_etcdctl_prints() {
        let vars = Vars(vec![("L".into(), 0x0746a1fcf9849805)]);
        assert_eq!(vars.name_ids("lease 0746a1fcf9849805 granted"), "lease $L granted");
        assert_eq!(vars.name_ids(&format!(r#""ID":{}"#, 0x0746a1fcf9849805i64)), r#""ID":$L"#);
        assert_eq!(vars.substitute("--lease=$L"), "--lease=746a1fcf9849805");
    }

    #[test]
    fn lease_key_lists_compare_as_sets() {
        assert_eq!(normalize("attached keys([b a])"), normalize("attached keys([a b])"));
    }
}
