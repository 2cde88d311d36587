//! Routing: topic → (machine, role, decoder), compiled from machines' signal topics and `mqtt_inputs`
//! templates, plus the deduplicated list of subscription filters.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::config::{Config, MachineConfig};
use crate::sample::{MachineId, Signal};

use super::payload::{Decoder, DecoderError, DecoderSpec};

/// A configuration the router cannot be built from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouteError {
    /// Not a valid MQTT topic filter.
    #[error("`{0}` is not a valid MQTT topic filter")]
    Filter(String),
    /// Unknown role name in `signals` or `mqtt_inputs`.
    #[error("{at}: `{role}` is not a signal role")]
    Role {
        /// Where (machine id or template topic).
        at: String,
        /// The name given.
        role: String,
    },
    /// A signal of an MQTT machine names no topic.
    #[error("machine `{machine}` signal `{role}`: no `topic`")]
    NoTopic {
        /// Machine id.
        machine: String,
        /// Role.
        role: String,
    },
    /// The decoder settings are unusable.
    #[error("{at}: {source}")]
    Decoder {
        /// Where.
        at: String,
        /// Cause.
        source: DecoderError,
    },
}

/// Who a route feeds.
#[derive(Debug, Clone)]
enum Target {
    /// A configured machine.
    Fixed(MachineId),
    /// The machine id is the topic segment at this index.
    Segment(usize),
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    filter: Filter,
    target: Target,
    /// Role it feeds.
    pub signal: Signal,
    /// How its payloads decode.
    pub decoder: Arc<Decoder>,
}

/// A match of a topic: the machine, or the id found in the topic that no machine has.
#[derive(Debug, Clone, Copy)]
pub enum Hit<'a> {
    /// Feed this machine.
    Machine(&'a MachineId, &'a Route),
    /// A template matched but the segment names no configured machine (or is absent).
    UnknownMachine(&'a str),
}

/// A validated topic filter, split into levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    levels: Vec<String>,
    wildcard: bool,
}

impl Filter {
    /// Validate a filter: `+` and `#` fill a whole level, `#` only last, no empty filter.
    pub fn parse(s: &str) -> Result<Filter, RouteError> {
        let err = || RouteError::Filter(s.to_owned());
        if s.is_empty() || s.contains('\0') {
            return Err(err());
        }
        let levels: Vec<String> = s.split('/').map(str::to_owned).collect();
        let last = levels.len() - 1;
        for (i, l) in levels.iter().enumerate() {
            let bad_plus = l.contains('+') && l != "+";
            let bad_hash = l.contains('#') && (l != "#" || i != last);
            if bad_plus || bad_hash {
                return Err(err());
            }
        }
        let wildcard = levels.iter().any(|l| l == "+" || l == "#");
        Ok(Filter { levels, wildcard })
    }

    /// MQTT 3.1.1 §4.7 matching; wildcards at the first level do not match `$`-topics.
    pub fn matches(&self, topic: &str) -> bool {
        if !self.wildcard {
            return self.levels.len() == topic.split('/').count()
                && self
                    .levels
                    .iter()
                    .zip(topic.split('/'))
                    .all(|(f, t)| f == t);
        }
        if topic.starts_with('$') && matches!(self.levels[0].as_str(), "+" | "#") {
            return false;
        }
        let mut t = topic.split('/');
        for f in &self.levels {
            if f == "#" {
                return true;
            }
            match t.next() {
                Some(level) if f == "+" || f == level => {}
                _ => return false,
            }
        }
        t.next().is_none()
    }

    /// The filter as text.
    pub fn as_string(&self) -> String {
        self.levels.join("/")
    }
}

/// The compiled routing table.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
    /// Exact topics → route indices (fast path).
    exact: HashMap<String, Vec<usize>>,
    /// Routes whose filter has wildcards.
    wild: Vec<usize>,
    /// Configured machine ids (for template segments).
    machines: HashMap<String, MachineId>,
    subscriptions: Vec<String>,
}

fn uses_mqtt(m: &MachineConfig) -> bool {
    m.source.mqtt.is_some()
        || (m.source.modbus.is_none() && m.signals.values().any(|s| s.topic.is_some()))
}

