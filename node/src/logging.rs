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
        let mut line = serde_json::Map::new();
        line.insert("level".into(), meta.level().as_str().to_ascii_lowercase().into());
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        line.insert("ts".into(), ts.into());
        let file = meta.file().map(|f| f.trim_start_matches("node/src/")).unwrap_or(meta.target());
        let caller = match meta.line() {
            Some(l) => format!("{file}:{l}"),
            None => file.to_string(),
        };
        line.insert("caller".into(), caller.into());
        line.insert("msg".into(), fields.message.unwrap_or_default().into());
        for (k, v) in fields.rest {
            line.insert(k, v);
        }
        writeln!(writer, "{}", serde_json::Value::Object(line))
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
