//! Modbus TCP polling against in-process tokio-modbus servers: decoding, exceptions, timeouts,
//! reconnection, isolation of a dead device, and read-only proof.

mod modbus_support;

use std::collections::BTreeMap;
use std::time::Duration;

use modbus_support::*;
use serde_json::json;
use shopfloor_agent::sample::{sample_channel, Sample, Signal, Value};
use shopfloor_agent::sources::modbus;
use tokio_util::sync::CancellationToken;

const ORDERS: [&str; 4] = ["ABCD", "CDAB", "BADC", "DCBA"];

/// Registers holding the big-endian bytes `b` in `order` (written independently of the decoder).
fn encode(b: &[u8], order: &str) -> Vec<u16> {
    let words: Vec<[u8; 2]> = b.chunks(2).map(|c| [c[0], c[1]]).collect();
    let words: Vec<[u8; 2]> = match order {
        "ABCD" => words,
        "CDAB" => words.into_iter().rev().collect(),
        "BADC" => words.into_iter().map(|[x, y]| [y, x]).collect(),
        "DCBA" => words.into_iter().rev().map(|[x, y]| [y, x]).collect(),
        _ => unreachable!(),
    };
    words.into_iter().map(u16::from_be_bytes).collect()
}

fn put(t: &mut Tables, at: u16, words: &[u16]) {
    for (i, w) in words.iter().enumerate() {
        t.holding.insert(at + i as u16, *w);
    }
}

/// Units 1–4: wide types in each order; units 11–14: 16-bit, bits, input registers, scaling.
fn typed_map() -> BTreeMap<u8, Tables> {
    let mut units = BTreeMap::new();
    for (k, order) in ORDERS.iter().enumerate() {
        let mut a = Tables::default();
        put(&mut a, 0, &encode(&0xDEAD_BEEFu32.to_be_bytes(), order));
        put(&mut a, 2, &encode(&(-123_456i32).to_be_bytes(), order));
        put(
            &mut a,
            4,
            &encode(&0x0102_0304_0506_0708u64.to_be_bytes(), order),
        );
        put(
            &mut a,
            8,
            &encode(&(-9_876_543_210i64).to_be_bytes(), order),
        );
        put(&mut a, 12, &encode(&1.5f32.to_be_bytes(), order));
        put(&mut a, 14, &encode(&(-2.25f64).to_be_bytes(), order));
        put(&mut a, 18, &[0b0100]);
        units.insert(1 + k as u8, a);
        let mut b = Tables::default();
        put(&mut b, 20, &encode(&0x1234u16.to_be_bytes(), order));
        put(&mut b, 21, &encode(&(-2i16).to_be_bytes(), order));
        put(&mut b, 22, &[7]);
        put(&mut b, 23, &[4]);
        b.coils.insert(0, true);
        b.discrete.insert(5, false);
        b.input.insert(0, 9);
        units.insert(11 + k as u8, b);
    }
    units
}

fn typed_machines(port: u16) -> Vec<serde_json::Value> {
    let mut ms = Vec::new();
    for (k, order) in ORDERS.iter().enumerate() {
        let h = |address: u16, t: &str| json!({"register": "holding", "address": address, "type": t, "order": order});
        ms.push(machine(
            &format!("wide-{order}"),
            port,
            1 + k as u8,
            "100ms",
            json!({
                "total_count": h(0, "u32"),
                "good_count": h(2, "i32"),
                "reject_count": h(4, "u64"),
                "product": h(8, "i64"),
                "reason": h(12, "f32"),
                "state": h(14, "f64"),
                "running": {"register": "holding", "address": 18, "bit": 2},
            }),
        ));
        ms.push(machine(
            &format!("narrow-{order}"),
            port,
            11 + k as u8,
            "100ms",
            json!({
                "total_count": h(20, "u16"),
                "good_count": h(21, "i16"),
                "reject_count": {"register": "holding", "address": 22, "scale": 10.0},
                "state": {"register": "holding", "address": 23, "scale": 0.5, "offset": 1.0},
                "running": {"register": "coil", "address": 0},
                "reason": {"register": "discrete", "address": 5},
                "product": {"register": "input", "address": 0},
            }),
        ));
    }
    ms
}

fn latest(samples: &[Sample], machine: &str, signal: Signal) -> Option<Option<Value>> {
    samples
        .iter()
        .rev()
        .find(|s| &*s.machine == machine && s.signal == signal)
        .map(|s| s.value.clone())
}

fn has_all(samples: &[Sample], machines: &[String], n_signals: usize) -> bool {
    machines.iter().all(|m| {
        let mut sig: Vec<Signal> = samples
            .iter()
            .filter(|s| &*s.machine == m.as_str())
            .map(|s| s.signal)
            .collect();
        sig.sort();
        sig.dedup();
        sig.len() == n_signals
    })
}

