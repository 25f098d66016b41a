//! The member's log: text lines for terminals (`--logger capnslog`, the default as in etcd
//! 3.4), or JSON lines as etcd's zap logger writes them (`--logger zap`): `level`, `ts`,
//! `caller`, `msg`, then the event's fields, so that tools reading etcd's logs read Cairn's.

use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Where the log goes (`--log-outputs`).
pub enum Output {
    Stderr,
    Stdout,
    File(std::fs::File),
}

pub fn init(logger: &str, level: &str, output: Output) {
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{level},sled=warn,h2=warn,hyper=warn,tower=warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let ansi = match output {
        Output::Stderr => std::io::stderr().is_terminal(),
        Output::Stdout => std::io::stdout().is_terminal(),
        Output::File(_) => false,
    };
    let writer = match output {
        Output::Stderr => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
        Output::Stdout => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout),
        Output::File(f) => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::sync::Mutex::new(f)),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    if logger == "zap" {
        builder.event_format(ZapJson).init();
    } else {
        builder.with_ansi(ansi).init();
    }
}

/// One JSON object per event, in zap's production encoding's keys.
struct ZapJson;

impl<S, N> FormatEvent<S, N> for ZapJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = meta.level().as_str().to_ascii_lowercase();
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let file = meta.file().map(|f| f.trim_start_matches("node/src/")).unwrap_or(meta.target());
        let caller = match meta.line() {
            Some(l) => format!("{file}:{l}"),
            None => file.to_string(),
        };
        let msg = fields.message.unwrap_or_default();
        // zap's key order: level, ts, caller, msg, then the fields as given.
        let mut line: Vec<(&str, serde_json::Value)> =
            vec![("level", level.into()), ("ts", ts.into()), ("caller", caller.into()), ("msg", msg.into())];
        line.extend(fields.rest.iter().map(|(k, v)| (k.as_str(), v.clone())));
        write!(writer, "{{")?;
        for (i, (k, v)) in line.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(writer, "{sep}{}:{v}", serde_json::Value::from(*k))?;
        }
        writeln!(writer, "}}")
    }
}

#[derive(Default)]
struct Fields {
    message: Option<String>,
    rest: Vec<(String, serde_json::Value)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.rest.push((field.name().to_string(), value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn zap_lines_lead_with_level_ts_caller_msg() {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let make = move || SharedBuf(sink.clone());
        let subscriber = tracing_subscriber::fmt().event_format(ZapJson).with_writer(make).finish();
        tracing::subscriber::with_default(subscriber, || tracing::warn!(peer = "a1", term = 3u64, "lost the leader"));
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let keys: Vec<&str> =
            text.trim().split(',').map(|kv| kv.trim_start_matches('{').split(':').next().unwrap()).collect();
        assert_eq!(keys, ["\"level\"", "\"ts\"", "\"caller\"", "\"msg\"", "\"peer\"", "\"term\""], "{text}");
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(
            (v["level"].as_str(), v["msg"].as_str(), v["term"].as_u64()),
            (Some("warn"), Some("lost the leader"), Some(3))
        );
        assert!(v["caller"].as_str().unwrap().starts_with("logging.rs:"), "{text}");
    }

    struct SharedBuf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for SharedBuf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
