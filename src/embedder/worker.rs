//! The engine worker: one thread that owns the llama.cpp context and packs the sequences of
//! every queued request into shared decodes.
//!
//! A `LlamaContext` cannot move between threads, and one context with batched decodes beats
//! several contexts competing for the same cores, so every [`Embedder`](super::Embedder) clone
//! talks to this one thread over a channel.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::time::Instant;

use super::options::{DecodeObserver, DecodeStats, DecodeTurns, Priority};
use crate::batch::{DecodeLimits, SCAN_LIMIT, context_size_for, pick_next};
use crate::engine::{Context, ContextParams, Model};
use crate::error::{Error, Result};

/// Token sequences to embed, and where to send their hidden states.
pub(crate) struct Job {
    /// Sequences, each ending with the end-of-text token.
    pub seqs: Vec<Vec<i32>>,
    /// Receives `n_embd` floats per sequence, in input order, or the error that stopped it.
    pub reply: oneshot::Sender<Result<Vec<f32>>>,
    /// Set by the requester when it no longer wants the result.
    pub cancelled: Arc<AtomicBool>,
    /// Which jobs' sequences are decoded first (see `plan`).
    pub priority: Priority,
}

/// What the worker shares with the embedder handles.
#[derive(Clone)]
pub(crate) struct Shared {
    /// Sequences queued or running (incremented by `submit`, decremented here).
    pub queued: Arc<AtomicUsize>,
    /// Told about every decode.
    pub observer: Option<Arc<DecodeObserver>>,
    /// Held during each decode, when engines take turns.
    pub turns: Option<DecodeTurns>,
}

/// Fixed settings of the worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkerConfig {
    /// The context shape used for ordinary decodes.
    pub base: ContextParams,
    /// The largest context ever needed (the longest allowed sequence).
    pub max_context: usize,
    /// Decode each job's longest sequences first.
    pub sort_by_length: bool,
    /// A token for the probe that locates the token embeddings (the end-of-text token).
    pub probe_token: i32,
}

/// A job being worked on.
struct Active {
    job: Job,
    /// Indices of sequences not yet decoded, longest first (unless configured otherwise), so a
    /// job's long sequences share one enlarged context instead of alternating with short ones.
    pending: Vec<usize>,
    /// Which sequences have their row in `rows`.
    done: Vec<bool>,
    rows: Vec<f32>,
    remaining: usize,
}

impl Active {
    fn new(job: Job, n_embd: usize, sort_by_length: bool) -> Self {
        let mut pending: Vec<usize> = (0..job.seqs.len()).collect();
        if sort_by_length {
            pending.sort_by_key(|&i| std::cmp::Reverse(job.seqs[i].len()));
        }
        Self {
            done: vec![false; job.seqs.len()],
            rows: vec![0.0; job.seqs.len() * n_embd],
            remaining: job.seqs.len(),
            pending,
            job,
        }
    }

    fn cancelled(&self) -> bool {
        self.job.cancelled.load(Ordering::Relaxed)
    }
}

/// One sequence chosen for a decode: which active job, which of its sequences.
#[derive(Clone, Copy)]
struct Slot {
    job: usize,
    seq: usize,
}

