//! Keeping an index current for as long as a process runs (`index --watch`, the MCP server):
//! a lexical pass whenever files change or a pass is asked for, and between passes the
//! embedding queue drained group by group, interrupted as soon as something changes so that
//! changed files are searchable before the rest of the queue is embedded. A one-shot update
//! is the same two steps, draining to the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use std::path::Path;

use super::watch::{Batch, Changes, DEFAULT_DEBOUNCE};
use super::{Index, IndexError, IndexOptions, UpdateEvent, UpdateReport};
use crate::Embedder;

/// Asks a running [`Index::keep_current`] for things only it can do, from any thread.
#[derive(Debug, Default)]
pub struct KeepControl {
    reindex: AtomicBool,
}

impl KeepControl {
    /// Asks for the index to be emptied before the next pass (then ask for a pass with the
    /// [`Changes`]' requester).
    pub fn request_reindex(&self) {
        self.reindex.store(true, Ordering::SeqCst);
    }
}

/// What [`Index::keep_current`] is doing.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeepEvent<'a> {
    /// A pass starts, for these changes (the first pass is a request).
    Started(Batch),
    /// Progress of the pass's lexical step or of the embedding.
    Progress(&'a UpdateEvent),
    /// The lexical step is done: every change is searchable lexically.
    Written(&'a UpdateReport),
    /// The embedding after the pass stopped: the queue is empty (`pending_chunks` is 0), or
    /// more changes came and the next pass starts.
    Passed(&'a UpdateReport),
    /// The pass failed; the next change or request tries again.
    Failed(&'a IndexError),
}

impl Index {
    /// Keeps the index current with `repo` until `changes` stops (never, while its watcher
    /// lives): a pass now, then one for every batch of changes or requests. Each pass writes
    /// the changes lexically, then embeds the queue until it is empty or more changes come.
    /// Failed passes are reported to `on` and the next batch tries again; only a watcher that
    /// fails is an error.
    pub fn keep_current(
        &mut self,
        repo: &Path,
        embedder: &Embedder,
        options: &IndexOptions,
        changes: &Changes,
        control: &KeepControl,
        on: &dyn Fn(KeepEvent<'_>),
    ) -> Result<(), IndexError> {
        let mut batch = Batch {
            requested: true,
            ..Batch::default()
        };
        loop {
            on(KeepEvent::Started(batch));
            let progress = |e: &UpdateEvent| on(KeepEvent::Progress(e));
            match self.pass_once(repo, embedder, options, changes, control, &progress, on) {
                Ok(report) => on(KeepEvent::Passed(&report)),
                Err(e) => on(KeepEvent::Failed(&e)),
            }
            match changes.next_batch(DEFAULT_DEBOUNCE)? {
                Some(next) => batch = next,
                None => return Ok(()),
            }
        }
    }

    /// One pass of [`keep_current`](Self::keep_current): the lexical step, then the
    /// embedding until the queue is empty or `changes` has something new.
    #[allow(clippy::too_many_arguments)]
    fn pass_once(
        &mut self,
        repo: &Path,
        embedder: &Embedder,
        options: &IndexOptions,
        changes: &Changes,
        control: &KeepControl,
        progress: &dyn Fn(&UpdateEvent),
        on: &dyn Fn(KeepEvent<'_>),
    ) -> Result<UpdateReport, IndexError> {
        let started = Instant::now();
        if control.reindex.swap(false, Ordering::SeqCst) {
            self.clear(embedder, options)?;
        }
        let mut report = self.update_lexical(repo, embedder, options, progress)?;
        on(KeepEvent::Written(&report));
        // A watcher that fails reports it at the next batch: stop embedding for it now.
        let until = || changes.has_pending().unwrap_or(true);
        let embedded = self.embed_pending(embedder, options, &until, progress)?;
        report.add(&embedded);
        report.seconds = started.elapsed().as_secs_f64();
        self.record_run(&report)?;
        Ok(report)
    }
}