#[tokio::test]
async fn every_type_and_order_decodes_from_a_real_server() {
    let (l, addr) = listener().await;
    let map = MapServer::new(typed_map());
    let _server = serve(l, map.clone());
    let mut agent = start(typed_machines(addr.port()));
    let names: Vec<String> = ORDERS
        .iter()
        .flat_map(|o| [format!("wide-{o}"), format!("narrow-{o}")])
        .collect();
    let got = collect_until(&mut agent.rx, Duration::from_secs(10), |s| {
        has_all(s, &names, 7)
    })
    .await;
    for order in ORDERS {
        let w = format!("wide-{order}");
        let v = |sig| latest(&got, &w, sig).unwrap_or_else(|| panic!("{w} {sig}"));
        assert_eq!(v(Signal::TotalCount), Some(Value::Int(0xDEAD_BEEF)), "{w}");
        assert_eq!(v(Signal::GoodCount), Some(Value::Int(-123_456)), "{w}");
        assert_eq!(
            v(Signal::RejectCount),
            Some(Value::Int(0x0102_0304_0506_0708)),
            "{w}"
        );
        assert_eq!(v(Signal::Product), Some(Value::Int(-9_876_543_210)), "{w}");
        assert_eq!(v(Signal::Reason), Some(Value::Float(1.5)), "{w}");
        assert_eq!(v(Signal::State), Some(Value::Float(-2.25)), "{w}");
        assert_eq!(v(Signal::Running), Some(Value::Bool(true)), "{w}");
        let n = format!("narrow-{order}");
        let v = |sig| latest(&got, &n, sig).unwrap_or_else(|| panic!("{n} {sig}"));
        assert_eq!(v(Signal::TotalCount), Some(Value::Int(0x1234)), "{n}");
        assert_eq!(v(Signal::GoodCount), Some(Value::Int(-2)), "{n}");
        assert_eq!(v(Signal::RejectCount), Some(Value::Int(70)), "{n}");
        assert_eq!(v(Signal::State), Some(Value::Float(3.0)), "{n}");
        assert_eq!(v(Signal::Running), Some(Value::Bool(true)), "{n}");
        assert_eq!(v(Signal::Reason), Some(Value::Bool(false)), "{n}");
        assert_eq!(v(Signal::Product), Some(Value::Int(9)), "{n}");
    }
    // Eight units behind one host:port share one connection: one endpoint, polled in turn.
    assert_eq!(agent.stats.devices().len(), 8);
    agent.stop().await;
}

#[tokio::test]
async fn agent_sends_only_read_function_codes() {
    let (l, addr) = listener().await;
    let map = MapServer::new(typed_map());
    let _server = serve(l, map.clone());
    let mut agent = start(typed_machines(addr.port()));
    let _ = collect_for(&mut agent.rx, Duration::from_millis(800)).await;
    agent.stop().await;
    let fcs = map.function_codes();
    assert!(fcs.len() >= 16, "polled: {} requests", fcs.len());
    assert!(
        fcs.iter().all(|fc| (1..=4).contains(fc)),
        "only FC 1–4 may be sent, saw {fcs:?}"
    );
    for fc in 1..=4u8 {
        assert!(fcs.contains(&fc), "FC {fc} exercised");
    }
}

#[tokio::test]
async fn an_exception_marks_only_the_signals_of_that_read_null() {
    let (l, addr) = listener().await;
    let mut t = Tables::default();
    t.coils.insert(0, true);
    t.holding.insert(0, 0);
    t.holding.insert(1, 42);
    let map = MapServer::new(BTreeMap::from([(1, t)]));
    let _server = serve(l, map);
    let mut agent = start(vec![machine(
        "press",
        addr.port(),
        1,
        "100ms",
        json!({
            "running": {"register": "coil", "address": 0},
            "total_count": {"register": "holding", "address": 0, "type": "u32"},
            "reason": {"register": "holding", "address": 500},
        }),
    )]);
    let got = collect_for(&mut agent.rx, Duration::from_millis(700)).await;
    let stats = agent.stats.total();
    agent.stop().await;
    let of = |sig: Signal| -> Vec<Option<Value>> {
        got.iter()
            .filter(|s| s.signal == sig)
            .map(|s| s.value.clone())
            .collect()
    };
    assert!(of(Signal::Reason).len() >= 3);
    assert!(of(Signal::Reason).iter().all(Option::is_none));
    assert!(!of(Signal::Running).is_empty());
    assert!(of(Signal::Running)
        .iter()
        .all(|v| *v == Some(Value::Bool(true))));
    assert!(of(Signal::TotalCount)
        .iter()
        .all(|v| *v == Some(Value::Int(42))));
    assert!(stats.exceptions >= 3);
    assert_eq!(stats.failures, 0, "an exception is not a failed poll");
}

