//! The default command: embed texts from the arguments, a file or stdin, and print vectors.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use gguf_embed::{EmbedOptions, Embedder, PendingEmbeddings};
use indicatif::ProgressBar;

use super::UsageError;
use super::args::{EmbedArgs, GlobalArgs};
use super::input::{self, Reader, Record};
use super::output::VectorWriter;
use super::{model, progress};

/// Texts read and submitted per step. Two steps are in flight at once: the engine embeds one
/// while the next is read and tokenized, so memory stays bounded on any input size.
const CHUNK: usize = 256;

/// Where the texts come from.
enum Source {
    Args(Vec<String>),
    Stream {
        reader: Reader<Box<dyn BufRead>>,
        total_bytes: Option<u64>,
    },
}

/// Runs the embed command.
pub fn run(args: EmbedArgs, global: &GlobalArgs) -> Result<()> {
    let source = open_source(&args)?;
    check_output_target(&args)?;
    let embedder = model::load(&args.model, global)?;
    let options = embed_options(&args);
    let dims = args.dim.unwrap_or(embedder.dimensions());
    let mut output = Output::create(args.output.as_deref())?;
    let mut writer = VectorWriter::new(output.writer(), args.format, dims);
    let bar = progress::embedding(
        progress::enabled(global.quiet),
        match &source {
            Source::Stream { total_bytes, .. } => *total_bytes,
            Source::Args(_) => None,
        },
    );
    let stats = match source {
        Source::Args(texts) => {
            let records: Vec<Record> = texts
                .into_iter()
                .map(|text| Record { text, id: None })
                .collect();
            let pending = embedder.submit(&texts_of(&records), &options)?;
            write_results(&mut writer, pending, &records, &bar)?
        }
        Source::Stream { mut reader, .. } => {
            stream(&embedder, &options, &mut reader, &mut writer, &bar)?
        }
    };
    bar.finish_and_clear();
    writer.finish()?;
    output.commit()?;
    tracing::info!(
        texts = stats.texts,
        tokens = stats.tokens,
        seconds = format!("{:.2}", stats.started.elapsed().as_secs_f64()),
        "done"
    );
    // The process exits next: freeing the model (its vocabulary's 300k strings and maps, the
    // weights' mappings) is work the kernel does anyway at exit, about 5% of a one-shot run.
    std::mem::forget(embedder);
    Ok(())
}

fn open_source(args: &EmbedArgs) -> Result<Source> {
    if !args.texts.is_empty() {
        if args.input.is_some() {
            return Err(
                UsageError("give texts as arguments or with --input, not both".into()).into(),
            );
        }
        return Ok(Source::Args(args.texts.clone()));
    }
    let (reader, total_bytes) = input::open(args.input.as_deref(), args.input_format, "texts")?;
    Ok(Source::Stream {
        reader,
        total_bytes,
    })
}

fn check_output_target(args: &EmbedArgs) -> Result<()> {
    if args.format.is_binary() && args.output.is_none() && io::stdout().is_terminal() {
        return Err(UsageError(format!(
            "refusing to write binary {:?} output to a terminal; redirect stdout or use --output",
            args.format
        ))
        .into());
    }
    Ok(())
}

fn embed_options(args: &EmbedArgs) -> EmbedOptions {
    let mut options = EmbedOptions::default()
        .with_instruction(args.prompt.instruction())
        .with_normalize(!args.no_normalize)
        .with_truncation(args.truncate.into());
    if let Some(dim) = args.dim {
        options = options.with_dimensions(dim);
    }
    if let Some(max) = args.max_tokens {
        options = options.with_max_tokens(max);
    }
    options
}

/// What was embedded, for the closing log line.
struct Stats {
    texts: usize,
    tokens: usize,
    started: Instant,
}

