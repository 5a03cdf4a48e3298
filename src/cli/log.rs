//! Where the CLI's log goes: stderr, through `tracing`.
//!
//! A long-running command (`serve`, `mcp`, `index --watch`) must not stop when nobody reads its
//! stderr: a terminal paused with Ctrl-S, a stuck log shipper, an MCP client that never drains
//! the pipe. Written directly, a full 64 KiB pipe blocks whichever thread logs next, and in the
//! server those are the async workers: nothing answers any more, `/health` included. Those
//! commands log through a non-blocking writer instead (`tracing-appender`): lines go to a
//! bounded queue that one thread drains into stderr, and while stderr stalls the queue fills
//! and further lines are dropped and counted. Once stderr moves again, one line says how many
//! were lost. One-shot commands write directly, so that nothing they log is ever dropped.

use std::io::{self, IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use super::args::GlobalArgs;

/// Lines the non-blocking writer holds for a stalled stderr before it drops new ones.
const QUEUED_LINES: usize = 4096;

/// How often the count of dropped lines is looked at.
const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// The non-blocking writer, when this command uses one.
static NON_BLOCKING: OnceLock<NonBlocking> = OnceLock::new();

/// Keeps the non-blocking writer's thread until the command ends, then flushes what it holds.
pub struct LogGuard(#[allow(dead_code)] Option<WorkerGuard>);

/// Sets up the log: `-q`, `-v`... or `RUST_LOG`; non-blocking when `long_running`.
pub fn init(global: &GlobalArgs, long_running: bool) -> LogGuard {
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(io::stderr().is_terminal())
        .without_time()
        .with_target(global.verbose >= 2);
    if !long_running {
        builder.with_writer(io::stderr).init();
        return LogGuard(None);
    }
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("gguf-embed-log")
        .finish(io::stderr());
    builder.with_writer(writer.clone()).init();
    let counter = writer.error_counter();
    let _ = NON_BLOCKING.set(writer);
    // Says how many lines were dropped, once stderr takes lines again (the line itself goes
    // through the same queue, so it is written only when there is room).
    let _ = std::thread::Builder::new()
        .name("gguf-embed-log-drops".into())
        .spawn(move || {
            let mut reported = 0;
            loop {
                std::thread::sleep(DROP_REPORT_INTERVAL);
                let dropped = counter.dropped_lines();
                if dropped > reported {
                    tracing::warn!(
                        "{} log line(s) dropped because stderr was not being read",
                        dropped - reported
                    );
                    reported = dropped;
                }
            }
        });
    LogGuard(Some(guard))
}

/// Says something on stderr whatever the log level (that a server listens, that it stopped):
/// through the non-blocking writer when there is one, so it never blocks either.
pub fn say(message: &str) {
    line(&format!("gguf-embed: {message}"));
}

/// Writes one line on stderr, through the non-blocking writer when there is one.
pub fn line(text: &str) {
    let line = format!("{text}\n");
    match NON_BLOCKING.get() {
        Some(writer) => {
            let _ = writer.clone().write_all(line.as_bytes());
        }
        None => {
            let _ = io::stderr().write_all(line.as_bytes());
        }
    }
}
