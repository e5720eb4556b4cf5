//! Log output: compact lines for people, JSON for machines, level from `RUST_LOG`.
//!
//! The human format reads `02:51:07.412 INFO  n2 [ELECTION] became leader term=5`: UTC time
//! of day with milliseconds, level, this process's node, the message (with a `[TOPIC]` tag for
//! the events an operator watches: ELECTION, PEER, DISK, CLIENT, START, SHUTDOWN), then fields.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One compact line per event.
    #[default]
    Human,
    /// One JSON object per event.
    Json,
}

/// Installs the global subscriber. `prefix` (such as `n2`) starts every human line.
/// The level comes from `RUST_LOG` (default: `info`, with the core's own step-by-step
/// narration at `warn`, since the driver logs the tagged events an operator needs).
pub fn init(format: LogFormat, prefix: String) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,verity_core=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Human => builder.event_format(Human { prefix }).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second initialisation (in tests) keeps the first subscriber.
    drop(installed);
}

struct Human {
    prefix: String,
}

impl<S, N> FormatEvent<S, N> for Human
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let day_ms = since_epoch.as_millis() % 86_400_000;
        write!(
            writer,
            "{:02}:{:02}:{:02}.{:03} {:<5} {} ",
            day_ms / 3_600_000,
            day_ms / 60_000 % 60,
            day_ms / 1000 % 60,
            day_ms % 1000,
            event.metadata().level(),
            self.prefix
        )?;
        if let Some(scope) = context.event_scope() {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}} ")?;
                }
            }
        }
        context
            .field_format()
            .format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
