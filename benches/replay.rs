//! `replay` end to end from a JSONL file: the library entry point and the release binary.
//! `cargo bench --bench replay`.

#[path = "common_gen.rs"]
mod common_gen;

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use jiff::Timestamp;
use serde_json::json;
use shopfloor_agent::commands::replay::replay;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = common_gen::plant();
    let start = "2024-03-04T05:00:00Z"
        .parse::<Timestamp>()
        .unwrap()
        .as_second();
    let seconds = 8 * 3600;
    let input = dir.path().join("samples.jsonl");
    let mut n = 0u64;
    {
        let mut w = BufWriter::new(File::create(&input).expect("create"));
        for (ts, m, sig, v) in common_gen::stream(start, seconds) {
            let line = json!({"ts": Timestamp::from_second(ts).unwrap().to_string(),
                              "machine": format!("m{m:03}"), "signal": sig, "value": v});
            serde_json::to_writer(&mut w, &line).expect("write");
            w.write_all(b"\n").expect("write");
            n += 1;
        }
    }
    let bytes = std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0);
    println!("replay: {n} samples, {:.0} MB of JSONL", bytes as f64 / 1e6);

    let mut lib = Vec::new();
    let mut lib_cpu = Vec::new();
    for round in 0..3 {
        let f = BufReader::with_capacity(1 << 16, File::open(&input).expect("open"));
        let c0 = common_gen::thread_cpu_seconds();
        let t0 = Instant::now();
        let stats = replay(&config, f, None, std::io::sink(), std::io::sink()).expect("replay");
        let dt = t0.elapsed().as_secs_f64();
        let cpu = match (c0, common_gen::thread_cpu_seconds()) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => dt,
        };
        assert_eq!(stats.samples, n);
        println!(
            "library round {round}: wall {dt:.3} s = {:.0} k samples/s; thread CPU {cpu:.2} s = {:.0} k samples/s; {} messages",
            n as f64 / dt / 1e3,
            n as f64 / cpu / 1e3,
            stats.messages
        );
        lib.push(n as f64 / dt);
        lib_cpu.push(n as f64 / cpu);
    }

    let cfg_path = dir.path().join("plant.yaml");
    // JSON is YAML: the config file is written as JSON.
    std::fs::write(&cfg_path, serde_json::to_string(&config).expect("config")).expect("write");
    let mut bin = Vec::new();
    for round in 0..3 {
        let t0 = Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_shopfloor-agent"))
            .args(["replay", "-c"])
            .arg(&cfg_path)
            .arg("--input")
            .arg(&input)
            .env("RUST_LOG", "off")
            .stdout(Stdio::null())
            .status()
            .expect("run binary");
        let dt = t0.elapsed().as_secs_f64();
        assert!(status.success(), "replay binary failed");
        println!(
            "binary round {round}: {dt:.3} s, {:.0} k samples/s",
            n as f64 / dt / 1e3
        );
        bin.push(n as f64 / dt);
    }
    lib.sort_by(f64::total_cmp);
    lib_cpu.sort_by(f64::total_cmp);
    bin.sort_by(f64::total_cmp);
    println!(
        "replay median: library {:.0} k samples/s wall ({:.0} k per CPU second), binary {:.0} k samples/s wall (budget 500 k)",
        lib[1] / 1e3,
        lib_cpu[1] / 1e3,
        bin[1] / 1e3
    );
}
