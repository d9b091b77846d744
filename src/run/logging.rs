//! Logs on stderr: text for people or one JSON object per line for machines, colour only when
//! it can be seen, timestamps when nobody is watching the terminal.
//!
//! Text lines are `[TIME ]LEVEL message`: the time (UTC, milliseconds) only when stderr is not
//! a terminal (cron mail, CI logs), the level coloured only when colour is on. JSON lines hold
//! `time`, `level`, `event` (what happened: `chunk`, `output`, `retry`, `plan`, or `log`) and
//! the event's fields (`chunk`, `tier`, `bytes`, `rows`, `seconds`, `attempt`, `reason`, …),
//! plus `message`.

use std::fmt;
use std::io::IsTerminal;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::settings::{ColorChoice, LogFormat, ToolSettings};

/// How log lines look, decided once from the settings and the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStyle {
    /// Text or JSON.
    pub format: LogFormat,
    /// ANSI colour on the level.
    pub color: bool,
    /// A timestamp on each text line.
    pub time: bool,
}

impl LogStyle {
    /// The style for `tool`, given whether stderr is a terminal and the `NO_COLOR` and `TERM`
    /// variables (<https://no-color.org>).
    pub fn decide(tool: &ToolSettings, stderr_is_terminal: bool, no_color: Option<&str>, term: Option<&str>) -> Self {
        let color = match tool.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stderr_is_terminal && no_color.is_none_or(str::is_empty) && term != Some("dumb"),
        };
        Self {
            format: tool.log_format,
            color: color && tool.log_format == LogFormat::Text,
            time: !stderr_is_terminal,
        }
    }

    /// The style for this process's stderr and environment.
    pub fn for_process(tool: &ToolSettings) -> Self {
        Self::decide(
            tool,
            std::io::stderr().is_terminal(),
            std::env::var("NO_COLOR").ok().as_deref(),
            std::env::var("TERM").ok().as_deref(),
        )
    }
}

/// The level filter of `tool`: `RUST_LOG` if set, else `-q` errors, default warnings, `-v`
/// info, `-vv` debug, `-vvv` trace, for tickvault (other crates: warnings).
pub fn filter(tool: &ToolSettings) -> EnvFilter {
    let level = match (tool.quiet, tool.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("tickvault={level},warn")))
}

/// Installs the global subscriber, writing through `writer` (which keeps log lines off the
/// progress bar).
pub fn init<W>(tool: &ToolSettings, style: LogStyle, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(tool))
        .with_writer(writer)
        .event_format(Lines(style))
        .try_init();
}

/// The event formatter of both formats.
#[derive(Debug, Clone, Copy)]
pub struct Lines(pub LogStyle);

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Map::new();
        event.record(&mut Fields(&mut fields));
        let level = *event.metadata().level();
        writeln!(w, "{}", render(self.0, level, &now(), fields))
    }
}

