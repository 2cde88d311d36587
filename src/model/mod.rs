//! Pure per-machine model: from samples to machine events (state, counter deltas, product, reason).
