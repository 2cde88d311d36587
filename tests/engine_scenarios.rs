//! Engine scenarios computed by hand: counters, products, stop kinds, shifts over midnight and DST,
//! unknown data, parts-only machines, reordering, the agent being down.

#[path = "fixtures/oee/engine_support.rs"]
mod support;

use serde_json::json;
use shopfloor_agent::config::StateCategory;
use shopfloor_agent::metrics::{Engine, Ingested, Output, WindowKind};
use support::*;

const D: &str = "2024-03-04T";

fn at(hms: &str) -> String {
    format!("{D}{hms}Z")
}

#[test]
fn counter_rollover_is_counted_not_lost() {
    let cfg = config(
        "UTC",
        day_shift(),
        json!([{"id": "m", "ideal_cycle_time": "10s",
                "signals": {"running": {}, "total_count": {"register": "holding", "address": 0, "type": "u16"}}}]),
    );
    let out = run(
        &cfg,
        &[
            s(&at("06:00:00"), "m", "running", json!(true)),
            s(&at("06:00:00"), "m", "total_count", json!(65530)),
            s(&at("07:00:00"), "m", "total_count", json!(4)),
        ],
        &at("14:00:00"),
    );
    let sh = one_shift(&out);
    assert_eq!(sh.total_count, 10);
    assert_eq!(sh.good_count, 10, "only total given: good = total");
    assert!(
        sh.flags.contains(&"counter_rollover".to_owned()),
        "{:?}",
        sh.flags
    );
    approx(sh.ideal_time_s, 100.0, "ideal");
    check_invariants(sh);
}

#[test]
fn counter_drop_without_width_is_a_reset_counting_from_zero() {
    let cfg = config("UTC", day_shift(), json!([machine("m", "10s")]));
    let out = run(
        &cfg,
        &[
            s(&at("06:00:00"), "m", "running", json!(true)),
            s(&at("06:00:00"), "m", "total_count", json!(1000)),
            s(&at("07:00:00"), "m", "total_count", json!(1050)),
            s(&at("08:00:00"), "m", "total_count", json!(7)),
        ],
        &at("14:00:00"),
    );
    let sh = one_shift(&out);
    assert_eq!(sh.total_count, 57);
    assert!(sh.flags.contains(&"counter_reset".to_owned()));
    let hours = summaries(&out, WindowKind::Hour);
    let h7 = hours
        .iter()
        .find(|h| h.window.start == t(&at("07:00:00")))
        .unwrap();
    assert!(
        h7.flags.contains(&"counter_reset".to_owned()),
        "flag on the window of the reset"
    );
    assert!(!hours[0].flags.contains(&"counter_reset".to_owned()));
}

#[test]
fn two_products_use_their_own_ideal_cycle_times() {
    let cfg = config(
        "UTC",
        day_shift(),
        json!([{"id": "m", "ideal_cycle_time": "15s", "products": {"A": "10s", "B": "20s"},
                "signals": {"running": {}, "total_count": {}, "product": {}}}]),
    );
    let out = run(
        &cfg,
        &[
            s(&at("06:00:00"), "m", "product", json!("A")),
            s(&at("06:00:00"), "m", "running", json!(true)),
            s(&at("06:00:00"), "m", "total_count", json!(0)),
            // The product change and the counter share the poll at 08:00: those parts are still A's.
            s(&at("08:00:00"), "m", "product", json!("B")),
            s(&at("08:00:00"), "m", "total_count", json!(600)),
            s(&at("10:00:00"), "m", "total_count", json!(900)),
        ],
        &at("14:00:00"),
    );
    let sh = one_shift(&out);
    approx(sh.ideal_time_s, 600.0 * 10.0 + 300.0 * 20.0, "ideal");
    approx(sh.performance.unwrap(), 12000.0 / 28800.0, "performance");
    let a = sh.products.iter().find(|p| p.product == "A").unwrap();
    let b = sh.products.iter().find(|p| p.product == "B").unwrap();
    assert_eq!((a.total_count, b.total_count), (600, 300));
    approx(a.ideal_cycle_time_s, 10.0, "A ideal");
    approx(b.ideal_cycle_time_s, 20.0, "B ideal");
    approx(a.run_time_s, 7200.0, "A run");
    approx(b.run_time_s, 21600.0, "B run");
    approx(a.avg_cycle_time_s.unwrap(), 12.0, "A avg cycle");
    check_invariants(sh);
}