/// Runs the worker until every sender is gone. `ready` receives the outcome of creating the
/// first context, so configuration errors surface in `Embedder::new`.
pub(crate) fn run(
    model: Arc<Model>,
    config: WorkerConfig,
    shared: Shared,
    jobs: Receiver<Job>,
    ready: Sender<Result<()>>,
) {
    // Before taking requests, a probe shows where this model's token embeddings lie, so their
    // pages (mapped at load) are released from the start: the first decode's buffers then
    // never sit on top of them (peak RSS). The probe stops at the embedding lookup; the one-
    // token decode that did this before cost a one-shot run about 40 ms of 0.5 s.
    let probe = |context: &mut Context| -> Result<()> {
        context.locate_token_embd(config.probe_token)?;
        model.release_sparse_pages();
        Ok(())
    };
    let mut context = match Context::new(&model, config.base).and_then(|mut c| {
        probe(&mut c)?;
        Ok(c)
    }) {
        Ok(context) => {
            let _ = ready.send(Ok(()));
            Some(context)
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let n_embd = model.n_embd();
    let mut queue: VecDeque<Active> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match jobs.recv() {
                Ok(job) => queue.push_back(Active::new(job, n_embd, config.sort_by_length)),
                Err(_) => return,
            }
        }
        while let Ok(job) = jobs.try_recv() {
            queue.push_back(Active::new(job, n_embd, config.sort_by_length));
        }
        drop_cancelled(&mut queue, &shared.queued);
        let Some(slots) = plan(&queue, config) else {
            continue;
        };
        let tokens: usize = slots.iter().map(|s| seq_len(&queue, *s)).sum();
        let context = match fit_context(&model, &mut context, tokens, config) {
            Ok(context) => context,
            Err(e) => {
                fail(&mut queue, &slots, e, &shared.queued);
                continue;
            }
        };
        let seqs: Vec<&[i32]> = slots
            .iter()
            .map(|s| queue[s.job].job.seqs[s.seq].as_slice())
            .collect();
        let turn = shared
            .turns
            .as_ref()
            .map(|t| t.0.lock().unwrap_or_else(|p| p.into_inner()));
        let started = Instant::now();
        let result = context.decode(&seqs);
        drop(turn);
        // The rows this decode read brought their neighbourhoods back (see SparsePages).
        model.release_sparse_pages();
        if let Some(observer) = &shared.observer {
            let mut requests: Vec<usize> = slots.iter().map(|s| s.job).collect();
            requests.dedup();
            observer(&DecodeStats {
                sequences: slots.len(),
                tokens,
                requests: requests.len(),
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        match result {
            Ok(rows) => scatter(&mut queue, &slots, &rows, n_embd),
            Err(e) => fail(&mut queue, &slots, e, &shared.queued),
        }
        finish_done(&mut queue, &shared.queued);
    }
}

fn seq_len(queue: &VecDeque<Active>, slot: Slot) -> usize {
    queue[slot.job].job.seqs[slot.seq].len()
}

/// Picks the next decode across all queued jobs (what it decoded leaves their pending lists in
/// `scatter`). Jobs of a higher priority come first, oldest first within a priority. When the most
/// urgent pending job is a query, only queries share the decode: a query then waits at most for
/// the decode in progress, never for documents packed beside it.
fn plan(queue: &VecDeque<Active>, config: WorkerConfig) -> Option<Vec<Slot>> {
    let candidates = candidates(queue);
    let limits = DecodeLimits {
        tokens: config.base.n_ctx as usize,
        sequences: config.base.n_seq_max as usize,
    };
    let picked = pick_next(candidates.iter().map(|&s| seq_len(queue, s)), limits);
    if picked.is_empty() {
        return None;
    }
    Some(picked.into_iter().map(|i| candidates[i]).collect())
}

/// The pending sequences a decode may take, in the order `pick_next` should consider them:
/// by job priority (highest first, a stable order so that older jobs stay first), queries
/// alone when any query is pending.
fn candidates(queue: &VecDeque<Active>) -> Vec<Slot> {
    let mut jobs: Vec<usize> = (0..queue.len())
        .filter(|&j| !queue[j].pending.is_empty())
        .collect();
    jobs.sort_by_key(|&j| std::cmp::Reverse(queue[j].job.priority));
    let top = jobs.first().map(|&j| queue[j].job.priority);
    jobs.into_iter()
        .filter(|&j| top != Some(Priority::Query) || queue[j].job.priority == Priority::Query)
        .flat_map(|job| queue[job].pending.iter().map(move |&seq| Slot { job, seq }))
        .take(SCAN_LIMIT)
        .collect()
}

/// Returns a context that holds `tokens` tokens: grows it for a long sequence, and shrinks it
/// back to the base size once a decode fits again, so a single long text does not keep a
/// large KV cache alive. The old context is freed before the new one is made.
fn fit_context<'c, 'm>(
    model: &'m Model,
    slot: &'c mut Option<Context<'m>>,
    tokens: usize,
    config: WorkerConfig,
) -> Result<&'c mut Context<'m>> {
    let base = config.base.n_ctx as usize;
    let largest = config.max_context.next_multiple_of(256);
    let wanted = context_size_for(tokens, base).min(largest);
    if tokens > wanted {
        return Err(Error::Compute(format!(
            "a sequence of {tokens} tokens exceeds the largest context of {largest}"
        )));
    }
    let current = slot.as_ref().map(|c| c.params().n_ctx as usize);
    if current == Some(wanted) {
        return Ok(slot.as_mut().expect("checked above"));
    }
    tracing::debug!(from = ?current, to = wanted, "resizing the llama.cpp context");
    *slot = None;
    let params = ContextParams {
        n_ctx: wanted as u32,
        ..config.base
    };
    Ok(slot.insert(Context::new(model, params)?))
}

/// Copies each decoded row into its job's result, in the job's input order.
fn scatter(queue: &mut VecDeque<Active>, slots: &[Slot], rows: &[f32], n_embd: usize) {
    for (slot, row) in slots.iter().zip(rows.chunks_exact(n_embd)) {
        let active = &mut queue[slot.job];
        active.rows[slot.seq * n_embd..(slot.seq + 1) * n_embd].copy_from_slice(row);
        active.done[slot.seq] = true;
        active.remaining -= 1;
    }
    for active in queue.iter_mut() {
        let done = &active.done;
        active.pending.retain(|&i| !done[i]);
    }
}

/// Fails every job that had a sequence in a failed decode.
fn fail(queue: &mut VecDeque<Active>, slots: &[Slot], error: Error, queued: &AtomicUsize) {
    let mut failed: Vec<usize> = slots.iter().map(|s| s.job).collect();
    failed.sort_unstable();
    failed.dedup();
    for &job in failed.iter().rev() {
        if let Some(active) = queue.remove(job) {
            queued.fetch_sub(active.job.seqs.len(), Ordering::Relaxed);
            let _ = active.job.reply.send(Err(error.for_another_request()));
        }
    }
}

/// Removes cancelled jobs: their sequences not yet decoded never run. A waiter still there
/// (cancelled through a `Canceller`) is told.
fn drop_cancelled(queue: &mut VecDeque<Active>, queued: &AtomicUsize) {
    let mut i = 0;
    while i < queue.len() {
        if queue[i].cancelled() {
            let active = queue.remove(i).expect("index in range");
            queued.fetch_sub(active.job.seqs.len(), Ordering::Relaxed);
            let _ = active.job.reply.send(Err(Error::Cancelled));
        } else {
            i += 1;
        }
    }
}

/// Sends the results of completed jobs.
fn finish_done(queue: &mut VecDeque<Active>, queued: &AtomicUsize) {
    let mut i = 0;
    while i < queue.len() {
        if queue[i].remaining == 0 {
            let active = queue.remove(i).expect("index in range");
            queued.fetch_sub(active.job.seqs.len(), Ordering::Relaxed);
            let _ = active.job.reply.send(Ok(active.rows));
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(lengths: &[usize], priority: Priority) -> Active {
        let (reply, _) = oneshot::channel();
        let job = Job {
            seqs: lengths.iter().map(|&n| vec![1; n]).collect(),
            reply,
            cancelled: Arc::new(AtomicBool::new(false)),
            priority,
        };
        Active::new(job, 4, false)
    }

    fn picked(queue: &VecDeque<Active>) -> Vec<(usize, usize)> {
        candidates(queue).iter().map(|s| (s.job, s.seq)).collect()
    }

    #[test]
    fn queries_come_first_and_alone_then_normal_before_background() {
        let mut queue: VecDeque<Active> = VecDeque::new();
        queue.push_back(active(&[5, 5], Priority::Background));
        queue.push_back(active(&[3], Priority::Normal));
        queue.push_back(active(&[2], Priority::Query));
        queue.push_back(active(&[4], Priority::Query));
        // Only the queries, oldest first.
        assert_eq!(picked(&queue), [(2, 0), (3, 0)]);
        queue.remove(3);
        queue.remove(2);
        // No query: ordinary requests before background ones, each in order.
        assert_eq!(picked(&queue), [(1, 0), (0, 0), (0, 1)]);
        // A job with nothing left to decode takes no place.
        queue[1].pending.clear();
        assert_eq!(picked(&queue), [(0, 0), (0, 1)]);
    }
}
