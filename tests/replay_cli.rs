//! `replay` as a command: bad lines are reported with their line number and make the exit code 1.

#[path = "fixtures/oee/support.rs"]
mod support;

use support::*;

#[test]
fn bad_lines_are_reported_with_their_number_and_processing_continues() {
    let dir = tempfile::tempdir().unwrap();
    let samples = write_samples(
        dir.path(),
        "bad.jsonl",
        &[
            r#"{"ts":"2024-03-04T06:00:00Z","machine":"press-1","signal":"running","value":true}"#
                .into(),
            "this is not json".into(),
            r#"{"ts":"2024-03-04T06:00:00Z","machine":"nobody","signal":"running","value":true}"#
                .into(),
            r#"{"ts":"2024-03-04T07:00:00Z","machine":"press-1","signal":"speed","value":3}"#
                .into(),
            r#"{"ts":"2024-03-04T14:00:00Z","machine":"press-1","signal":"running","value":false}"#
                .into(),
        ],
    );
    let r = replay(&fixture("s1-vorne.yaml"), &samples, &[]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    for n in ["line 2:", "line 3:", "line 4:"] {
        assert!(r.stderr.contains(n), "{n} missing in {}", r.stderr);
    }
    assert!(r.stderr.contains("nobody"));
    let shift = r.shift("day");
    assert_eq!(
        shift["run_time_s"], 25200.0,
        "good lines were still replayed"
    );
}

#[test]
fn until_closes_windows_past_the_last_sample() {
    let dir = tempfile::tempdir().unwrap();
    let samples = write_samples(
        dir.path(),
        "short.jsonl",
        &[
            r#"{"ts":"2024-03-04T06:00:00Z","machine":"press-1","signal":"running","value":true}"#
                .into(),
        ],
    );
    let none = replay(&fixture("s1-vorne.yaml"), &samples, &[]);
    assert_eq!(none.code, Some(0));
    assert!(none.payloads("/oee/shift").is_empty());
    let r = replay(
        &fixture("s1-vorne.yaml"),
        &samples,
        &["--until", "2024-03-04T14:00:00Z"],
    );
    assert_eq!(r.payloads("/oee/hour").len(), 8);
    close(&r.shift("day")["planned_time_s"], 25200.0, "planned");
}
