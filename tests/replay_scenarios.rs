//! Own scenarios through the real `replay` command: DST night shift, u16 rollover from the register
//! default, a parts-only machine.

#[path = "fixtures/oee/support.rs"]
mod support;

use support::*;

fn line(ts: &str, machine: &str, signal: &str, value: &str) -> String {
    format!(r#"{{"ts":"{ts}","machine":"{machine}","signal":"{signal}","value":{value}}}"#)
}

#[test]
fn paris_night_shift_over_spring_change_with_rollover_and_parts_only_machine() {
    let dir = tempfile::tempdir().unwrap();
    // 22:00 CET = 21:00 UTC; 06:00 CEST = 04:00 UTC; break 01:00–01:30 CET = 00:00–00:30 UTC.
    let mut lines = vec![
        line("2024-03-30T21:00:00Z", "press-1", "running", "true"),
        line("2024-03-30T21:00:00Z", "press-1", "total_count", "65000"),
        line("2024-03-31T04:00:00Z", "press-1", "total_count", "1464"),
    ];
    // saw-2: a part every 20 s from 21:00 to 23:00 UTC, nothing until 23:30, then parts until 04:00.
    let mut n = 0;
    let mut sec = 0;
    while sec <= 7 * 3600 {
        if !(7200 < sec && sec < 9000) {
            let ts = jiff::Timestamp::from_second(1_711_832_400 + sec).unwrap();
            lines.push(line(
                &ts.to_string(),
                "saw-2",
                "total_count",
                &n.to_string(),
            ));
            n += 1;
        }
        sec += 20;
    }
    lines.sort();
    let samples = write_samples(dir.path(), "night.jsonl", &lines);
    let r = replay(&fixture("paris-night.yaml"), &samples, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let shifts = r.payloads("/oee/shift");
    assert_eq!(shifts.len(), 2);
    let press = shifts.iter().find(|s| s["machine"] == "press-1").unwrap();
    close(
        &press["planned_time_s"],
        7.0 * 3600.0 - 1800.0,
        "7 h minus the break",
    );
    // 65000 → 1464 on a u16 register: 65536 − 65000 + 1464 parts.
    assert_eq!(press["total_count"], 2000);
    assert!(press["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "counter_rollover"));
    close(&press["performance"], 20000.0 / 23400.0, "performance");

    let saw = shifts.iter().find(|s| s["machine"] == "saw-2").unwrap();
    // Last part at 23:00:00 UTC, next at 23:30:00 (break 00:00–00:30 is later): 1800 s of downtime.
    close(&saw["downtime_s"], 1800.0, "saw downtime");
    assert_eq!(saw["downtime_count"], 1);
    let stops = r.payloads("/stop");
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0]["machine"], "saw-2");
    assert_eq!(stops[0]["start"], "2024-03-30T23:00:00Z");
    assert_eq!(stops[0]["end"], "2024-03-30T23:30:00Z");
    assert_eq!(
        r.payloads("/oee/hour").len(),
        14,
        "7 local hours for each machine"
    );
}
