//! YAML configuration: the file's shape (`types`), human durations, loading and validation with key paths.

pub mod duration;
pub mod types;

pub use duration::{ByteSize, HumanDuration};
pub use types::*;