#[test]
fn setup_unplanned_and_planned_stops_are_told_apart() {
    let cfg = config(
        "UTC",
        day_shift(),
        json!([{"id": "m", "ideal_cycle_time": "10s",
                "state_codes": {"1": "running", "2": "stopped", "3": "setup", "4": "planned_stop"},
                "reasons": {"17": "jam"},
                "signals": {"state": {}, "total_count": {}, "reason": {}}}]),
    );
    let out = run(
        &cfg,
        &[
            s(&at("06:00:00"), "m", "state", json!(1)),
            s(&at("07:00:00"), "m", "state", json!(3)),
            s(&at("07:30:00"), "m", "state", json!(1)),
            s(&at("09:00:00"), "m", "state", json!(2)),
            s(&at("09:05:00"), "m", "reason", json!(17)),
            s(&at("09:20:00"), "m", "state", json!(1)),
            s(&at("12:00:00"), "m", "state", json!(4)),
            s(&at("13:00:00"), "m", "state", json!(1)),
        ],
        &at("14:00:00"),
    );
    let sh = one_shift(&out);
    approx(sh.planned_stop_s, 3600.0, "planned stop");
    approx(sh.planned_time_s, 25200.0, "planned");
    approx(sh.setup_time_s, 1800.0, "setup");
    approx(sh.downtime_s, 1200.0, "downtime");
    assert_eq!(sh.downtime_count, 1, "setup is not an unplanned stop");
    approx(sh.run_time_s, 22200.0, "run");
    approx(sh.availability.unwrap(), 22200.0 / 25200.0, "availability");
    let st = stops(&out);
    let cats: Vec<StateCategory> = st.iter().map(|e| e.category).collect();
    assert_eq!(
        cats,
        vec![
            StateCategory::Setup,
            StateCategory::Stopped,
            StateCategory::PlannedStop
        ]
    );
    assert_eq!(st[1].reason.as_deref(), Some("17"));
    assert_eq!(st[1].reason_text.as_deref(), Some("jam"));
    check_invariants(sh);
}

#[test]
fn small_stops_under_the_threshold_are_run_time_and_over_it_downtime() {
    let cfg = config("UTC", day_shift(), json!([machine("m", "10s")]));
    let out = run(
        &cfg,
        &[
            s(&at("06:00:00"), "m", "running", json!(true)),
            s(&at("07:00:00"), "m", "running", json!(false)),
            s(&at("07:01:00"), "m", "running", json!(true)),
            s(&at("08:00:00"), "m", "running", json!(false)),
            s(&at("08:03:00"), "m", "running", json!(true)),
            // exactly the threshold: not small
            s(&at("09:00:00"), "m", "running", json!(false)),
            s(&at("09:02:00"), "m", "running", json!(true)),
        ],
        &at("14:00:00"),
    );
    let sh = one_shift(&out);
    assert_eq!(sh.small_stop_count, 1);
    approx(sh.small_stop_time_s, 60.0, "small stop time");
    assert_eq!(sh.downtime_count, 2);
    approx(sh.downtime_s, 300.0, "downtime");
    approx(
        sh.run_time_s,
        28800.0 - 300.0,
        "run includes the small stop",
    );
    approx(sh.mttr_s.unwrap(), 150.0, "mttr");
    approx(sh.mtbf_s.unwrap(), 28500.0 / 2.0, "mtbf");
    let st = stops(&out);
    assert_eq!(st.len(), 3);
    assert!(st[0].small_stop);
    assert!(!st[1].small_stop && !st[2].small_stop);
    check_invariants(sh);
}