/// Embeds a stream chunk by chunk, keeping one chunk in the engine while reading the next.
fn stream<W: Write>(
    embedder: &Embedder,
    options: &EmbedOptions,
    reader: &mut Reader<Box<dyn BufRead>>,
    writer: &mut VectorWriter<W>,
    bar: &ProgressBar,
) -> Result<Stats> {
    let mut stats = Stats {
        texts: 0,
        tokens: 0,
        started: Instant::now(),
    };
    let mut in_flight: Option<(PendingEmbeddings, Vec<Record>)> = None;
    loop {
        let records = reader.next_chunk(CHUNK)?;
        let next = if records.is_empty() {
            None
        } else {
            let pending = embedder.submit(&texts_of(&records), options).map_err(|e| {
                offset_error(e, stats.texts + in_flight.as_ref().map_or(0, |f| f.1.len()))
            })?;
            Some((pending, records))
        };
        if let Some((pending, records)) = in_flight.take() {
            let done = write_results(writer, pending, &records, bar).map_err(|e| {
                e.context(format!(
                    "in the chunk starting at input {}",
                    stats.texts + 1
                ))
            })?;
            stats.texts += done.texts;
            stats.tokens += done.tokens;
            bar.set_position(reader.bytes_read);
            bar.set_message(rate(&stats));
        }
        match next {
            Some(n) => in_flight = Some(n),
            None => return Ok(stats),
        }
    }
}

/// Shifts the input index in an error from chunk-relative to stream-relative numbering.
fn offset_error(error: gguf_embed::Error, offset: usize) -> anyhow::Error {
    match error {
        gguf_embed::Error::TooLong { index, tokens, max } => {
            anyhow::anyhow!(gguf_embed::Error::TooLong {
                index: index + offset,
                tokens,
                max
            })
        }
        gguf_embed::Error::InputTooLarge { index, bytes } => {
            anyhow::anyhow!(gguf_embed::Error::InputTooLarge {
                index: index + offset,
                bytes
            })
        }
        other => other.into(),
    }
}

fn rate(stats: &Stats) -> String {
    let secs = stats.started.elapsed().as_secs_f64().max(1e-9);
    format!(
        "{} texts, {:.0} texts/s, {:.0} tokens/s",
        stats.texts,
        stats.texts as f64 / secs,
        stats.tokens as f64 / secs
    )
}

fn texts_of(records: &[Record]) -> Vec<&str> {
    records.iter().map(|r| r.text.as_str()).collect()
}

fn write_results<W: Write>(
    writer: &mut VectorWriter<W>,
    pending: PendingEmbeddings,
    records: &[Record],
    bar: &ProgressBar,
) -> Result<Stats> {
    let started = Instant::now();
    let embeddings = pending.wait()?;
    let mut tokens = 0;
    for (embedding, record) in embeddings.iter().zip(records) {
        writer.write(&embedding.vector, record.id.as_ref())?;
        tokens += embedding.tokens;
    }
    bar.inc(0);
    Ok(Stats {
        texts: embeddings.len(),
        tokens,
        started,
    })
}

/// stdout, or a file written next to its final name and renamed into place on success, so an
/// interrupted run never leaves a truncated output file behind.
struct Output {
    target: Option<(PathBuf, PathBuf)>,
    writer: Option<Box<dyn Write>>,
}

impl Output {
    fn create(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self {
                target: None,
                writer: Some(Box::new(BufWriter::with_capacity(
                    1 << 16,
                    io::stdout().lock(),
                ))),
            });
        };
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = File::create(&partial)
            .with_context(|| format!("cannot create the output file {}", partial.display()))?;
        Ok(Self {
            target: Some((partial, path.to_path_buf())),
            writer: Some(Box::new(BufWriter::with_capacity(1 << 16, file))),
        })
    }

    fn writer(&mut self) -> OutputWriter<'_> {
        OutputWriter(self.writer.as_mut().expect("writer taken once"))
    }

    fn commit(mut self) -> Result<()> {
        if let Some(mut w) = self.writer.take() {
            w.flush()?;
        }
        if let Some((partial, path)) = self.target.take() {
            std::fs::rename(&partial, &path)
                .with_context(|| format!("cannot write the output file {}", path.display()))?;
        }
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Some((partial, _)) = &self.target {
            let _ = std::fs::remove_file(partial);
        }
    }
}

/// A borrowed writer, so the vector writer does not own the output.
struct OutputWriter<'a>(&'a mut Box<dyn Write>);

impl Write for OutputWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