impl Router {
    /// Build from the whole configuration.
    pub fn build(config: &Config) -> Result<Router, RouteError> {
        let mut r = Router {
            machines: config
                .machines
                .iter()
                .map(|m| (m.id.clone(), MachineId::from(m.id.as_str())))
                .collect(),
            ..Router::default()
        };
        let mut subs = BTreeSet::new();
        for m in config.machines.iter().filter(|m| uses_mqtt(m)) {
            let id = MachineId::from(m.id.as_str());
            let machine_filter = m.source.mqtt.as_ref().and_then(|s| s.topic.as_deref());
            if let Some(f) = machine_filter {
                subs.insert(Filter::parse(f)?.as_string());
            }
            for (role, sc) in &m.signals {
                let signal: Signal = role.parse().map_err(|_| RouteError::Role {
                    at: format!("machine `{}`", m.id),
                    role: role.clone(),
                })?;
                let topic = sc.topic.as_deref().ok_or_else(|| RouteError::NoTopic {
                    machine: m.id.clone(),
                    role: role.clone(),
                })?;
                let filter = Filter::parse(topic)?;
                if machine_filter.is_none() {
                    subs.insert(filter.as_string());
                }
                let decoder = Decoder::new(DecoderSpec {
                    signal,
                    json: sc.json.as_deref(),
                    timestamp: sc.timestamp.as_deref(),
                    map: &sc.map,
                    scale: sc.scale,
                    offset: sc.offset,
                })
                .map_err(|source| RouteError::Decoder {
                    at: format!("machine `{}` signal `{role}`", m.id),
                    source,
                })?;
                r.push(Route {
                    filter,
                    target: Target::Fixed(id.clone()),
                    signal,
                    decoder: Arc::new(decoder),
                });
            }
        }
        for t in &config.mqtt_inputs {
            let at = format!("mqtt_inputs `{}`", t.topic);
            let signal: Signal = t.signal.parse().map_err(|_| RouteError::Role {
                at: at.clone(),
                role: t.signal.clone(),
            })?;
            let filter = Filter::parse(&t.topic)?;
            subs.insert(filter.as_string());
            let decoder = Decoder::new(DecoderSpec {
                signal,
                json: t.json.as_deref(),
                timestamp: t.timestamp.as_deref(),
                map: &t.map,
                scale: t.scale,
                offset: None,
            })
            .map_err(|source| RouteError::Decoder { at, source })?;
            r.push(Route {
                filter,
                target: Target::Segment(t.machine_segment),
                signal,
                decoder: Arc::new(decoder),
            });
        }
        r.subscriptions = subs.into_iter().collect();
        Ok(r)
    }

    fn push(&mut self, route: Route) {
        let i = self.routes.len();
        if route.filter.wildcard {
            self.wild.push(i);
        } else {
            self.exact
                .entry(route.filter.as_string())
                .or_default()
                .push(i);
        }
        self.routes.push(route);
    }

    /// Deduplicated subscription filters.
    pub fn subscriptions(&self) -> &[String] {
        &self.subscriptions
    }