#[test]
fn a_stop_spanning_a_shift_change_is_split_by_time_and_published_once() {
    let cfg = config(
        "UTC",
        json!([{"name": "A", "start": "06:00", "end": "14:00"},
               {"name": "B", "start": "14:00", "end": "22:00"}]),
        json!([machine("m", "10s")]),
    );
    let out = run(
        &cfg,
        &[
            s(&at("06:00:00"), "m", "running", json!(true)),
            s(&at("13:50:00"), "m", "running", json!(false)),
            s(&at("14:10:00"), "m", "running", json!(true)),
        ],
        &at("22:00:00"),
    );
    let shifts = summaries(&out, WindowKind::Shift);
    assert_eq!(shifts.len(), 2);
    approx(shifts[0].downtime_s, 600.0, "A downtime");
    approx(shifts[1].downtime_s, 600.0, "B downtime");
    assert_eq!(shifts[0].downtime_count, 1, "counted where it starts");
    assert_eq!(shifts[1].downtime_count, 0);
    let st = stops(&out);
    assert_eq!(st.len(), 1);
    approx(st[0].duration_s, 1200.0, "full span");
    assert_eq!(st[0].start, t(&at("13:50:00")));
    let hours = summaries(&out, WindowKind::Hour);
    assert_eq!(hours.len(), 16);
    let h13 = hours
        .iter()
        .find(|h| h.window.start == t(&at("13:00:00")))
        .unwrap();
    assert_eq!(h13.window.shift.as_deref(), Some("A"));
    assert_eq!(h13.downtime_count, 1);
}

#[test]
fn night_shift_over_midnight_is_one_window_and_days_split_it() {
    let cfg = config(
        "UTC",
        json!([{"name": "night", "start": "22:00", "end": "06:00", "days": ["mon"],
                "breaks": [{"start": "02:00", "end": "02:30"}]}]),
        json!([machine("m", "10s")]),
    );
    let out = run(
        &cfg,
        &[
            s("2024-03-04T22:00:00Z", "m", "running", json!(true)),
            s("2024-03-04T22:00:00Z", "m", "total_count", json!(0)),
            s("2024-03-05T06:00:00Z", "m", "total_count", json!(2000)),
        ],
        "2024-03-06T00:00:00Z",
    );
    let sh = one_shift(&out);
    assert_eq!(sh.window.start, t("2024-03-04T22:00:00Z"));
    assert_eq!(sh.window.end, t("2024-03-05T06:00:00Z"));
    approx(sh.planned_time_s, 27000.0, "8 h − 30 min break");
    assert_eq!(sh.total_count, 2000);
    let days = summaries(&out, WindowKind::Day);
    assert_eq!(days.len(), 2);
    approx(days[0].planned_time_s, 7200.0, "Monday part");
    approx(
        days[1].planned_time_s,
        19800.0,
        "Tuesday part, break excluded",
    );
    let hours = summaries(&out, WindowKind::Hour);
    assert_eq!(hours.len(), 8);
    let sum: f64 = hours.iter().map(|h| h.planned_time_s).sum();
    approx(sum, 27000.0, "hours sum to the shift");
}

fn dst_night(date: &str, start_utc: &str, end_utc: &str) -> f64 {
    let cfg = config(
        "Europe/Paris",
        json!([{"name": "night", "start": "22:00", "end": "06:00", "days": ["sat"]}]),
        json!([machine("m", "10s")]),
    );
    let out = run(&cfg, &[s(start_utc, "m", "running", json!(true))], end_utc);
    let sh = one_shift(&out);
    assert_eq!(sh.window.start, t(start_utc), "{date}");
    assert_eq!(sh.window.end, t(end_utc), "{date}");
    approx(sh.run_time_s, sh.planned_time_s, "running all along");
    // Local clock hours: 7 over the spring change, 9 over the autumn one (02:00–03:00 twice).
    let hours = summaries(&out, WindowKind::Hour);
    assert_eq!(hours.len() as f64, sh.planned_time_s / 3600.0, "{date}");
    assert!(hours.iter().all(|h| h.planned_time_s == 3600.0));
    sh.planned_time_s
}

#[test]
fn night_shift_over_spring_dst_change_lasts_seven_hours() {
    let p = dst_night("2024-03-30", "2024-03-30T21:00:00Z", "2024-03-31T04:00:00Z");
    approx(p, 7.0 * 3600.0, "spring");
}

#[test]
fn night_shift_over_autumn_dst_change_lasts_nine_hours() {
    let p = dst_night("2024-10-26", "2024-10-26T20:00:00Z", "2024-10-27T05:00:00Z");
    approx(p, 9.0 * 3600.0, "autumn");
}

