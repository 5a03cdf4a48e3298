//! Batching policy: which pending sequences share the next decode.
//!
//! This is the "what to batch" half of the engine (the context is the "how to run it" half):
//! pure functions over sequence lengths, so the policy is tested without a model.

/// How much one decode may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Tokens across all sequences of the decode.
    pub tokens: usize,
    /// Sequences in the decode.
    pub sequences: usize,
}

/// How many pending sequences a pick looks at before settling for what it has. Bounds the
/// cost of a pick when many sequences are queued and little room is left.
pub(crate) const SCAN_LIMIT: usize = 4096;

/// Chooses the sequences of the next decode from the pending ones, given in queue order, and
/// returns their positions in that order.
///
/// The first pending sequence is always taken, so nothing starves and a sequence longer than
/// the token limit still runs (alone: the caller gives it a larger context). Then every later
/// sequence that still fits is added (first fit), until the decode is full.
pub fn pick_next(lengths: impl IntoIterator<Item = usize>, limits: DecodeLimits) -> Vec<usize> {
    let mut lengths = lengths.into_iter().enumerate();
    let Some((_, first)) = lengths.next() else {
        return Vec::new();
    };
    let mut picked = vec![0];
    if first >= limits.tokens {
        return picked;
    }
    let mut room = limits.tokens - first;
    for (position, len) in lengths.take(SCAN_LIMIT) {
        if picked.len() == limits.sequences || room == 0 {
            break;
        }
        if len <= room {
            picked.push(position);
            room -= len;
        }
    }
    picked
}

/// The context size that holds a decode of `tokens` tokens: at least the configured batch
/// size, rounded up to llama.cpp's 256-token granularity.
pub fn context_size_for(tokens: usize, batch_tokens: usize) -> usize {
    tokens.max(batch_tokens).next_multiple_of(256)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: DecodeLimits = DecodeLimits {
        tokens: 100,
        sequences: 3,
    };

    #[test]
    fn nothing_pending_picks_nothing() {
        assert!(pick_next([], LIMITS).is_empty());
    }

    #[test]
    fn packs_in_order_by_first_fit() {
        assert_eq!(pick_next([40, 70, 50, 5], LIMITS), [0, 2, 3]);
        assert_eq!(pick_next([10, 10, 10, 10], LIMITS), [0, 1, 2]);
        assert_eq!(pick_next([60, 40, 1], LIMITS), [0, 1]);
    }

    #[test]
    fn a_long_first_sequence_runs_alone() {
        assert_eq!(pick_next([150, 1, 1], LIMITS), [0]);
        assert_eq!(pick_next([100, 1], LIMITS), [0]);
    }

    #[test]
    fn never_exceeds_the_limits_after_the_first() {
        let lengths = [7, 13, 2, 99, 31, 50, 1, 1, 64];
        for tokens in 1..120 {
            for sequences in 1..6 {
                let limits = DecodeLimits { tokens, sequences };
                let picked = pick_next(lengths, limits);
                assert_eq!(picked[0], 0);
                assert!(picked.len() <= sequences.max(1));
                let total: usize = picked.iter().map(|&i| lengths[i]).sum();
                assert!(total <= tokens.max(lengths[0]), "{picked:?} for {limits:?}");
                assert!(picked.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }

    #[test]
    fn context_sizes_round_up() {
        assert_eq!(context_size_for(10, 1024), 1024);
        assert_eq!(context_size_for(1500, 1024), 1536);
        assert_eq!(context_size_for(2000, 500), 2048);
    }
}