/// Text for stderr in `style`: unchanged for text logs; with JSON logs, one JSON line (`event`
/// at `level`, the text as `message`), so that stderr stays one JSON object per line.
pub fn stderr_text(style: LogStyle, level: Level, event: &str, text: &str) -> String {
    match style.format {
        LogFormat::Text => text.to_string(),
        LogFormat::Json => {
            let mut fields = Map::new();
            fields.insert("event".into(), event.into());
            fields.insert("message".into(), text.trim_end().into());
            render(style, level, &now(), fields) + "\n"
        }
    }
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// One line (without its newline) of an event with `fields` at `level`, logged at `time`.
pub fn render(style: LogStyle, level: Level, time: &str, mut fields: Map<String, Value>) -> String {
    let message = match fields.remove("message") {
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    match style.format {
        LogFormat::Json => {
            let mut line = Map::new();
            line.insert("time".into(), time.into());
            line.insert("level".into(), level.as_str().to_ascii_lowercase().into());
            let event = fields.remove("event").unwrap_or_else(|| "log".into());
            line.insert("event".into(), event);
            line.extend(fields);
            line.insert("message".into(), message.into());
            Value::Object(line).to_string()
        }
        LogFormat::Text => {
            let mut out = String::new();
            if style.time {
                out.push_str(time);
                out.push(' ');
            }
            let name = level.as_str();
            match (style.color, level_colour(level)) {
                (true, Some(code)) => out.push_str(&format!("\x1b[{code}m{name:>5}\x1b[0m")),
                _ => out.push_str(&format!("{name:>5}")),
            }
            out.push(' ');
            out.push_str(&message);
            out
        }
    }
}

fn level_colour(level: Level) -> Option<&'static str> {
    match level {
        Level::ERROR => Some("31"),
        Level::WARN => Some("33"),
        Level::INFO => Some("32"),
        Level::DEBUG => Some("34"),
        Level::TRACE => Some("35"),
    }
}

/// Collects an event's fields as JSON values.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_f64(&mut self, f: &Field, v: f64) {
        // Seconds and rates: milliseconds are enough, and keep lines short.
        let rounded = (v * 1000.0).round() / 1000.0;
        self.0.insert(
            f.name().into(),
            serde_json::Number::from_f64(rounded).map_or(Value::Null, Value::Number),
        );
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        self.0.insert(f.name().into(), format!("{v:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ProgressMode;

    fn tool(color: ColorChoice, log_format: LogFormat) -> ToolSettings {
        ToolSettings {
            quiet: false,
            verbose: 0,
            log_format,
            color,
            progress: ProgressMode::Auto,
            json: false,
        }
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let auto = tool(ColorChoice::Auto, LogFormat::Text);
        assert!(LogStyle::decide(&auto, true, None, Some("xterm")).color);
        assert!(!LogStyle::decide(&auto, false, None, None).color, "a pipe or a file");
        assert!(!LogStyle::decide(&auto, true, Some("1"), None).color, "NO_COLOR");
        assert!(LogStyle::decide(&auto, true, Some(""), None).color, "an empty NO_COLOR");
        assert!(!LogStyle::decide(&auto, true, None, Some("dumb")).color);
        assert!(LogStyle::decide(&tool(ColorChoice::Always, LogFormat::Text), false, Some("1"), None).color);
        assert!(!LogStyle::decide(&tool(ColorChoice::Never, LogFormat::Text), true, None, None).color);
        assert!(!LogStyle::decide(&tool(ColorChoice::Always, LogFormat::Json), true, None, None).color);
        assert!(
            LogStyle::decide(&auto, false, None, None).time,
            "timestamps off a terminal"
        );
        assert!(!LogStyle::decide(&auto, true, None, None).time);
    }

    #[test]
    fn lines_in_both_formats() {
        let mut fields = Map::new();
        fields.insert("message".into(), "k: retrying".into());
        fields.insert("event".into(), "retry".into());
        fields.insert("attempt".into(), 2.into());
        let text = LogStyle {
            format: LogFormat::Text,
            color: false,
            time: true,
        };
        assert_eq!(
            render(text, Level::INFO, "2024-03-06T07:00:00.000Z", fields.clone()),
            "2024-03-06T07:00:00.000Z  INFO k: retrying"
        );
        let coloured = LogStyle {
            color: true,
            time: false,
            ..text
        };
        assert_eq!(render(coloured, Level::WARN, "t", Map::new()), "\x1b[33m WARN\x1b[0m ");
        let json = LogStyle {
            format: LogFormat::Json,
            color: false,
            time: false,
        };
        let line: Value = serde_json::from_str(&render(json, Level::INFO, "t", fields)).unwrap();
        assert_eq!(line["event"], "retry");
        assert_eq!(line["attempt"], 2);
        assert_eq!(line["level"], "info");
        assert_eq!(line["message"], "k: retrying");
        let plain: Value = serde_json::from_str(&render(json, Level::WARN, "t", Map::new())).unwrap();
        assert_eq!(plain["event"], "log");
    }
}
