//! /metrics read as etcd 3.4's own e2e test reads it (tests/e2e/metrics_test.go), on the
//! client port and on --listen-metrics-urls: the mvcc counters, the live keys, watches their
//! client abandoned counted as Canceled, and go-grpc-prometheus's counters for unary and
//! streaming calls.

use cairn_e2e::harness::{etcdctl, etcdctl_until_quiet, free_port, http_get, Kind, Member};
use std::time::Duration;

#[test]
fn metrics_count_as_etcds_own_test_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let m = Member::start(Kind::Cairn, dir.path(), &["--listen-metrics-urls", &format!("http://{metrics_addr}")]);
    let ctl = |args: &[&str]| {
        let o = etcdctl(&m.client_addr, &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(), None);
        assert!(o.errors.is_empty(), "{args:?}: {}", o.errors);
        o.stdout
    };
    ctl(&["put", "k", "v"]);
    for i in 1..=6 {
        ctl(&["put", &i.to_string(), "v"]);
        assert_eq!(ctl(&["del", &i.to_string()]).trim(), "1");
        // etcdctl watch never ends by itself: it is stopped once quiet, as etcd's test stops it.
        let args = ["watch", "k", "--rev", "1"].map(String::from);
        let w = etcdctl_until_quiet(&m.client_addr, &args, None, Duration::from_secs(1));
        assert!(w.stdout.contains("PUT\nk\nv"), "watch {i}: {}{}", w.stdout, w.errors);
    }
    for addr in [&m.client_addr, &metrics_addr] {
        let (status, text) = http_get(addr, "/metrics").expect("metrics");
        assert_eq!(status, 200, "{addr}");
        let has = |line: &str| text.lines().any(|l| l == line);
        for line in [
            "etcd_mvcc_put_total 7",
            "etcd_mvcc_delete_total 6",
            "etcd_debugging_mvcc_keys_total 1",
            "etcd_server_has_leader 1",
            r#"grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 6"#,
            r#"grpc_server_handled_total{grpc_code="Canceled",grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 6"#,
            r#"grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 7"#,
            r#"grpc_server_msg_received_total{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 7"#,
            r#"grpc_server_msg_sent_total{grpc_method="DeleteRange",grpc_service="etcdserverpb.KV",grpc_type="unary"} 6"#,
            r#"grpc_server_handled_total{grpc_code="Unavailable",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 0"#,
            r#"etcd_server_version{server_version="3.5.0"} 1"#,
        ] {
            assert!(has(line), "{addr}: no line {line:?} in:\n{text}");
        }
        // Each watch stream got its created response and the event, at least.
        let sent = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    r#"grpc_server_msg_sent_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} "#,
                )
            })
            .and_then(|v| v.parse::<u64>().ok());
        assert!(sent.is_some_and(|n| n >= 12), "{addr}: watch messages sent: {sent:?}");
    }
    // Compacting at the last revision drops every revision the deleted keys and "k" left.
    assert!(ctl(&["compaction", "14"]).contains("compacted revision 14"));
    let text = http_get(&m.client_addr, "/metrics").expect("metrics").1;
    let compacted = text.lines().find_map(|l| l.strip_prefix("etcd_debugging_mvcc_db_compaction_keys_total "));
    assert!(compacted.and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n > 0), "{compacted:?}");
    assert!(text.lines().any(|l| l == "etcd_debugging_mvcc_compact_revision 14"), "{text}");
    assert_eq!(http_get(&metrics_addr, "/health"), Some((200, r#"{"health":"true"}"#.into())));
}
