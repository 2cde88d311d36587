//! Golden tests of config validation: each `tests/fixtures/config/<case>/config.yaml` must give exactly the
//! messages of its `expected.txt` (one per line). `UPDATE_GOLDEN=1 cargo test --test config_golden` rewrites them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;
use shopfloor_agent::config;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.yaml")
}

/// The messages a config text produces, one per line; empty when valid.
fn messages(text: &str) -> Vec<String> {
    match config::from_yaml_str(text) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.issues().iter().map(ToString::to_string).collect(),
    }
}

fn cases() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("tests/fixtures/config exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_golden_case_gives_exactly_its_expected_messages() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for dir in cases() {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(dir.join("config.yaml"))
            .unwrap_or_else(|e| panic!("{name}: config.yaml: {e}"));
        let got = messages(&text);
        let expected_path = dir.join("expected.txt");
        if update {
            let mut body = got.join("\n");
            body.push('\n');
            std::fs::write(&expected_path, body).expect("write expected.txt");
            continue;
        }
        let Ok(expected_text) = std::fs::read_to_string(&expected_path) else {
            failures.push(format!(
                "{name}: no expected.txt (run with UPDATE_GOLDEN=1)"
            ));
            continue;
        };
        let mut expected: Vec<&str> = expected_text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        let mut got_sorted: Vec<&str> = got.iter().map(String::as_str).collect();
        expected.sort_unstable();
        got_sorted.sort_unstable();
        if expected.is_empty() {
            failures.push(format!(
                "{name}: expected.txt lists no message; every case is a bad config"
            ));
        } else if expected != got_sorted {
            failures.push(format!(
                "{name}:\n  expected:\n    {}\n  got:\n    {}",
                expected.join("\n    "),
                got_sorted.join("\n    ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_required_bad_configs_all_have_a_golden_case() {
    let required = [
        "yaml_syntax",
        "unknown_key",
        "wrong_type",
        "duplicate_machine_id",
        "unknown_timezone",
        "overlapping_shifts",
        "break_outside_shift",
        "bad_duration",
        "no_counter_signal",
        "same_register_twice",
        "zero_interval",
        "topic_segment_wildcard",
        "unknown_state_category",
        "address_out_of_range",
        "word_order_on_16bit",
        "product_without_ideal_cycle_time",
        "several_errors_in_two_machines",
    ];
    let present: Vec<String> = cases()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|r| !present.iter().any(|p| p == r))
        .collect();
    assert!(missing.is_empty(), "missing golden cases: {missing:?}");
}

#[test]
fn two_broken_machines_each_report_their_own_errors() {
    let text =
        std::fs::read_to_string(fixtures().join("structural_errors_in_two_machines/config.yaml"))
            .expect("fixture");
    let errors = config::from_yaml_str(&text).expect_err("invalid");
    let machines: Vec<Option<&str>> = errors
        .issues()
        .iter()
        .map(|i| i.machine.as_deref())
        .collect();
    assert!(machines.contains(&Some("press-1")), "{errors}");
    assert!(machines.contains(&Some("press-2")), "{errors}");
}

#[test]
fn example_config_passes_validation() {
    let text = std::fs::read_to_string(example()).expect("config/example.yaml");
    let c = config::from_yaml_str(&text).unwrap_or_else(|e| panic!("example.yaml:\n{e}"));
    assert_eq!(c.machines.len(), 5);
    assert!(c.machines.iter().any(|m| m
        .source
        .modbus
        .as_ref()
        .is_some_and(|mb| mb.serial.is_some())));
    assert!(c.machines.iter().any(|m| m.source.mqtt.is_some()));
    assert!(!c.mqtt_inputs.is_empty());
    assert!(c
        .shifts
        .iter()
        .any(|s| s.crosses_midnight() && !s.breaks.is_empty()));
    let press = c.machine("press-1").expect("press-1");
    assert_eq!(press.products.keys().collect::<Vec<_>>(), ["A", "B"]);
    assert!(press.state_codes.contains_key("1"));
}

/// Every key name in a JSON value tree.
fn keys_of(v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                out.insert(k.clone());
                keys_of(child, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| keys_of(i, out)),
        _ => {}
    }
}

#[test]
fn example_yaml_documents_every_key_of_the_config_types() {
    let text = std::fs::read_to_string(example()).expect("config/example.yaml");
    let c = config::from_yaml_str(&text).unwrap_or_else(|e| panic!("example.yaml:\n{e}"));
    // The serialized form holds every field of every struct in use, set or not (absent options are null).
    let mut keys = std::collections::BTreeSet::new();
    keys_of(&serde_json::to_value(&c).expect("serialize"), &mut keys);
    let undocumented: Vec<&String> = keys
        .iter()
        .filter(|k| !text.contains(&format!("{k}:")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "keys missing from config/example.yaml: {undocumented:?}"
    );
}

#[test]
fn environment_overrides_the_file() {
    let text = std::fs::read_to_string(example()).expect("config/example.yaml");
    let vars = HashMap::from([
        (
            "SHOPFLOOR_AGENT__MQTT__HOST".to_owned(),
            "broker.local".to_owned(),
        ),
        ("SHOPFLOOR_AGENT__MQTT__PORT".to_owned(), "8883".to_owned()),
        (
            "SHOPFLOOR_AGENT__MACHINES__0__SOURCE__MODBUS__HOST".to_owned(),
            "10.1.1.1".to_owned(),
        ),
        (
            "SHOPFLOOR_AGENT__MACHINES__0__PRODUCTS__A".to_owned(),
            "3s".to_owned(),
        ),
    ]);
    let c = config::from_yaml_str_with_env(&text, vars).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.mqtt.host, "broker.local");
    assert_eq!(c.mqtt.port, 8883);
    let press = &c.machines[0];
    assert_eq!(
        press.source.modbus.as_ref().and_then(|m| m.host.as_deref()),
        Some("10.1.1.1")
    );
    assert_eq!(press.products["A"].as_millis(), 3000);
}

#[test]
fn a_bad_environment_override_is_reported_with_its_key() {
    let text = std::fs::read_to_string(example()).expect("config/example.yaml");
    let vars = HashMap::from([(
        "SHOPFLOOR_AGENT__MQTT__KEEP_ALIVE".to_owned(),
        "soon".to_owned(),
    )]);
    let errors = config::from_yaml_str_with_env(&text, vars).expect_err("invalid");
    assert_eq!(errors.len(), 1, "{errors}");
    assert_eq!(errors.issues()[0].path, "mqtt.keep_alive", "{errors}");
    assert!(
        errors
            .to_string()
            .ends_with("(set by SHOPFLOOR_AGENT__MQTT__KEEP_ALIVE)"),
        "{errors}"
    );
}

#[test]
fn counters_fed_by_templates_take_the_template_rollover() {
    use shopfloor_agent::sample::Signal;
    let text = std::fs::read_to_string(example()).expect("config/example.yaml");
    let c = config::from_yaml_str(&text).expect("valid");
    let oven = c.machine("oven-7").expect("oven-7");
    assert_eq!(c.counter_modulus(oven, Signal::TotalCount), Some(65536));
    let press = c.machine("press-1").expect("press-1");
    assert_eq!(c.counter_modulus(press, Signal::TotalCount), Some(1 << 32));
    // A holding register without `type` is a u16: it wraps at 65536.
    let untyped = config::from_yaml_str(&text.replace("address: 102, type: u16", "address: 102"))
        .expect("valid");
    let press = untyped.machine("press-1").expect("press-1");
    assert_eq!(
        press.signal(Signal::RejectCount).and_then(|s| s.data_type),
        None
    );
    assert_eq!(
        untyped.counter_modulus(press, Signal::RejectCount),
        Some(65536)
    );
    let drill = c.machine("drill-4").expect("drill-4");
    assert_eq!(c.counter_modulus(drill, Signal::TotalCount), Some(10000));
    let lathe = c.machine("lathe-2").expect("lathe-2");
    assert_eq!(c.counter_modulus(lathe, Signal::GoodCount), None);
}

#[test]
fn config_hash_is_stable_and_changes_with_the_config() {
    let text = std::fs::read_to_string(example()).expect("config/example.yaml");
    let a = config::from_yaml_str(&text).expect("valid");
    let b = config::from_yaml_str(&text).expect("valid");
    assert_eq!(a.hash(), b.hash());
    assert_eq!(a.hash().len(), 64);
    let c = config::from_yaml_str(&text.replace("live_interval: 10s", "live_interval: 20s"))
        .expect("valid");
    assert_ne!(a.hash(), c.hash());
}

#[test]
fn next_shift_start_skips_non_production_dates_and_follows_the_zone() {
    let text = std::fs::read_to_string(example()).expect("config/example.yaml");
    let c = config::from_yaml_str(&text).expect("valid");
    // Thursday 2026-12-24 15:00 in Toronto: the night shift starts at 22:00 that evening (Thu is a night day).
    let now: jiff::Timestamp = "2026-12-24T20:00:00Z".parse().expect("ts");
    let (shift, at) = c.next_shift_start(now).expect("a next shift");
    assert_eq!(shift.name, "night");
    assert_eq!(at.to_string(), "2026-12-24T22:00:00-05:00[America/Toronto]");
    // Friday 2026-12-25 is a non-production date: after Thursday's night, next is Sunday 27th 22:00.
    let now: jiff::Timestamp = "2026-12-25T12:00:00Z".parse().expect("ts");
    let (shift, at) = c.next_shift_start(now).expect("a next shift");
    assert_eq!(shift.name, "night");
    assert_eq!(at.date().to_string(), "2026-12-27");
}

fn run_check_config(file: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shopfloor-agent"))
        .args(["check-config", "-c"])
        .arg(file)
        .env_remove("RUST_LOG")
        .output()
        .expect("run shopfloor-agent");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_binary_exits_0_with_a_summary_for_the_example() {
    let (code, stdout, stderr) = run_check_config(&example());
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("is valid"), "{stdout}");
    assert!(stdout.contains("press-1"), "{stdout}");
    assert!(stdout.contains("next shift:"), "{stdout}");
}

#[test]
fn check_config_binary_exits_1_listing_every_error_without_debug_dumps() {
    let file = fixtures().join("several_errors_in_two_machines/config.yaml");
    let (code, stdout, stderr) = run_check_config(&file);
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let expected =
        std::fs::read_to_string(fixtures().join("several_errors_in_two_machines/expected.txt"))
            .expect("expected.txt");
    let n = expected.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(stdout.starts_with(&format!("{n} errors in ")), "{stdout}");
    for line in expected.lines().filter(|l| !l.trim().is_empty()) {
        assert!(stdout.contains(line), "missing `{line}` in\n{stdout}");
    }
    assert!(
        stdout.contains(
            "\n  line 10: machines[0] (press-1).signals.total_count.address: 70000 is out of range"
        ),
        "errors carry the line of their key:\n{stdout}"
    );
    for debug_mark in ["panicked", "Some(", "Error {", "ConfigIssue"] {
        assert!(
            !stdout.contains(debug_mark) && !stderr.contains(debug_mark),
            "{stdout}{stderr}"
        );
    }
}

#[test]
fn check_config_binary_reports_a_missing_file_plainly() {
    let (code, stdout, _) = run_check_config(Path::new("/nonexistent/shopfloor.yaml"));
    assert_eq!(code, 1);
    assert!(
        stdout.contains("cannot read /nonexistent/shopfloor.yaml"),
        "{stdout}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn mangled_configs_give_errors_never_panics(cut in 0usize..6000, drop_line in 0usize..200, junk in "[ :{}\\[\\]#&*!|>'\"%@`a-z0-9-]{0,12}") {
        let text = std::fs::read_to_string(example()).expect("config/example.yaml");
        let mut lines: Vec<&str> = text.lines().collect();
        if drop_line < lines.len() {
            lines.remove(drop_line);
        }
        let mut mangled = lines.join("\n");
        let cut = cut.min(mangled.len());
        let cut = (0..=cut).rev().find(|i| mangled.is_char_boundary(*i)).unwrap_or(0);
        mangled.insert_str(cut, &junk);
        if let Err(errors) = config::from_yaml_str(&mangled) {
            prop_assert!(!errors.is_empty());
            for issue in errors.issues() {
                prop_assert!(!issue.to_string().contains("Some("), "{}", issue);
            }
        }
    }
}

const TYPES: [&str; 9] = [
    "bool", "u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64",
];
const KINDS: [&str; 4] = ["coil", "discrete", "holding", "input"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn extreme_numbers_in_register_maps_give_errors_never_panics(
        address in prop_oneof![Just(u32::MAX), Just(65535u32), Just(65533u32), 0u32..70_000],
        other in 0u32..70_000,
        bit in any::<u8>(),
        unit in any::<u8>(),
        t in 0usize..9,
        kind in 0usize..4,
        interval_ms in prop_oneof![Just(0u64), 1u64..5000],
        rollover in prop_oneof![Just(0u64), Just(1u64), Just(u64::MAX), 2u64..100_000],
        stop_after in any::<u64>(),
    ) {
        let text = format!(
            "site: s\ntimezone: UTC\nmachines:\n  - id: m\n    ideal_cycle_time: 1s\n    stop_after: {stop_after}\n    source:\n      modbus: {{ host: h, unit: {unit}, interval: {interval_ms}ms, timeout: 1ms }}\n    signals:\n      total_count: {{ register: {kind}, address: {address}, type: {t}, bit: {bit}, rollover: {rollover} }}\n      good_count: {{ register: {kind}, address: {other}, type: {t} }}\n",
            kind = KINDS[kind],
            t = TYPES[t],
        );
        // Either outcome is fine; a panic fails the test.
        if let Err(errors) = config::from_yaml_str(&text) {
            prop_assert!(!errors.is_empty());
        }
    }
}