#[test]
fn null_samples_make_unknown_time_excluded_from_planned_time() {
    let cfg = config("UTC", day_shift(), json!([machine("m", "10s")]));
    let out = run(
        &cfg,
        &[
            s(&at("06:00:00"), "m", "running", json!(true)),
            s(&at("08:00:00"), "m", "running", json!(null)),
            s(&at("08:30:00"), "m", "running", json!(true)),
        ],
        &at("14:00:00"),
    );
    let sh = one_shift(&out);
    approx(sh.unknown_time_s, 1800.0, "unknown");
    approx(sh.planned_time_s, 27000.0, "planned");
    approx(sh.data_coverage.unwrap(), 27000.0 / 28800.0, "coverage");
    let h8 = summaries(&out, WindowKind::Hour)
        .into_iter()
        .find(|h| h.window.start == t(&at("08:00:00")))
        .unwrap();
    approx(h8.data_coverage.unwrap(), 0.5, "hour coverage");
    assert!(h8.flags.contains(&"low_coverage".to_owned()));
    let states: Vec<StateCategory> = out
        .iter()
        .filter_map(|o| match o {
            Output::State(s) => Some(s.state),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        vec![
            StateCategory::Running,
            StateCategory::Unknown,
            StateCategory::Running
        ]
    );
}

#[test]
fn parts_only_machine_runs_while_parts_arrive_and_stops_at_its_last_part() {
    let cfg = config(
        "UTC",
        day_shift(),
        json!([{"id": "p", "ideal_cycle_time": "10s", "signals": {"total_count": {}}}]),
    );
    let mut samples = Vec::new();
    for (n, sec) in (0..=3600)
        .step_by(10)
        .chain((4200..=7200).step_by(10))
        .enumerate()
    {
        let ts = t(&at("06:00:00")).as_second() + sec;
        let ts = jiff::Timestamp::from_second(ts).unwrap().to_string();
        samples.push(s(&ts, "p", "total_count", json!(n)));
    }
    let out = run(&cfg, &samples, &at("08:00:00"));
    let hours = summaries(&out, WindowKind::Hour);
    assert_eq!(hours.len(), 2);
    approx(hours[0].run_time_s, 3600.0, "first hour runs");
    approx(
        hours[1].downtime_s,
        600.0,
        "stop from the last part at 07:00 to the next at 07:10",
    );
    approx(hours[1].run_time_s, 3000.0, "second hour run");
    assert_eq!(hours[0].total_count, 360);
    let st = stops(&out);
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].start, t(&at("07:00:00")));
    assert_eq!(st[0].end, t(&at("07:10:00")));
    let c = hours[0]
        .cycle_time
        .as_ref()
        .expect("single cycles observable");
    assert_eq!(c.cycles, 359);
    approx(c.p50_s, 10.0, "p50");
    approx(c.p90_s, 10.0, "p90");
    approx(c.max_s, 10.0, "max");
}

#[test]
fn parts_only_stop_is_inferred_on_tick_dating_from_the_last_part() {
    let cfg = config(
        "UTC",
        day_shift(),
        json!([{"id": "p", "ideal_cycle_time": "10s", "signals": {"total_count": {}}}]),
    );
    let mut e = Engine::new(&cfg).unwrap();
    let mut out = Vec::new();
    for (i, hms) in ["06:00:00", "06:00:10", "06:00:20"].iter().enumerate() {
        e.ingest(&s(&at(hms), "p", "total_count", json!(i)), &mut out);
    }
    e.tick(t(&at("06:00:40")), &mut out);
    assert!(
        e.live_states()[0].state == StateCategory::Running,
        "within stop_after + reorder window"
    );
    e.tick(t(&at("06:01:00")), &mut out);
    let st = e.live_states();
    assert_eq!(st[0].state, StateCategory::Stopped);
    assert_eq!(st[0].ts, t(&at("06:00:20")));
}

