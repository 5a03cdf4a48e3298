//! The `gguf-embed` command line: a thin layer over the library that parses arguments,
//! prints results on stdout and errors on stderr, and turns outcomes into exit codes
//! (0 success, 1 failure, 2 usage).

/// Writes to stdout and returns the I/O result, so a closed pipe ends the command quietly
/// instead of panicking like `print!`.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `out!` with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod args;
mod bench;
mod embed;
#[cfg(feature = "index")]
mod index;
mod input;
mod inspect;
mod log;
#[cfg(feature = "index")]
mod mcp;
mod model;
mod models;
mod output;
mod progress;
mod rerank;
#[cfg(feature = "server")]
mod serve;

use std::io;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use args::{Cli, Command};

/// The version line: package version and the llama.cpp binding it was built with.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("GGUF_EMBED_GIT"),
    ", llama-cpp-2 ",
    env!("GGUF_EMBED_LLAMA_CPP_2"),
    ")"
);

/// A mistake in how the command was called: reported like clap's errors, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed; real errors exit 2.
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    // Dropped last, so that the non-blocking log is flushed after the error report.
    let _log = log::init(&cli.global, is_long_running(&cli));
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => embed::run(cli.embed, &cli.global),
        Some(Command::Inspect(args)) => inspect::run(&args),
        Some(Command::Models(command)) => models::run(command, &cli.global),
        Some(Command::Bench(args)) => bench::run(*args, &cli.global),
        Some(Command::Rerank(args)) => rerank::run(*args, &cli.global),
        #[cfg(feature = "index")]
        Some(Command::Index(args)) => index::run_index(*args, &cli.global),
        #[cfg(feature = "index")]
        Some(Command::Search(args)) => index::run_search(*args, &cli.global),
        #[cfg(feature = "index")]
        Some(Command::Mcp(args)) => mcp::run(*args, &cli.global),
        #[cfg(feature = "server")]
        Some(Command::Serve(args)) => serve::run(*args, &cli.global),
        Some(Command::Devices { format }) => devices(format),
        Some(Command::Completions { shell }) => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "gguf-embed", &mut script);
            io::Write::write_all(&mut io::stdout().lock(), &script)?;
            Ok(())
        }
    }
}

/// `gguf-embed devices`: the backends and devices this build can use.
fn devices(format: args::InfoFormat) -> anyhow::Result<()> {
    let devices = gguf_embed::devices();
    if format == args::InfoFormat::Json {
        outln!("{}", serde_json::to_string_pretty(&devices)?)?;
        return Ok(());
    }
    for d in &devices {
        let memory = if d.memory_total > 0 {
            format!(
                "{} MiB free of {} MiB",
                d.memory_free >> 20,
                d.memory_total >> 20
            )
        } else {
            "system memory".to_string()
        };
        outln!(
            "{:<10} {:<8} {:<14} {}  ({memory})",
            d.name,
            d.backend,
            format!("{:?}", d.kind).to_lowercase(),
            d.description
        )?;
        if !d.features.is_empty() {
            outln!("           {}", d.features.join(" "))?;
        }
    }
    let gpus = devices.iter().filter(|d| d.is_gpu()).count();
    outln!(
        "{gpus} GPU(s); --device auto uses {}",
        if gpus > 0 { "the first GPU" } else { "the CPU" }
    )?;
    Ok(())
}

/// Prints an error on one line (`gguf-embed: what: why`) and picks the exit code.
fn report(error: &anyhow::Error) -> ExitCode {
    // A closed pipe (`gguf-embed ... | head`) is how pipelines end, not a failure.
    if error
        .chain()
        .any(|e| io_error_kind(e) == Some(io::ErrorKind::BrokenPipe))
    {
        return ExitCode::SUCCESS;
    }
    log::say(&format!("{error:#}"));
    if error.downcast_ref::<UsageError>().is_some() {
        log::line("For more information, try '--help'.");
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// The I/O error kind behind an error, also when serde_json wraps it.
fn io_error_kind(error: &(dyn std::error::Error + 'static)) -> Option<io::ErrorKind> {
    if let Some(e) = error.downcast_ref::<io::Error>() {
        return Some(e.kind());
    }
    error
        .downcast_ref::<serde_json::Error>()
        .and_then(serde_json::Error::io_error_kind)
}

/// Commands that run until stopped: their log must never block them (see `log`).
fn is_long_running(cli: &Cli) -> bool {
    match &cli.command {
        #[cfg(feature = "server")]
        Some(Command::Serve(_)) => true,
        #[cfg(feature = "index")]
        Some(Command::Mcp(_)) => true,
        #[cfg(feature = "index")]
        Some(Command::Index(args)) => args.watch,
        _ => false,
    }
}
