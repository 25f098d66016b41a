//! etcdctl scripts run side by side against etcd and Cairn.
//!
//! Format: one etcdctl command per line (shell quoting), `#` comments. A line ending in `<<`
//! takes the following lines, up to a line `>>`, as its standard input (for `txn`).

use crate::harness::etcdctl;
use regex::Regex;

pub struct Step {
    pub line: String,
    pub args: Vec<String>,
    pub stdin: Option<String>,
}

pub fn parse(script: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut lines = script.lines();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (cmd, stdin) = match t.strip_suffix("<<") {
            Some(cmd) => {
                let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != ">>").collect();
                (cmd.trim(), Some(body.join("\n") + "\n"))
            }
            None => (t, None),
        };
        let args = shell_words::split(cmd).unwrap_or_else(|e| panic!("bad script line {cmd:?}: {e}"));
        steps.push(Step { line: cmd.to_string(), args, stdin });
    }
    steps
}

/// Ids differ between any two clusters; everything else must not.
pub fn normalize(s: &str) -> String {
    let rules = [
        (r#""cluster_id":\d+"#, r#""cluster_id":<ID>"#),
        (r#""member_id":\d+"#, r#""member_id":<ID>"#),
        (r#""ClusterID" : \d+"#, r#""ClusterID" : <ID>"#),
        (r#""MemberID" : \d+"#, r#""MemberID" : <ID>"#),
    ];
    let mut out = s.to_string();
    for (re, with) in rules {
        out = Regex::new(re).expect("valid regex").replace_all(&out, with).into_owned();
    }
    out
}

/// A step's normalised transcript and whether etcdctl succeeded.
pub fn run_step(endpoint: &str, step: &Step) -> (String, bool) {
    let o = etcdctl(endpoint, &step.args, step.stdin.as_deref());
    let text = normalize(&format!("{}{}\n[{}]", o.stdout, o.errors, if o.success { "ok" } else { "failed" }));
    (text, o.success)
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
    for step in parse(script) {
        let (want, ok) = run_step(reference, &step);
        let (got, _) = run_step(candidate, &step);
        c.steps += 1;
        c.ok_steps += ok as usize;
        if want != got {
            c.diffs.push(format!("$ etcdctl {}\n--- etcd:\n{want}\n--- cairn:\n{got}\n", step.line));
        }
    }
    c
}