#[test]
fn cycle_distribution_reports_percentiles_of_single_steps() {
    let cfg = config("UTC", day_shift(), json!([machine("m", "10s")]));
    let mut samples = vec![s(&at("06:00:00"), "m", "running", json!(true))];
    // parts at 06:00:10 +  cycles 10,10,10,10,10,10,10,10,20,30 seconds
    let mut ts = t(&at("06:00:00")).as_second();
    samples.push(s(&at("06:00:00"), "m", "total_count", json!(0)));
    for (i, c) in [10, 10, 10, 10, 10, 10, 10, 10, 10, 20, 30]
        .iter()
        .enumerate()
    {
        ts += c;
        let iso = jiff::Timestamp::from_second(ts).unwrap().to_string();
        samples.push(s(&iso, "m", "total_count", json!(i + 1)));
    }
    let out = run(&cfg, &samples, &at("07:00:00"));
    let h = summaries(&out, WindowKind::Hour)[0];
    let c = h.cycle_time.as_ref().unwrap();
    assert_eq!(c.cycles, 10);
    approx(c.p50_s, 10.0, "p50");
    approx(c.p90_s, 20.0, "p90 (nearest rank)");
    approx(c.max_s, 30.0, "max");
    approx(
        h.avg_cycle_time_s.unwrap(),
        3600.0 / 11.0,
        "avg = run / parts",
    );
}

