//! A private Mosquitto on a loopback port with persistence in a directory of our own (the one launcher of
//! every test that needs Mosquitto).
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// True when the `mosquitto` binary is on PATH.
pub fn available() -> bool {
    Command::new("mosquitto")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A running Mosquitto; killed on drop if still running.
pub struct Mosquitto {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    conf: PathBuf,
}

impl Mosquitto {
    /// Start on `127.0.0.1:port` with `persistence true` in `dir` (reused across restarts).
    pub fn start(port: u16, dir: &Path) -> Mosquitto {
        Self::start_with(port, dir, "allow_anonymous true\n")
    }

    /// Like [`Mosquitto::start`], with `listener_conf` lines (TLS files, auth) after the listener line.
    pub fn start_with(port: u16, dir: &Path, listener_conf: &str) -> Mosquitto {
        let conf = dir.join("mosquitto.conf");
        // Started as root, Mosquitto drops to user `mosquitto`, which cannot write our temp dir
        // (persistence and log would silently fail): run it as ourselves.
        let user = Command::new("id")
            .arg("-un")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "root".into());
        let text = format!(
            "user {user}\npersistence true\npersistence_location {}/\nlistener {port} 127.0.0.1\n\
             {listener_conf}max_queued_messages 0\nmax_inflight_messages 100\n\
             log_dest file {}\nlog_type error\nlog_type warning\nlog_type notice\n",
            dir.display(),
            dir.join("mosquitto.log").display()
        );
        std::fs::write(&conf, text).expect("write mosquitto.conf");
        let mut m = Mosquitto {
            child: None,
            port,
            dir: dir.to_owned(),
            conf,
        };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto on PATH (apt-get install -y mosquitto mosquitto-clients)");
        self.child = Some(child);
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "mosquitto did not listen on {}; log: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop (SIGTERM, persistence saved), then start again on the same port with the same persistence.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }

    /// SIGTERM (Mosquitto saves its persistence file) and wait up to 10 s for the exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("mosquitto ignored SIGTERM for 10 s");
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
