//! Before/after evidence report (reads the store). Arrives with its own issue.
