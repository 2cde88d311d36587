//! MQTT messages of DESIGN.md §4 built from engine outputs: topic, retain, QoS, JSON payload with
//! `schema`, `site` and a `msg_id` derived from the content (stable across re-sends and recomputation).

use serde::Serialize;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

use crate::metrics::output::{Output, StateChange, StopEvent, Summary, WindowKind};

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// Full topic.
    pub topic: String,
    /// Retained on the broker.
    pub retain: bool,
    /// 0 or 1.
    pub qos: u8,
    /// JSON payload (includes `schema`, `msg_id`, `site`).
    pub payload: Json,
    /// Deterministic id, also in the payload.
    pub msg_id: String,
}

/// `{prefix}/{site}/agent/status`.
pub fn status_topic(prefix: &str, site: &str) -> String {
    format!("{prefix}/{site}/agent/status")
}

/// First 16 hex characters of the SHA-256 of `key`.
pub fn msg_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn machine_topic(prefix: &str, site: &str, line: &str, machine: &str, leaf: &str) -> String {
    format!("{prefix}/{site}/{line}/{machine}/{leaf}")
}

fn payload<T: Serialize>(value: &T, schema: &str, site: &str, id: &str) -> Json {
    let mut p = serde_json::to_value(value).unwrap_or_else(|e| json!({ "error": e.to_string() }));
    if let Json::Object(m) = &mut p {
        m.insert("schema".into(), Json::String(schema.to_owned()));
        m.insert("msg_id".into(), Json::String(id.to_owned()));
        m.insert("site".into(), Json::String(site.to_owned()));
    }
    p
}

fn message(topic: String, retain: bool, qos: u8, payload: Json, msg_id: String) -> Message {
    Message {
        topic,
        retain,
        qos,
        payload,
        msg_id,
    }
}

fn state_message(site: &str, prefix: &str, s: &StateChange) -> Message {
    // The previous state is part of the key: Running→Stopped→Running within one poll are three messages.
    let id = msg_id(&format!(
        "{}|state|{}|{}|{}",
        s.machine,
        s.ts,
        s.previous.as_str(),
        s.state.as_str()
    ));
    let topic = machine_topic(prefix, site, &s.line, &s.machine, "state");
    message(
        topic,
        true,
        1,
        payload(s, "shopfloor.state.v1", site, &id),
        id,
    )
}

fn stop_message(site: &str, prefix: &str, s: &StopEvent) -> Message {
    let id = msg_id(&format!("{}|stop|{}", s.machine, s.start));
    let topic = machine_topic(prefix, site, &s.line, &s.machine, "stop");
    message(
        topic,
        false,
        1,
        payload(s, "shopfloor.stop.v1", site, &id),
        id,
    )
}

fn summary_message(site: &str, prefix: &str, s: &Summary) -> Message {
    let kind = s.window.kind.as_str();
    let current = s.window.kind == WindowKind::Current;
    // A closed window is one message forever; `current` is a new message at every update (its `end` is the
    // time of the figures), so the live table and dashboards that drop duplicates by msg_id see each update.
    let id = if current {
        msg_id(&format!(
            "{}|{}|{}|{}",
            s.machine, kind, s.window.start, s.window.end
        ))
    } else {
        msg_id(&format!("{}|{}|{}", s.machine, kind, s.window.start))
    };
    let topic = machine_topic(prefix, site, &s.line, &s.machine, &format!("oee/{kind}"));
    let qos = if current { 0 } else { 1 };
    message(
        topic,
        current,
        qos,
        payload(s, "shopfloor.summary.v1", site, &id),
        id,
    )
}

/// The message for one engine output.
pub fn to_message(site: &str, prefix: &str, output: &Output) -> Message {
    match output {
        Output::State(s) => state_message(site, prefix, s),
        Output::Summary(s) => summary_message(site, prefix, s),
        Output::Stop(s) => stop_message(site, prefix, s),
    }
}