#[tokio::test]
async fn a_device_that_never_answers_goes_null_once_after_fail_after() {
    let (l, addr) = listener().await;
    let mut t = Tables::default();
    t.holding.insert(0, 1);
    let map = MapServer::new(BTreeMap::from([(1, t)]));
    map.silent.lock().unwrap().insert(1);
    let _server = serve(l, map);
    let mut agent = start(vec![machine(
        "mute",
        addr.port(),
        1,
        "100ms",
        json!({"state": {"register": "holding", "address": 0},
               "running": {"register": "coil", "address": 0}}),
    )]);
    let got = collect_until(&mut agent.rx, Duration::from_secs(10), |s| s.len() >= 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|s| s.value.is_none()));
    let later = collect_for(&mut agent.rx, Duration::from_millis(1500)).await;
    assert!(
        later.is_empty(),
        "nulls are sent once, not every poll: {later:?}"
    );
    assert!(agent.stats.total().failures >= 3);
    agent.stop().await;
}

// Log lines captured from the current thread's subscriber.
#[path = "common/logbuf.rs"]
mod logbuf;
use logbuf::LogBuf;

// Current-thread runtime: the spawned polling task logs through this thread's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn a_device_that_disappears_and_comes_back_recovers() {
    let logs = LogBuf::default();
    let writer = logs.clone();
    let _log = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    );
    let (l, addr) = listener().await;
    let mut t = Tables::default();
    t.holding.insert(0, 3);
    let units = BTreeMap::from([(1, t)]);
    let server = serve(l, MapServer::new(units.clone()));
    let mut agent = start(vec![machine(
        "flaky",
        addr.port(),
        1,
        "100ms",
        json!({"state": {"register": "holding", "address": 0}}),
    )]);
    let first = collect_until(&mut agent.rx, Duration::from_secs(5), |s| !s.is_empty()).await;
    assert_eq!(first[0].value, Some(Value::Int(3)));
    server.abort();
    let _ = server.await;
    let gone = collect_until(&mut agent.rx, Duration::from_secs(10), |s| {
        s.iter().any(|x| x.value.is_none())
    })
    .await;
    assert!(
        gone.iter().any(|x| x.value.is_none()),
        "goes null when gone"
    );
    let l = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    let _server = serve(l, MapServer::new(units));
    let back = collect_until(&mut agent.rx, Duration::from_secs(15), |s| {
        s.iter().any(|x| x.value.is_some())
    })
    .await;
    assert!(
        back.iter().any(|x| x.value == Some(Value::Int(3))),
        "valid values return after the device comes back"
    );
    let _ = collect_for(&mut agent.rx, Duration::from_millis(300)).await;
    agent.stop().await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text.matches("poll recovered").count(),
        1,
        "recovery is logged once:\n{text}"
    );
    assert!(text.contains("device=flaky"), "{text}");
}

#[tokio::test]
async fn dead_devices_do_not_slow_five_healthy_ones() {
    let mut t = Tables::default();
    t.holding.insert(0, 1);
    let map = MapServer::new(BTreeMap::from([(1, t)]));
    let mut servers = Vec::new();
    let mut machines = Vec::new();
    for i in 0..5 {
        let (l, addr) = listener().await;
        servers.push(serve(l, map.clone()));
        machines.push(machine(
            &format!("ok-{i}"),
            addr.port(),
            1,
            "100ms",
            json!({"state": {"register": "holding", "address": 0}}),
        ));
    }
    let dead_map = MapServer::new(BTreeMap::new());
    dead_map.silent.lock().unwrap().insert(1);
    let (l, addr) = listener().await;
    servers.push(serve(l, dead_map));
    let mut dead = machine(
        "dead",
        addr.port(),
        1,
        "100ms",
        json!({"state": {"register": "holding", "address": 0}}),
    );
    dead["source"]["modbus"]["timeout"] = json!("1s");
    machines.push(dead);
    // And one on a closed port (connection refused).
    let closed_port = listener().await.1.port();
    machines.push(machine(
        "refused",
        closed_port,
        1,
        "100ms",
        json!({"state": {"register": "holding", "address": 0}}),
    ));
    let mut agent = start(machines);
    // Let every task get going, then count over a bounded window.
    let _ = collect_for(&mut agent.rx, Duration::from_millis(300)).await;
    let window = Duration::from_millis(1500);
    let got = collect_for(&mut agent.rx, window).await;
    agent.stop().await;
    let expected = (window.as_millis() / 100) as usize;
    for i in 0..5 {
        let n = got
            .iter()
            .filter(|s| &*s.machine == format!("ok-{i}").as_str() && s.value.is_some())
            .count();
        assert!(
            n * 10 >= expected * 8,
            "ok-{i}: {n} polls of {expected} expected"
        );
    }
}

