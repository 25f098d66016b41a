//! etcd 3.4's JSON gateway: the same HTTP requests to etcd and to cairn, answers compared
//! after the ids are masked (status code, body, field order and encoding included); a watch
//! stream that sees a put and a lease keep-alive stream, read line by line.

use cairn_e2e::harness::{Kind, Member};
use regex::Regex;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An HTTP/1.0 POST (the server closes after the answer): its status line code and body.
fn post(addr: &str, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map(|t| format!("Authorization: {t}\r\n")).unwrap_or_default();
    write!(s, "POST {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// A streaming call's answer, line by line as it comes.
struct Stream(BufReader<TcpStream>);

impl Stream {
    fn open(addr: &str, path: &str, body: &str) -> Stream {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
            line.clear();
        }
        Stream(r)
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.0.read_line(&mut line).expect("a line within 10 s");
        line
    }
}

/// Ids differ between any two clusters, a lease's remaining TTL with time.
fn mask(s: &str) -> String {
    let rules = [
        (r#""(cluster_id|member_id|ID|leader|memberID|lease)":"\d+""#, r#""$1":"<ID>""#),
        (r#""TTL":"\d+","grantedTTL""#, r#""TTL":"<n>","grantedTTL""#),
        (r"127\.0\.0\.1:\d+", "<ADDR>"),
        (r#""token":"[^"]+""#, r#""token":"<TOKEN>""#),
    ];
    rules.iter().fold(s.to_string(), |s, (re, with)| Regex::new(re).unwrap().replace_all(&s, *with).into_owned())
}

/// The requests, in order; `$L` is the lease granted first, `$T` root's token.
const SCRIPT: &[(&str, &str)] = &[
    ("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#),
    ("/v3beta/kv/put", r#"{"key":"Zm9vMQ==","value":"MQ==","prev_kv":true}"#),
    ("/v3/kv/put", r#"{"key":"Zm9vMQ==","value":"Mg==","prevKv":true}"#),
    ("/v3/kv/range", r#"{"key":"Zm9v"}"#),
    ("/v3/kv/range", r#"{"key":"Zm9v","range_end":"Zm9w","keys_only":true}"#),
    ("/v3/kv/range", r#"{"key":"Zm9v","range_end":"Zm9w","count_only":true,"revision":"3"}"#),
    ("/v3/kv/range", r#"{"key":"Zm9v","revision":"99"}"#),
    ("/v3/kv/range", r#"{"key":""}"#),
    (
        "/v3/kv/txn",
        r#"{"compare":[{"result":"EQUAL","target":"VALUE","key":"Zm9v","value":"YmFy"}],"success":[{"request_put":{"key":"Zm9v","value":"YmF6"}}],"failure":[{"request_range":{"key":"Zm9v"}}]}"#,
    ),
    (
        "/v3/kv/txn",
        r#"{"compare":[{"result":"EQUAL","target":"VALUE","key":"Zm9v","value":"YmFy"}],"success":[{"request_put":{"key":"Zm9v","value":"YmF6"}}],"failure":[{"request_range":{"key":"Zm9v"}}]}"#,
    ),
    (
        "/v3/kv/txn",
        r#"{"compare":[{"target":"CREATE","key":"eA==","create_revision":"0"}],"success":[{"request_delete_range":{"key":"Zm9vMQ==","prev_kv":true}}]}"#,
    ),
    ("/v3/kv/deleterange", r#"{"key":"Zm9v","prev_kv":true}"#),
    ("/v3/kv/compaction", r#"{"revision":"3"}"#),
    ("/v3/kv/range", r#"{"key":"Zm9v","revision":"2"}"#),
    ("/v3/lease/grant", r#"{"TTL":"60"}"#),
    ("/v3/kv/put", r#"{"key":"bGVhc2Vk","value":"eA==","lease":"$L"}"#),
    ("/v3/lease/timetolive", r#"{"ID":"$L","keys":true}"#),
    ("/v3/lease/leases", "{}"),
    ("/v3/lease/revoke", r#"{"ID":"$L"}"#),
    ("/v3/lease/revoke", r#"{"ID":"$L"}"#),
    ("/v3/kv/range", r#"{"key":"bGVhc2Vk"}"#),
    ("/v3/cluster/member/list", "{}"),
    ("/v3/maintenance/alarm", r#"{"action":"GET"}"#),
    ("/v3/election/proclaim", "{}"),
    ("/v3/election/resign", "{}"),
    ("/v3/kv/put", r#"{"value":"eA=="}"#),
    ("/v3/auth/user/add", r#"{"name":"root","password":"rootpw"}"#),
    ("/v3/auth/role/add", r#"{"name":"root"}"#),
    ("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#),
    ("/v3/auth/user/get", r#"{"name":"root"}"#),
    ("/v3/auth/enable", "{}"),
    ("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#),
    ("/v3/auth/authenticate", r#"{"name":"root","password":"nope"}"#),
    ("/v3/auth/authenticate", r#"{"name":"root","password":"rootpw"}"#),
    ("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"} $T"#),
    ("/v3/auth/role/list", "{} $T"),
    ("/v3/auth/disable", "{} $T"),
    ("/v3/kv/range", r#"{"key":"Zm9v"}"#),
    ("/v3/nosuch", "{}"),
];

fn run(addr: &str) -> Vec<String> {
    let (mut lease, mut token) = (String::new(), None::<String>);
    let id = Regex::new(r#""ID":"(\d+)""#).unwrap();
    let tok = Regex::new(r#""token":"([^"]+)""#).unwrap();
    let mut out = Vec::new();
    for (path, body) in SCRIPT {
        let (body, with_token) = match body.strip_suffix(" $T") {
            Some(b) => (b, token.as_deref()),
            None => (*body, None),
        };
        let body = body.replace("$L", &lease);
        let (status, answer) = post(addr, path, &body, with_token);
        if lease.is_empty() && path.ends_with("lease/grant") {
            lease = id.captures(&answer).expect("a lease id")[1].to_string();
        }
        if let Some(c) = tok.captures(&answer) {
            token = Some(c[1].to_string());
        }
        out.push(mask(&format!("POST {path} {body}\n{status} {}", answer.trim_end())));
    }
    out
}

#[test]
fn unary_calls_answer_as_etcds_gateway_does() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Member::start(Kind::Etcd, &dir.path().join("etcd"), &[]);
    let cairn = Member::start(Kind::Cairn, &dir.path().join("cairn"), &[]);
    let want = run(&etcd.client_addr);
    let got = run(&cairn.client_addr);
    let ok = want.iter().filter(|s| s.lines().nth(1).is_some_and(|l| l.starts_with("200 "))).count();
    assert!(ok * 2 > want.len(), "most requests failed on etcd: {want:#?}");
    let diffs: Vec<String> = want
        .iter()
        .zip(&got)
        .filter(|(w, g)| w != g)
        .map(|(w, g)| format!("--- etcd:\n{w}\n--- cairn:\n{g}\n"))
        .collect();
    assert!(diffs.is_empty(), "{} answer(s) differ:\n{}", diffs.len(), diffs.join("\n"));
}

/// A watch created over the gateway sees a put made after it; a keep-alive answers with the
/// lease's TTL; both as etcd streams them.
#[test]
fn watch_and_keepalive_stream_as_etcds_gateway_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    let id = Regex::new(r#""ID":"(\d+)""#).unwrap();
    for kind in [Kind::Etcd, Kind::Cairn] {
        let m = Member::start(kind, &dir.path().join(format!("{kind:?}")), &[]);
        let mut watch =
            Stream::open(&m.client_addr, "/v3/watch", r#"{"create_request":{"key":"Zm9v","prev_kv":true}}"#);
        let mut lines = vec![watch.line()];
        post(&m.client_addr, "/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#, None);
        post(&m.client_addr, "/v3/kv/put", r#"{"key":"Zm9v","value":"YmF6"}"#, None);
        lines.push(watch.line());
        lines.push(watch.line());
        let (_, granted) = post(&m.client_addr, "/v3/lease/grant", r#"{"TTL":"60"}"#, None);
        let lease = id.captures(&granted).unwrap()[1].to_string();
        let mut keepalive = Stream::open(&m.client_addr, "/v3/lease/keepalive", &format!(r#"{{"ID":"{lease}"}}"#));
        lines.push(keepalive.line());
        seen.push(lines.iter().map(|l| mask(l.trim_end())).collect::<Vec<_>>());
    }
    assert!(seen[0][2].contains(r#""prev_kv":{"key":"Zm9v""#), "etcd itself: {:?}", seen[0]);
    assert_eq!(seen[1], seen[0]);
}