#[test]
fn out_of_order_and_duplicate_samples_give_the_same_outputs() {
    let cfg = config("UTC", day_shift(), json!([machine("m", "10s")]));
    let mut ordered = vec![s(&at("06:00:00"), "m", "running", json!(true))];
    for i in 0..600 {
        let ts = jiff::Timestamp::from_second(t(&at("06:00:00")).as_second() + i * 30)
            .unwrap()
            .to_string();
        ordered.push(s(&ts, "m", "total_count", json!(i * 3)));
        ordered.push(s(&ts, "m", "reject_count", json!(i / 10)));
        if i % 50 == 25 {
            ordered.push(s(&ts, "m", "running", json!(false)));
        }
        if i % 50 == 30 {
            ordered.push(s(&ts, "m", "running", json!(true)));
        }
    }
    let want = run(&cfg, &ordered, &at("14:00:00"));

    // Swap neighbours (at most 30 s apart → within a 60 s reorder window) and repeat some samples.
    let cfg2 = config_with(
        "UTC",
        day_shift(),
        json!([machine("m", "10s")]),
        json!({"reorder_window": "60s"}),
    );
    let want2 = run(&cfg2, &ordered, &at("14:00:00"));
    assert_eq!(
        want, want2,
        "the reorder window does not change in-order results"
    );
    let mut shuffled = ordered.clone();
    for i in (1..shuffled.len() - 1).step_by(3) {
        shuffled.swap(i, i + 1);
    }
    let mut with_dups = Vec::new();
    for (i, x) in shuffled.iter().enumerate() {
        with_dups.push(x.clone());
        if i % 7 == 0 {
            with_dups.push(x.clone());
        }
    }
    let mut e = Engine::new(&cfg2).unwrap();
    let mut got = Vec::new();
    let mut dup = 0;
    for x in &with_dups {
        match e.ingest(x, &mut got) {
            Ingested::Unchanged => dup += 1,
            Ingested::Changed => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    e.close_until(t(&at("14:00:00")), &mut got);
    assert!(dup > 0);
    assert_eq!(got, want);
}

#[test]
fn samples_older_than_the_reorder_window_are_dropped_counted_and_flagged() {
    let cfg = config("UTC", day_shift(), json!([machine("m", "10s")]));
    let mut e = Engine::new(&cfg).unwrap();
    let mut out = Vec::new();
    e.ingest(&s(&at("06:00:00"), "m", "running", json!(true)), &mut out);
    e.ingest(&s(&at("06:00:00"), "m", "total_count", json!(0)), &mut out);
    e.ingest(&s(&at("06:10:00"), "m", "total_count", json!(60)), &mut out);
    assert_eq!(
        e.ingest(&s(&at("06:09:50"), "m", "running", json!(false)), &mut out),
        Ingested::Late
    );
    assert_eq!(
        e.ingest(&s(&at("06:09:58"), "m", "total_count", json!(59)), &mut out),
        Ingested::Changed,
        "within 5 s of the newest"
    );
    assert_eq!(
        e.ingest(
            &s(&at("06:00:00"), "ghost", "running", json!(true)),
            &mut out
        ),
        Ingested::UnknownMachine
    );
    assert_eq!(e.late_counts()[0].1, 1);
    e.close_until(t(&at("07:00:00")), &mut out);
    let h = summaries(&out, WindowKind::Hour)[0];
    assert!(h.flags.contains(&"late_samples_dropped".to_owned()));
    approx(h.run_time_s, 3600.0, "the late stop was not applied");
}

#[test]
fn agent_down_time_is_unknown_and_state_unknown_until_a_value_arrives() {
    let cfg = config("UTC", day_shift(), json!([machine("m", "10s")]));
    let mut e = Engine::new(&cfg).unwrap();
    let mut out = Vec::new();
    e.ingest(&s(&at("06:00:00"), "m", "running", json!(true)), &mut out);
    e.ingest(&s(&at("06:00:00"), "m", "total_count", json!(0)), &mut out);
    e.ingest(
        &s(&at("08:00:00"), "m", "total_count", json!(720)),
        &mut out,
    );
    e.mark_down(t(&at("08:00:00")), t(&at("09:00:00")));
    assert_eq!(e.live_states()[0].state, StateCategory::Unknown);
    // After the gap: the counter re-baselines (parts made while down are not counted).
    e.ingest(
        &s(&at("09:00:00"), "m", "total_count", json!(5000)),
        &mut out,
    );
    e.ingest(&s(&at("09:30:00"), "m", "running", json!(true)), &mut out);
    e.ingest(
        &s(&at("10:00:00"), "m", "total_count", json!(5180)),
        &mut out,
    );
    e.close_until(t(&at("14:00:00")), &mut out);
    let sh = one_shift(&out);
    approx(
        sh.unknown_time_s,
        5400.0,
        "down hour + unknown until running arrives",
    );
    assert_eq!(sh.total_count, 900);
    check_invariants(sh);
}

#[test]
fn current_gives_shift_to_date_without_closing_anything() {
    let cfg = config("UTC", day_shift(), json!([machine("m", "10s")]));
    let mut e = Engine::new(&cfg).unwrap();
    let mut out = Vec::new();
    e.ingest(&s(&at("06:00:00"), "m", "running", json!(true)), &mut out);
    e.ingest(&s(&at("06:00:00"), "m", "total_count", json!(0)), &mut out);
    e.ingest(
        &s(&at("07:00:00"), "m", "total_count", json!(300)),
        &mut out,
    );
    e.ingest(&s(&at("07:00:00"), "m", "running", json!(false)), &mut out);
    // Live runs tick every second; the tick applies the buffered samples up to now − reorder window.
    e.tick(t(&at("07:30:00")), &mut out);
    assert_eq!(
        summaries(&out, WindowKind::Hour).len(),
        1,
        "only the 06:00 hour ended"
    );
    assert!(summaries(&out, WindowKind::Shift).is_empty());
    let cur = e.current(t(&at("07:30:00")));
    assert_eq!(cur.len(), 1);
    let c = &cur[0];
    assert_eq!(c.window.kind, WindowKind::Current);
    assert_eq!(c.window.start, t(&at("06:00:00")));
    approx(c.planned_time_s, 5400.0, "to date");
    approx(c.downtime_s, 1800.0, "stop so far");
    assert_eq!(c.total_count, 300);
    assert!(e.current(t(&at("15:00:00"))).len() <= 1);
}

#[test]
fn a_window_waits_until_the_stop_in_progress_is_classified() {
    let cfg = config("UTC", day_shift(), json!([machine("m", "10s")]));
    let mut e = Engine::new(&cfg).unwrap();
    let mut out = Vec::new();
    e.ingest(&s(&at("06:00:00"), "m", "running", json!(true)), &mut out);
    e.ingest(&s(&at("06:59:00"), "m", "running", json!(false)), &mut out);
    e.tick(t(&at("07:00:30")), &mut out);
    assert!(
        summaries(&out, WindowKind::Hour).is_empty(),
        "85 s into the stop: small or not is still open"
    );
    e.tick(t(&at("07:01:10")), &mut out);
    let h = summaries(&out, WindowKind::Hour);
    assert_eq!(h.len(), 1);
    approx(h[0].downtime_s, 60.0, "the stop's part in the hour");
    assert_eq!(h[0].downtime_count, 1);
}

#[test]
fn a_sample_stamped_far_ahead_of_the_live_clock_is_dropped_not_trusted() {
    let cfg = config("UTC", day_shift(), json!([machine("m", "10s")]));
    let mut e = Engine::new(&cfg).unwrap();
    let mut out = Vec::new();
    e.ingest(&s(&at("06:00:00"), "m", "running", json!(true)), &mut out);
    e.tick(t(&at("06:00:10")), &mut out);
    assert_eq!(
        e.ingest(
            &s("2099-01-01T00:00:00Z", "m", "running", json!(false)),
            &mut out
        ),
        Ingested::Late
    );
    assert_eq!(
        e.ingest(&s(&at("06:00:11"), "m", "running", json!(false)), &mut out),
        Ingested::Changed,
        "the machine keeps working after the bad stamp"
    );
}

#[test]
fn without_shifts_every_hour_is_scheduled_and_no_shift_window_is_emitted() {
    let cfg = config("UTC", json!([]), json!([machine("m", "10s")]));
    let out = run(
        &cfg,
        &[
            s("2024-03-04T00:00:00Z", "m", "running", json!(true)),
            s("2024-03-04T00:00:00Z", "m", "total_count", json!(0)),
            s("2024-03-04T23:00:00Z", "m", "total_count", json!(8280)),
        ],
        "2024-03-05T00:00:00Z",
    );
    assert!(summaries(&out, WindowKind::Shift).is_empty());
    assert_eq!(summaries(&out, WindowKind::Hour).len(), 24);
    let day = summaries(&out, WindowKind::Day);
    assert_eq!(day.len(), 1);
    approx(day[0].planned_time_s, 86400.0, "24/7");
    assert_eq!(day[0].total_count, 8280);
    approx(
        day[0].performance.unwrap(),
        82800.0 / 86400.0,
        "performance",
    );
}

#[test]
fn restart_mid_shift_loses_only_the_gap() {
    use shopfloor_agent::metrics::EngineSnapshot;
    let cfg = config("UTC", day_shift(), json!([machine("m", "10s")]));
    let before: Vec<_> = (0..=120)
        .map(|i| {
            let ts = jiff::Timestamp::from_second(t(&at("06:00:00")).as_second() + i * 60).unwrap();
            s(&ts.to_string(), "m", "total_count", json!(i * 5))
        })
        .collect();
    let mut e = Engine::new(&cfg).unwrap();
    let mut out = Vec::new();
    e.ingest(&s(&at("06:00:00"), "m", "running", json!(true)), &mut out);
    for x in &before[..60] {
        e.ingest(x, &mut out);
    }
    // The store writes a snapshot, then journals every Changed sample until the crash at 08:00.
    let snap = serde_json::to_string(&e.snapshot()).unwrap();
    let mut journal = Vec::new();
    for x in &before[60..] {
        if e.ingest(x, &mut out) == Ingested::Changed {
            journal.push(x.clone());
        }
    }
    drop(e);
    // Restart at 08:30: restore, re-ingest the journal, mark the gap, carry on.
    let mut e =
        Engine::restore(&cfg, serde_json::from_str::<EngineSnapshot>(&snap).unwrap()).unwrap();
    let mut replayed = Vec::new();
    for x in &journal {
        e.ingest(x, &mut replayed);
    }
    e.mark_down(t(&at("08:00:00")), t(&at("08:30:00")));
    e.ingest(
        &s(&at("08:30:00"), "m", "running", json!(true)),
        &mut replayed,
    );
    e.ingest(
        &s(&at("08:30:00"), "m", "total_count", json!(9000)),
        &mut replayed,
    );
    e.ingest(
        &s(&at("09:30:00"), "m", "total_count", json!(9360)),
        &mut replayed,
    );
    e.close_until(t(&at("14:00:00")), &mut replayed);
    // Hours closed before the crash come out again identical (same content, hence same msg_id).
    let first: Vec<_> = summaries(&out, WindowKind::Hour);
    let again: Vec<_> = summaries(&replayed, WindowKind::Hour);
    assert_eq!(first[0], again[0]);
    let sh = one_shift(&replayed);
    approx(sh.unknown_time_s, 1800.0, "only the gap");
    assert_eq!(sh.total_count, 600 + 360);
    approx(sh.run_time_s, 28800.0 - 1800.0, "run");
}

#[test]
fn a_cycle_is_not_measured_across_a_counter_gap_or_reset() {
    let cfg = config("UTC", day_shift(), json!([machine("m", "10s")]));
    let out = run(
        &cfg,
        &[
            s(&at("06:00:00"), "m", "running", json!(true)),
            s(&at("06:00:00"), "m", "total_count", json!(0)),
            s(&at("06:00:10"), "m", "total_count", json!(1)),
            s(&at("06:00:20"), "m", "total_count", json!(2)),
            s(&at("06:00:25"), "m", "total_count", json!(null)),
            s(&at("06:00:30"), "m", "total_count", json!(3)),
            s(&at("06:00:40"), "m", "total_count", json!(4)),
            s(&at("06:10:00"), "m", "total_count", json!(1)),
            s(&at("06:10:10"), "m", "total_count", json!(2)),
        ],
        &at("07:00:00"),
    );
    let h = summaries(&out, WindowKind::Hour)[0];
    let c = h.cycle_time.as_ref().unwrap();
    // Only 06:00:10→06:00:20: after the null, 06:00:30 is a baseline and 06:00:40 has no single-step
    // predecessor; the reset at 06:10:00 is not a single step, so 06:10:10 has none either.
    assert_eq!(c.cycles, 1, "{c:?}");
    approx(c.max_s, 10.0, "no 9-minute cycle across the reset");
}

#[test]
fn a_product_change_during_an_unnoticed_stop_does_not_move_the_stop_start_of_a_parts_only_machine()
{
    let cfg = config(
        "UTC",
        day_shift(),
        json!([{"id": "p", "ideal_cycle_time": "20s", "products": {"A": "20s", "B": "20s"},
                "signals": {"total_count": {}, "product": {}}}]),
    );
    let mut samples = vec![s(&at("06:00:00"), "p", "product", json!("A"))];
    for (n, sec) in (0..=3600).step_by(20).enumerate() {
        let ts = jiff::Timestamp::from_second(t(&at("06:00:00")).as_second() + sec).unwrap();
        samples.push(s(&ts.to_string(), "p", "total_count", json!(n)));
    }
    // Last part 07:00:00; the product changes 50 s later, before the 60 s stop_after has passed.
    samples.push(s(&at("07:00:50"), "p", "product", json!("B")));
    samples.push(s(&at("07:30:00"), "p", "total_count", json!(182)));
    let out = run(&cfg, &samples, &at("08:00:00"));
    let st = stops(&out);
    assert_eq!(st.len(), 1, "{st:?}");
    assert_eq!(
        st[0].start,
        t(&at("07:00:00")),
        "the stop dates from the last part"
    );
    assert_eq!(st[0].end, t(&at("07:30:00")));
    approx(st[0].duration_s, 1800.0, "07:00–07:30 is one stop");
}

#[test]
fn a_stray_sample_of_an_unconfigured_counter_does_not_change_how_good_is_derived() {
    let cfg = config(
        "UTC",
        day_shift(),
        json!([{"id": "m", "ideal_cycle_time": "1s", "signals": {"running": {}, "total_count": {}}}]),
    );
    let samples = vec![
        s(&at("06:00:00"), "m", "running", json!(true)),
        s(&at("06:00:00"), "m", "total_count", json!(0)),
        s(&at("06:30:00"), "m", "good_count", json!(5)),
        s(&at("06:59:00"), "m", "total_count", json!(2000)),
    ];
    let out = run(&cfg, &samples, &at("07:00:00"));
    let h = &summaries(&out, WindowKind::Hour)[0];
    assert_eq!(
        (h.total_count, h.good_count, h.reject_count),
        (2000, 2000, 0)
    );
    assert_eq!(h.quality, Some(1.0));
}

#[test]
fn an_absurd_counter_jump_saturates_instead_of_overflowing() {
    let cfg = config("UTC", day_shift(), json!([machine("m", "1s")]));
    let samples = vec![
        s(&at("06:00:00"), "m", "running", json!(true)),
        s(&at("06:00:00"), "m", "total_count", json!(0)),
        s(&at("06:00:00"), "m", "reject_count", json!(0)),
        s(&at("06:10:00"), "m", "total_count", json!(i64::MAX)),
        s(&at("06:20:00"), "m", "total_count", json!(i64::MAX)),
        s(&at("06:20:00"), "m", "reject_count", json!(i64::MAX)),
    ];
    let out = run(&cfg, &samples, &at("07:00:00"));
    let h = &summaries(&out, WindowKind::Hour)[0];
    assert_eq!(h.total_count, i64::MAX as u64);
    assert!(h.ideal_time_s.is_finite() && h.ideal_time_s > 0.0);
    assert!(h.flags.iter().any(|f| f == "performance_over_100"));
}
