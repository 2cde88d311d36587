//! The demo's live table: machine, state, availability, performance, quality, OEE, parts, current stop.

use std::fmt::Write as _;

use jiff::Timestamp;

use super::agent::LiveView;
use crate::config::StateCategory;

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:5.1}%", x * 100.0))
        .unwrap_or_else(|| "    - ".to_owned())
}

/// Render the table for `view` at `now` (plain text, one line per machine).
pub fn render(view: &LiveView, now: Timestamp) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<13} {:>6} {:>6} {:>6} {:>6} {:>8} {:>7}  current stop",
        "machine", "state", "avail", "perf", "qual", "OEE", "parts", "rejects"
    );
    for st in &view.states {
        let cur = view.current.iter().find(|s| s.machine == st.machine);
        let stop = match st.state {
            StateCategory::Running => String::new(),
            // Unknown starts at the window's opening before the first poll: a duration would mislead.
            StateCategory::Unknown => format!("no valid data since {}", st.ts.strftime("%H:%M:%S")),
            other => {
                let secs = now.duration_since(st.ts).as_secs().max(0);
                let reason = st
                    .reason
                    .as_deref()
                    .map(|r| format!(", reason {r}"))
                    .unwrap_or_default();
                format!(
                    "{} for {}m{:02}s{}",
                    other.as_str(),
                    secs / 60,
                    secs % 60,
                    reason
                )
            }
        };
        let _ = writeln!(
            out,
            "{:<12} {:<13} {:>6} {:>6} {:>6} {:>6} {:>8} {:>7}  {}",
            st.machine,
            st.state.as_str(),
            pct(cur.and_then(|c| c.availability)),
            pct(cur.and_then(|c| c.performance)),
            pct(cur.and_then(|c| c.quality)),
            pct(cur.and_then(|c| c.oee)),
            cur.map(|c| c.total_count).unwrap_or(0),
            cur.map(|c| c.reject_count).unwrap_or(0),
            stop
        );
    }
    let _ = writeln!(out, "outbox: {} message(s) waiting", view.outbox);
    out
}
