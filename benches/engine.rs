//! Engine throughput on pre-built samples in memory (one core): `cargo bench --bench engine`.

#[path = "common_gen.rs"]
mod common_gen;

use std::hint::black_box;
use std::time::Instant;

use jiff::Timestamp;
use shopfloor_agent::metrics::{Engine, Output};
use shopfloor_agent::sample::{Sample, Value};

fn main() {
    let config = plant_config();
    let engine = Engine::new(&config).expect("engine");
    let start = "2024-03-04T05:00:00Z"
        .parse::<Timestamp>()
        .unwrap()
        .as_second();
    let seconds = 12 * 3600;
    let raw = common_gen::stream(start, seconds);
    let samples: Vec<Sample> = raw
        .into_iter()
        .map(|(ts, m, sig, v)| {
            let id = engine.machine_id(&format!("m{m:03}")).expect("machine");
            let value: Option<Value> = serde_json::from_value(v).expect("value");
            Sample::new(
                Timestamp::from_second(ts).unwrap(),
                id,
                sig.parse().expect("signal"),
                value,
            )
        })
        .collect();
    drop(engine);
    println!(
        "engine: {} samples, {} machines, {} h of 1 s polls",
        samples.len(),
        common_gen::MACHINES,
        seconds / 3600
    );
    let mut rates = Vec::new();
    let mut cpu_rates = Vec::new();
    for round in 0..5 {
        let mut engine = Engine::new(&config).expect("engine");
        let mut out: Vec<Output> = Vec::with_capacity(1024);
        let mut outputs = 0usize;
        let c0 = common_gen::thread_cpu_seconds();
        let t0 = Instant::now();
        for s in &samples {
            black_box(engine.ingest(s, &mut out));
            if out.len() > 512 {
                outputs += out.len();
                out.clear();
            }
        }
        engine.close_until(samples[samples.len() - 1].ts, &mut out);
        outputs += out.len();
        let dt = t0.elapsed().as_secs_f64();
        let cpu = match (c0, common_gen::thread_cpu_seconds()) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => dt,
        };
        let rate = samples.len() as f64 / dt;
        let cpu_rate = samples.len() as f64 / cpu;
        println!(
            "round {round}: wall {dt:.3} s = {:.2} M samples/s; thread CPU {cpu:.2} s = {:.2} M samples/s; {outputs} outputs",
            rate / 1e6,
            cpu_rate / 1e6
        );
        rates.push(rate);
        cpu_rates.push(cpu_rate);
    }
    rates.sort_by(f64::total_cmp);
    cpu_rates.sort_by(f64::total_cmp);
    println!(
        "engine median: {:.2} M samples/s wall, {:.2} M samples/s per CPU second (budget 5.00 on one core)",
        rates[rates.len() / 2] / 1e6,
        cpu_rates[cpu_rates.len() / 2] / 1e6
    );
}

fn plant_config() -> shopfloor_agent::config::Config {
    common_gen::plant()
}