    /// True when nothing is to be subscribed.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every route matching `topic`, in configuration order within exact and wildcard groups.
    pub fn resolve<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = Hit<'a>> + 'a {
        let exact = self.exact.get(topic).map(Vec::as_slice).unwrap_or(&[]);
        let wild = self
            .wild
            .iter()
            .copied()
            .filter(move |&i| self.routes[i].filter.matches(topic));
        exact.iter().copied().chain(wild).map(move |i| {
            let route = &self.routes[i];
            match &route.target {
                Target::Fixed(id) => Hit::Machine(id, route),
                Target::Segment(seg) => {
                    let name = topic.split('/').nth(*seg).unwrap_or("");
                    match self.machines.get(name) {
                        Some(id) => Hit::Machine(id, route),
                        None => Hit::UnknownMachine(name),
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(v: serde_json::Value) -> Config {
        serde_json::from_value(v).unwrap()
    }

    fn base(machines: serde_json::Value, inputs: serde_json::Value) -> Config {
        config(serde_json::json!({
            "site": "s", "timezone": "UTC", "machines": machines, "mqtt_inputs": inputs
        }))
    }

    fn hits(r: &Router, topic: &str) -> Vec<String> {
        r.resolve(topic)
            .map(|h| match h {
                Hit::Machine(m, route) => format!("{m}:{}", route.signal),
                Hit::UnknownMachine(name) => format!("unknown:{name}"),
            })
            .collect()
    }

    #[test]
    fn filter_wildcards_follow_mqtt_rules() {
        let f = |s| Filter::parse(s).unwrap();
        assert!(f("a/+/c").matches("a/b/c"));
        assert!(!f("a/+/c").matches("a/b/d/c"));
        assert!(f("a/#").matches("a/b/c"));
        assert!(f("a/#").matches("a"));
        assert!(f("#").matches("x/y"));
        assert!(!f("#").matches("$SYS/x"));
        assert!(!f("+/x").matches("$SYS/x"));
        assert!(f("a/b").matches("a/b"));
        assert!(!f("a/b").matches("a/b/c"));
        assert!(f("+/+").matches("/x"));
        for bad in ["", "a/#/b", "a+/b", "a/b#", "a/+x"] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn machine_signal_topics_route_to_their_roles() {
        let r = Router::build(&base(
            serde_json::json!([{
                "id": "lathe-2", "source": {"mqtt": {"topic": "plant/lathe2/#"}},
                "signals": {
                    "total_count": {"topic": "plant/lathe2/counter", "json": "$.count"},
                    "reject_count": {"topic": "plant/lathe2/counter", "json": "$.rej"},
                    "running": {"topic": "plant/lathe2/status"}
                }
            }]),
            serde_json::json!([]),
        ))
        .unwrap();
        assert_eq!(
            hits(&r, "plant/lathe2/counter"),
            ["lathe-2:reject_count", "lathe-2:total_count"]
        );
        assert_eq!(hits(&r, "plant/lathe2/status"), ["lathe-2:running"]);
        assert!(hits(&r, "plant/lathe2/other").is_empty());
        assert_eq!(r.subscriptions(), ["plant/lathe2/#"]);
    }

    #[test]
    fn subscriptions_fall_back_to_signal_topics_and_are_deduplicated() {
        let r = Router::build(&base(
            serde_json::json!([
                {"id": "a", "signals": {
                    "running": {"topic": "f/a/run"},
                    "total_count": {"topic": "f/+/count", "json": "$.a"}}},
                {"id": "b", "signals": {"total_count": {"topic": "f/+/count", "json": "$.b"}}},
                {"id": "plc", "source": {"modbus": {"host": "127.0.0.1"}},
                 "signals": {"running": {"register": "coil", "address": 0}}}
            ]),
            serde_json::json!([{"topic": "f/+/count", "machine_segment": 1, "signal": "good_count"}]),
        ))
        .unwrap();
        assert_eq!(r.subscriptions(), ["f/+/count", "f/a/run"]);
        assert_eq!(
            hits(&r, "f/b/count"),
            ["a:total_count", "b:total_count", "b:good_count"]
        );
    }

    #[test]
    fn template_takes_machine_id_from_topic_segment() {
        let r = Router::build(&base(
            serde_json::json!([{"id": "press-1"}, {"id": "press-2"}]),
            serde_json::json!([{
                "topic": "sensors/+/count", "machine_segment": 1,
                "signal": "total_count", "json": "$.n"
            }]),
        ))
        .unwrap();
        assert_eq!(hits(&r, "sensors/press-2/count"), ["press-2:total_count"]);
        assert_eq!(hits(&r, "sensors/ghost/count"), ["unknown:ghost"]);
        assert_eq!(r.subscriptions(), ["sensors/+/count"]);
    }

    #[test]
    fn no_mqtt_machine_means_empty_router() {
        let r = Router::build(&base(
            serde_json::json!([{"id": "plc", "source": {"modbus": {"host": "h"}}}]),
            serde_json::json!([]),
        ))
        .unwrap();
        assert!(r.is_empty());
        assert!(r.subscriptions().is_empty());
    }

    #[test]
    fn unusable_config_is_reported_with_its_place() {
        let bad_role = base(
            serde_json::json!([{"id": "m", "signals": {"speed": {"topic": "x"}}}]),
            serde_json::json!([]),
        );
        assert!(matches!(
            Router::build(&bad_role),
            Err(RouteError::Role { .. })
        ));
        let no_topic = base(
            serde_json::json!([{"id": "m", "source": {"mqtt": {}}, "signals": {"running": {}}}]),
            serde_json::json!([]),
        );
        assert!(matches!(
            Router::build(&no_topic),
            Err(RouteError::NoTopic { .. })
        ));
        let bad_filter = base(
            serde_json::json!([{"id": "m", "signals": {"running": {"topic": "a/#/b"}}}]),
            serde_json::json!([]),
        );
        assert!(matches!(
            Router::build(&bad_filter),
            Err(RouteError::Filter(_))
        ));
        let bad_path = base(
            serde_json::json!([{"id": "m", "signals": {"running": {"topic": "a", "json": "run"}}}]),
            serde_json::json!([]),
        );
        assert!(matches!(
            Router::build(&bad_path),
            Err(RouteError::Decoder { .. })
        ));
    }
}