/// The retained `oee/current` message (shift to date).
pub fn current_message(site: &str, prefix: &str, summary: &Summary) -> Message {
    summary_message(site, prefix, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StateCategory;
    use jiff::Timestamp;

    fn state() -> StateChange {
        StateChange {
            machine: "press-1".into(),
            line: "stamping".into(),
            ts: "2024-03-04T06:00:00Z".parse::<Timestamp>().unwrap(),
            state: StateCategory::Running,
            previous: StateCategory::Unknown,
            product: None,
            reason: None,
        }
    }

    #[test]
    fn state_goes_retained_qos1_with_schema_site_and_stable_id() {
        let m = to_message("plant", "shopfloor", &Output::State(state()));
        assert_eq!(m.topic, "shopfloor/plant/stamping/press-1/state");
        assert!(m.retain);
        assert_eq!(m.qos, 1);
        assert_eq!(m.payload["schema"], "shopfloor.state.v1");
        assert_eq!(m.payload["site"], "plant");
        assert_eq!(m.payload["state"], "running");
        assert_eq!(m.msg_id.len(), 16);
        assert_eq!(m.payload["msg_id"], m.msg_id.as_str());
        let again = to_message("plant", "shopfloor", &Output::State(state()));
        assert_eq!(again.msg_id, m.msg_id);
        let mut later = state();
        later.state = StateCategory::Stopped;
        assert_ne!(
            to_message("plant", "shopfloor", &Output::State(later)).msg_id,
            m.msg_id
        );
        let mut back = state();
        back.previous = StateCategory::Stopped;
        assert_ne!(
            to_message("plant", "shopfloor", &Output::State(back)).msg_id,
            m.msg_id,
            "same instant, same state, another transition"
        );
    }

    #[test]
    fn summaries_and_stops_go_to_their_topics_with_their_qos() {
        let cfg: crate::config::Config = serde_json::from_value(serde_json::json!({
            "site": "plant", "timezone": "UTC",
            "shifts": [{"name": "day", "start": "06:00", "end": "14:00"}],
            "machines": [{"id": "press-1", "line": "stamping", "ideal_cycle_time": "1s",
                          "signals": {"running": {}, "total_count": {}}}]
        }))
        .unwrap();
        let mut e = crate::metrics::Engine::new(&cfg).unwrap();
        let mut out = Vec::new();
        let id = e.machine_id("press-1").unwrap();
        for (ts, run) in [
            ("2024-03-04T06:00:00Z", true),
            ("2024-03-04T07:00:00Z", false),
            ("2024-03-04T07:10:00Z", true),
        ] {
            let s = crate::sample::Sample::new(
                ts.parse().unwrap(),
                id.clone(),
                crate::sample::Signal::Running,
                Some(crate::sample::Value::Bool(run)),
            );
            e.ingest(&s, &mut out);
        }
        let cur = e.current("2024-03-04T08:00:00Z".parse().unwrap());
        let later = e.current("2024-03-04T08:00:10Z".parse().unwrap());
        e.close_until("2024-03-04T14:00:00Z".parse().unwrap(), &mut out);
        let msgs: Vec<Message> = out.iter().map(|o| to_message("plant", "sf", o)).collect();
        let find = |leaf: &str| msgs.iter().find(|m| m.topic.ends_with(leaf)).unwrap();
        let shift = find("/oee/shift");
        assert_eq!(shift.topic, "sf/plant/stamping/press-1/oee/shift");
        assert_eq!((shift.retain, shift.qos), (false, 1));
        assert_eq!(shift.payload["schema"], "shopfloor.summary.v1");
        assert_eq!(shift.payload["window"]["kind"], "shift");
        let hour = find("/oee/hour");
        assert_eq!((hour.retain, hour.qos), (false, 1));
        let stop = find("/stop");
        assert_eq!((stop.retain, stop.qos), (false, 1));
        assert_eq!(stop.payload["schema"], "shopfloor.stop.v1");
        assert_eq!(stop.payload["duration_s"], 600.0);
        let ids: std::collections::HashSet<&str> = msgs.iter().map(|m| m.msg_id.as_str()).collect();
        assert_eq!(ids.len(), msgs.len(), "every message has its own id");
        let m = current_message("plant", "sf", &cur[0]);
        assert_eq!(m.topic, "sf/plant/stamping/press-1/oee/current");
        assert_eq!((m.retain, m.qos), (true, 0));
        assert_eq!(m.payload["window"]["kind"], "current");
        // Each update of the shift-to-date figures is a new message (the store re-sends the live row only when
        // its msg_id changes); the same figures give the same id.
        let m2 = current_message("plant", "sf", &later[0]);
        assert_ne!(m.msg_id, m2.msg_id, "a later update has a new msg_id");
        assert_eq!(m.msg_id, current_message("plant", "sf", &cur[0]).msg_id);
    }

    #[test]
    fn status_topic_is_under_agent() {
        assert_eq!(status_topic("sf", "plant"), "sf/plant/agent/status");
    }
}
