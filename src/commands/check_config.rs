//! `check-config -c FILE`: a short summary when valid (exit 0), or every problem with its key path (exit 1).

use std::fmt::Write as _;
use std::path::Path;

use jiff::Timestamp;

use crate::config::{self, Config, MachineConfig, ShiftConfig, Weekday};
use crate::sample::Signal;

/// Check the file and print the outcome on stdout; returns the exit code.
pub fn run(path: &Path) -> i32 {
    let (text, code) = report(path, Timestamp::now());
    print!("{text}");
    code
}

/// The text `check-config` prints and its exit code, with `now` for the next shift start.
pub fn report(path: &Path, now: Timestamp) -> (String, i32) {
    match config::load(path) {
        Ok(config) => (summary(path, &config, now), 0),
        Err(errors) => (errors.report(path), 1),
    }
}

/// The summary of a valid config.
pub fn summary(path: &Path, c: &Config, now: Timestamp) -> String {
    let mut out = String::new();
    let hash = c.hash();
    let _ = writeln!(
        out,
        "{} is valid (config hash {})",
        path.display(),
        &hash[..12]
    );
    let _ = writeln!(out, "site {} · time zone {}", c.site, c.timezone);
    let broker = match c.mqtt.broker {
        config::BrokerMode::External => "broker",
        config::BrokerMode::Embedded => "embedded broker",
    };
    let _ = writeln!(
        out,
        "publishing to {broker} {}:{} under {}/{}/…",
        c.mqtt.host, c.mqtt.port, c.mqtt.topic_prefix, c.site
    );
    let _ = writeln!(out, "storage {}", c.storage.path.display());
    let _ = writeln!(out, "machines ({}):", c.machines.len());
    let width = c.machines.iter().map(|m| m.id.len()).max().unwrap_or(0);
    for m in &c.machines {
        let signals: Vec<&str> = Signal::ALL
            .iter()
            .filter(|r| m.signal(**r).is_some())
            .map(|r| r.as_str())
            .collect();
        let signals = if signals.is_empty() {
            "from mqtt_inputs".to_owned()
        } else {
            signals.join(", ")
        };
        let _ = writeln!(
            out,
            "  {:width$}  line {} · {} · signals: {signals}",
            m.id,
            m.line,
            source_text(m)
        );
    }
    for t in &c.mqtt_inputs {
        let _ = writeln!(
            out,
            "  mqtt input {} → {} (machine id from segment {})",
            t.topic, t.signal, t.machine_segment
        );
    }
    if c.shifts.is_empty() {
        let _ = writeln!(out, "shifts: none (hourly windows only)");
    } else {
        let _ = writeln!(out, "shifts ({}):", c.shifts.len());
        for s in &c.shifts {
            let _ = writeln!(out, "  {}", shift_text(s));
        }
    }
    if !c.non_production_dates.is_empty() {
        let _ = writeln!(
            out,
            "non-production dates: {}",
            c.non_production_dates.join(", ")
        );
    }
    match c.next_shift_start(now) {
        Some((shift, at)) => {
            let _ = writeln!(
                out,
                "next shift: {} starts {}",
                shift.name,
                at.strftime("%a %Y-%m-%d %H:%M %Z")
            );
        }
        None if c.shifts.is_empty() => {}
        None => {
            let _ = writeln!(out, "next shift: none in the next two weeks");
        }
    }
    out
}

fn source_text(m: &MachineConfig) -> String {
    if let Some(mb) = &m.source.modbus {
        let link = match (&mb.host, &mb.serial) {
            (Some(h), _) => format!("modbus tcp {h}:{}", mb.port),
            (None, Some(s)) => format!("modbus rtu {} {} baud", s.port, s.baud),
            (None, None) => "modbus".to_owned(),
        };
        format!("{link} unit {} every {}", mb.unit, mb.interval)
    } else if let Some(mq) = &m.source.mqtt {
        match &mq.topic {
            Some(t) => format!("mqtt {t}"),
            None => "mqtt".to_owned(),
        }
    } else {
        "mqtt_inputs".to_owned()
    }
}

fn shift_text(s: &ShiftConfig) -> String {
    let days = if s.days.len() == 7 {
        "every day".to_owned()
    } else {
        s.days
            .iter()
            .map(|d| day_name(*d))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let night = if s.crosses_midnight() {
        " (ends next day)"
    } else {
        ""
    };
    let breaks = match s.breaks.len() {
        0 => String::new(),
        1 => ", 1 break".to_owned(),
        n => format!(", {n} breaks"),
    };
    format!("{} {}–{}{night} · {days}{breaks}", s.name, s.start, s.end)
}

fn day_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}
