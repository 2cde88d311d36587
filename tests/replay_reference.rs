//! The reference scenarios of `shared/reference/oee/` through the real `replay` command, to 1e-6.

#[path = "fixtures/oee/support.rs"]
mod support;

use serde_json::Value;
use shopfloor_agent::metrics::Summary;
use support::*;

#[test]
fn s1_vorne_worked_example_matches_every_expected_value() {
    let r = replay(
        &fixture("s1-vorne.yaml"),
        &fixture("s1-vorne.samples.jsonl"),
        &[],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let exp = expected("s1-vorne.expected.json");
    let shifts = r.payloads("/oee/shift");
    assert_eq!(shifts.len(), 1, "one shift closed");
    matches_expected(shifts[0], &exp["expected"], "s1");
    assert_eq!(shifts[0]["schema"], "shopfloor.summary.v1");
    assert_eq!(shifts[0]["site"], "reference");
    assert_eq!(shifts[0]["window"]["kind"], "shift");
}

#[test]
fn s1_hours_add_up_to_the_shift() {
    let r = replay(
        &fixture("s1-vorne.yaml"),
        &fixture("s1-vorne.samples.jsonl"),
        &[],
    );
    let hours = r.payloads("/oee/hour");
    assert_eq!(hours.len(), 8);
    let shift = r.shift("day");
    for k in [
        "planned_time_s",
        "run_time_s",
        "downtime_s",
        "downtime_count",
        "total_count",
        "good_count",
        "reject_count",
    ] {
        let sum: f64 = hours.iter().map(|h| h[k].as_f64().unwrap()).sum();
        close(&shift[k], sum, k);
    }
}

#[test]
fn s3_shift_change_matches_both_shifts_the_day_and_the_stops() {
    let r = replay(
        &fixture("s3-shift-change.yaml"),
        &fixture("s3-shift-change.samples.jsonl"),
        &["--until", "2024-03-05T00:00:00Z"],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let exp = expected("s3-shift-change.expected.json");
    for name in ["A", "B"] {
        matches_expected(r.shift(name), &exp["expected"]["shifts"][name], name);
    }
    // The day window of the engine and the ratio of sums of the two shifts both give the expected figures.
    let days = r.payloads("/oee/day");
    assert_eq!(days.len(), 1);
    matches_expected(days[0], &exp["expected"]["day_ratio_of_sums"], "day window");
    let parts: Vec<Summary> = ["A", "B"]
        .iter()
        .map(|n| serde_json::from_value(r.shift(n).clone()).unwrap())
        .collect();
    let agg = Summary::aggregate(&parts).unwrap();
    let agg = serde_json::to_value(&agg).unwrap();
    matches_expected(&agg, &exp["expected"]["day_ratio_of_sums"], "aggregate");

    let stops = r.payloads("/stop");
    let want = exp["expected"]["stop_events"].as_array().unwrap();
    assert_eq!(
        stops.len(),
        want.len(),
        "each stop published once: {stops:#?}"
    );
    for (got, want) in stops.iter().zip(want) {
        assert_eq!(got["start"], want["start"]);
        assert_eq!(got["end"], want["end"]);
        close(
            &got["duration_s"],
            want["duration_s"].as_f64().unwrap(),
            "duration",
        );
        assert_eq!(got["category"], "stopped");
        assert_eq!(got["small_stop"], false);
    }
}

#[test]
fn s3_without_until_closes_only_windows_ending_by_the_last_sample() {
    let r = replay(
        &fixture("s3-shift-change.yaml"),
        &fixture("s3-shift-change.samples.jsonl"),
        &[],
    );
    assert_eq!(r.payloads("/oee/shift").len(), 2);
    assert!(
        r.payloads("/oee/day").is_empty(),
        "the day ends at midnight"
    );
    assert!(r.lines.iter().all(|l| l["topic"]
        .as_str()
        .is_some_and(|t| !t.ends_with("/oee/current"))));
    let states: Vec<&Value> = r.payloads("/state");
    assert!(!states.is_empty());
    assert!(r
        .lines
        .iter()
        .filter(|l| l["topic"].as_str().unwrap().ends_with("/state"))
        .all(|l| l["retain"] == true));
}
