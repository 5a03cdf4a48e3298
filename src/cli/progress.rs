//! Progress bars on stderr, only when it is a terminal and the user did not ask for quiet.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether progress bars may be drawn: stderr is a terminal, no `--quiet`, and not disabled
/// through `HF_HUB_DISABLE_PROGRESS_BARS` (Hugging Face's own switch).
pub fn enabled(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal() && !env_flag("HF_HUB_DISABLE_PROGRESS_BARS")
}

/// Reads a boolean environment variable the way Hugging Face's tools do (1, true, yes, on).
pub fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

fn hidden_unless(enabled: bool, bar: ProgressBar) -> ProgressBar {
    if !enabled {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

/// A bar for embedding: bytes of input when the total is known (a file), texts otherwise.
pub fn embedding(enabled: bool, total_bytes: Option<u64>) -> ProgressBar {
    let bar = match total_bytes {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {percent}% {msg} (ETA {eta})",
            )
            .expect("valid template"),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                .expect("valid template"),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    hidden_unless(enabled, bar)
}

/// A bar counting `total` items (`what`: "pairs", ...) as they are done, with a rate and ETA.
pub fn counter(enabled: bool, total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {what} \
             ({{per_sec}}, ETA {{eta}})"
        ))
        .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    hidden_unless(enabled, bar)
}

/// A bar for a download of `total` bytes: size, speed and ETA.
pub fn download(enabled: bool, name: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .expect("valid template"),
    );
    bar.set_message(name.to_string());
    hidden_unless(enabled, bar)
}
