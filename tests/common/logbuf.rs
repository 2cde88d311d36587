//! A log sink for tests: a `tracing_subscriber` writer that keeps every byte for later assertions.

use std::sync::{Arc, Mutex};

/// Shared buffer of captured log output; clone it into the subscriber's writer.
#[derive(Clone, Default)]
pub struct LogBuf(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
