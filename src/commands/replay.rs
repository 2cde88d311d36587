//! `replay`: run the engine on recorded samples (JSON lines) with no network and print, one JSON object a
//! line, every message `run` would publish (`oee/current` excepted).

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::cli::ReplayArgs;
use crate::config::Config;
use crate::metrics::{Engine, Ingested, Output};
use crate::publish::message::to_message;
use crate::sample::{MachineId, Sample, Signal, Value};

/// What a replay went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Lines read (blank lines excluded).
    pub lines: u64,
    /// Samples fed to the engine.
    pub samples: u64,
    /// Lines that could not be used.
    pub bad_lines: u64,
    /// Samples dropped as older than the reorder window.
    pub late: u64,
    /// Messages printed.
    pub messages: u64,
}

#[derive(Deserialize)]
struct RawSample<'a> {
    ts: Timestamp,
    #[serde(borrow)]
    machine: Cow<'a, str>,
    signal: Signal,
    value: Option<Value>,
}

#[derive(Serialize)]
struct Line<'a> {
    topic: &'a str,
    retain: bool,
    payload: &'a serde_json::Value,
}

/// Read and validate the config file (every problem with its key path).
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    crate::config::load(path)
        .map_err(|e| anyhow::anyhow!("invalid configuration {}:\n{e}", path.display()))
}

/// Replay `input` through a fresh engine, writing message lines to `out` and bad-line errors to `err`.
/// At the end, every window ending at or before `until` (default: the last sample) is closed.
pub fn replay(
    config: &Config,
    input: impl BufRead,
    until: Option<Timestamp>,
    mut out: impl Write,
    mut err: impl Write,
) -> anyhow::Result<ReplayStats> {
    let mut engine = Engine::new(config)?;
    let site = config.site.as_str();
    let prefix = config.mqtt.topic_prefix.as_str();
    let mut stats = ReplayStats::default();
    let mut outputs: Vec<Output> = Vec::new();
    let mut last_ts: Option<Timestamp> = None;
    let mut cache: Option<(String, MachineId)> = None;
    let mut input = input;
    let mut buf = Vec::with_capacity(256);
    let mut lineno = 0u64;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        lineno += 1;
        let line = buf.trim_ascii();
        if line.is_empty() {
            continue;
        }
        stats.lines += 1;
        let raw: RawSample<'_> = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => {
                stats.bad_lines += 1;
                writeln!(err, "line {lineno}: not a sample: {e}")?;
                continue;
            }
        };
        let id = match &cache {
            Some((name, id)) if name.as_str() == raw.machine => id.clone(),
            _ => match engine.machine_id(&raw.machine) {
                Some(id) => {
                    cache = Some((raw.machine.to_string(), id.clone()));
                    id
                }
                None => {
                    stats.bad_lines += 1;
                    writeln!(
                        err,
                        "line {lineno}: machine `{}` is not in the configuration",
                        raw.machine
                    )?;
                    continue;
                }
            },
        };
        let sample = Sample {
            ts: raw.ts,
            machine: id,
            signal: raw.signal,
            value: raw.value,
        };
        if last_ts.is_none_or(|t| sample.ts > t) {
            last_ts = Some(sample.ts);
        }
        stats.samples += 1;
        if engine.ingest(&sample, &mut outputs) == Ingested::Late {
            stats.late += 1;
        }
        if !outputs.is_empty() {
            stats.messages += write_outputs(&mut out, site, prefix, &mut outputs)?;
        }
    }
    if let Some(t) = until.or(last_ts) {
        engine.close_until(t, &mut outputs);
    }
    stats.messages += write_outputs(&mut out, site, prefix, &mut outputs)?;
    out.flush()?;
    Ok(stats)
}

fn write_outputs(
    out: &mut impl Write,
    site: &str,
    prefix: &str,
    outputs: &mut Vec<Output>,
) -> io::Result<u64> {
    let mut n = 0;
    for o in outputs.drain(..) {
        let m = to_message(site, prefix, &o);
        serde_json::to_writer(
            &mut *out,
            &Line {
                topic: &m.topic,
                retain: m.retain,
                payload: &m.payload,
            },
        )?;
        out.write_all(b"\n")?;
        n += 1;
    }
    Ok(n)
}

/// `shopfloor-agent replay -c FILE --input samples.jsonl [--until TS]`; exit 1 when a line was bad.
pub fn run(args: &ReplayArgs) -> anyhow::Result<i32> {
    let config = load_config(&args.config)?;
    let until = args
        .until
        .as_deref()
        .map(|u| {
            u.parse::<Timestamp>()
                .with_context(|| format!("--until `{u}` is not an RFC 3339 time"))
        })
        .transpose()?;
    let input: Box<dyn BufRead> = if args.input.as_os_str() == "-" {
        Box::new(BufReader::new(io::stdin().lock()))
    } else {
        let f = File::open(&args.input)
            .with_context(|| format!("cannot open {}", args.input.display()))?;
        Box::new(BufReader::with_capacity(1 << 16, f))
    };
    let stdout = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let stats = replay(&config, input, until, stdout, io::stderr().lock())?;
    if stats.bad_lines > 0 {
        eprintln!(
            "{} of {} lines were bad and skipped",
            stats.bad_lines, stats.lines
        );
        return Ok(1);
    }
    Ok(0)
}