#[tokio::test]
async fn a_config_without_an_address_is_refused_before_polling() {
    let (tx, _rx) = sample_channel();
    let cfg = config(vec![machine(
        "bad",
        1,
        1,
        "1s",
        json!({"state": {"register": "holding"}}),
    )]);
    let r = modbus::run(cfg, tx, CancellationToken::new()).await;
    assert!(
        matches!(r, Err(modbus::ModbusError::Signal { .. })),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_mute_unit_behind_a_gateway_costs_its_neighbour_little() {
    let (l, addr) = listener().await;
    let mut t = Tables::default();
    t.holding.insert(0, 5);
    let map = MapServer::new(BTreeMap::from([(1, t.clone()), (2, t)]));
    map.silent.lock().unwrap().insert(2);
    let _server = serve(l, map);
    let sig = json!({"state": {"register": "holding", "address": 0}});
    let mut mute = machine("mute", addr.port(), 2, "100ms", sig.clone());
    mute["source"]["modbus"]["timeout"] = json!("150ms");
    let mut agent = start(vec![machine("ok", addr.port(), 1, "100ms", sig), mute]);
    let _ = collect_for(&mut agent.rx, Duration::from_millis(1000)).await;
    let window = Duration::from_millis(2000);
    let got = collect_for(&mut agent.rx, window).await;
    agent.stop().await;
    let ok = got
        .iter()
        .filter(|s| &*s.machine == "ok" && s.value == Some(Value::Int(5)))
        .count();
    // The mute unit backs off exponentially, so it costs a timeout only now and then.
    assert!(ok >= 14, "ok polled {ok} times of 20 in {window:?}");
    assert!(got
        .iter()
        .filter(|s| &*s.machine == "mute")
        .all(|s| s.value.is_none()));
}

/// A "PLC" that answers every request with bytes that are not a Modbus frame, or with a well-formed MBAP
/// header announcing a length it never sends, or with a reply to another transaction.
async fn garbage_server(l: tokio::net::TcpListener) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut round = 0u8;
    for _ in 0..200 {
        let Ok((mut s, _)) = l.accept().await else {
            return;
        };
        round = round.wrapping_add(1);
        tokio::spawn(async move {
            let mut buf = [0u8; 260];
            for i in 0..1000u32 {
                let Ok(n) = s.read(&mut buf).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                let reply: Vec<u8> = match (round as u32 + i) % 3 {
                    0 => b"\xde\xad\xbe\xef garbage, not modbus\r\n".to_vec(),
                    // MBAP: same transaction id, protocol 0, length 200, then only 3 bytes.
                    1 => vec![buf[0], buf[1], 0, 0, 0, 200, buf[6], 3, 2],
                    // A valid-looking reply to another transaction id and function code.
                    _ => vec![buf[0] ^ 0xFF, buf[1], 0, 0, 0, 5, buf[6], 0x10, 0, 0],
                };
                if s.write_all(&reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

#[tokio::test]
async fn garbage_frames_give_null_samples_and_never_stop_the_source_or_its_neighbours() {
    let (bad_l, bad_addr) = listener().await;
    tokio::spawn(garbage_server(bad_l));
    let (good_l, good_addr) = listener().await;
    let mut t = Tables::default();
    t.holding.insert(0, 1);
    let _good = serve(good_l, MapServer::new(BTreeMap::from([(1, t)])));
    let signals = json!({"state": {"register": "holding", "address": 0}});
    let mut agent = start(vec![
        machine("garbled", bad_addr.port(), 1, "100ms", signals.clone()),
        machine("healthy", good_addr.port(), 1, "100ms", signals),
    ]);
    let got = collect_until(&mut agent.rx, Duration::from_secs(10), |s| {
        s.iter()
            .any(|x| &*x.machine == "garbled" && x.value.is_none())
            && s.iter().filter(|x| &*x.machine == "healthy").count() >= 10
    })
    .await;
    assert!(
        got.iter()
            .filter(|s| &*s.machine == "garbled")
            .all(|s| s.value.is_none()),
        "no value is ever decoded from garbage: {got:?}"
    );
    assert!(
        got.iter()
            .any(|s| &*s.machine == "garbled" && s.value.is_none()),
        "the garbled device goes null"
    );
    let healthy: Vec<_> = got.iter().filter(|s| &*s.machine == "healthy").collect();
    assert!(
        healthy.len() >= 10,
        "the healthy device keeps polling: {healthy:?}"
    );
    assert!(healthy.iter().all(|s| s.value == Some(Value::Int(1))));
    // The source is still alive: the healthy device keeps producing.
    let later = collect_for(&mut agent.rx, Duration::from_millis(800)).await;
    assert!(later.iter().any(|s| &*s.machine == "healthy"));
    assert!(agent.stats.total().failures >= 3);
    agent.stop().await;
}
