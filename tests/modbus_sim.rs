//! The simulator served over real TCP and polled by the agent with the config it prints.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use shopfloor_agent::config::{Config, HumanDuration};
use shopfloor_agent::sample::{sample_channel, Signal, Value};
use shopfloor_agent::sim::{self, SimOptions};
use shopfloor_agent::sources::modbus;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn simulator_polled_by_the_agent_yields_plausible_samples() {
    let opts = SimOptions {
        machines: 3,
        seed: 42,
        speed: 3000.0,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cancel = CancellationToken::new();
    let server = tokio::spawn(sim::serve(listener, opts, cancel.clone()));
    let machines = sim::machine_configs(&opts, "127.0.0.1", port, HumanDuration::from_millis(50));
    let config: Config = serde_json::from_value(serde_json::json!({
        "site": "t", "timezone": "UTC", "machines": machines,
    }))
    .unwrap();
    let (tx, mut rx) = sample_channel();
    let agent = tokio::spawn(modbus::run(Arc::new(config), tx, cancel.clone()));

    let mut series: BTreeMap<(String, Signal), Vec<i64>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while let Ok(Some(s)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        let v = match s.value {
            Some(Value::Int(i)) => i,
            Some(Value::Bool(b)) => i64::from(b),
            other => panic!("unexpected value {other:?} for {} {}", s.machine, s.signal),
        };
        series
            .entry((s.machine.to_string(), s.signal))
            .or_default()
            .push(v);
    }
    cancel.cancel();
    agent.await.unwrap().unwrap();
    server.await.unwrap().unwrap();

    for n in 1..=3 {
        let id = format!("sim-{n:02}");
        let get = |sig| series.get(&(id.clone(), sig)).cloned().unwrap_or_default();
        let state = get(Signal::State);
        assert!(state.len() >= 20, "{id}: {} polls", state.len());
        assert!(
            state.iter().all(|s| (1..=4).contains(s)),
            "{id} states {state:?}"
        );
        assert!(get(Signal::Product).iter().all(|p| (1..=3).contains(p)));
        assert!(get(Signal::Reason).iter().all(|r| (0..=6).contains(r)));
        let total = get(Signal::TotalCount);
        assert!(
            total.windows(2).all(|w| w[1] >= w[0]),
            "{id}: u32 total never drops"
        );
        assert!(total.last() > total.first(), "{id}: parts are made");
        let good = get(Signal::GoodCount);
        assert!(good.iter().all(|g| (0..=65_535).contains(g)));
        assert!(
            good.windows(2).any(|w| w[1] < w[0]),
            "{id}: the u16 good counter wraps at speed: {:?}..{:?}",
            good.first(),
            good.last()
        );
    }
}

#[test]
fn demo_config_is_what_print_config_gives_for_five_machines() {
    let opts = SimOptions {
        machines: 5,
        seed: 1,
        speed: 1.0,
    };
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.yaml"))
        .expect("config/demo.yaml");
    assert_eq!(
        file,
        sim::demo_config_yaml(&opts, "127.0.0.1", 5020),
        "regenerate with `shopfloor-agent simulate --machines 5 --port 5020 --print-config > config/demo.yaml`"
    );
}
