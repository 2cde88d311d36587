//! Semantic checks on the typed config: ids, time zone, shift calendar, sources, register maps, topics.
//! Every check pushes an issue and carries on, so one run reports every problem.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;

use jiff::tz::TimeZone;

use super::access::{parse_date, parse_hhmm};
use super::error::{choice_hint, did_you_mean, ConfigIssue};
use super::types::*;
use super::HumanDuration;
use crate::sample::Signal;

/// The parts of a config that read without structural errors, with their list indices.
pub struct Parts<'a> {
    /// Top-level keys (its lists are empty; the items below hold them).
    pub top: Option<&'a Config>,
    /// Shifts that read.
    pub shifts: Vec<(usize, &'a ShiftConfig)>,
    /// Machines that read.
    pub machines: Vec<(usize, &'a MachineConfig)>,
    /// MQTT input templates that read.
    pub inputs: Vec<(usize, &'a MqttInputTemplate)>,
    /// Number of `mqtt_inputs` entries, read or not.
    pub input_count: usize,
}

const ROLES: [&str; 7] = [
    "running",
    "state",
    "total_count",
    "good_count",
    "reject_count",
    "product",
    "reason",
];
const SEGMENT_HINT: &str = "use letters, digits, `-`, `_` or `.`";
const MINUTES_PER_DAY: i64 = 1440;
const MINUTES_PER_WEEK: i64 = 7 * MINUTES_PER_DAY;

/// Run every semantic check.
pub fn check(parts: &Parts<'_>, issues: &mut Vec<ConfigIssue>) {
    if let Some(top) = parts.top {
        check_top(top, issues);
    }
    check_shifts(&parts.shifts, issues);
    let template_roles: BTreeSet<&str> = parts
        .inputs
        .iter()
        .map(|(_, t)| t.signal.as_str())
        .collect();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut registers = Registers::default();
    let mut buses: HashMap<&str, (usize, &str, &SerialConfig)> = HashMap::new();
    for &(i, m) in &parts.machines {
        let mut ctx = Ctx {
            base: format!("machines[{i}]"),
            machine: &m.id,
            issues,
        };
        if let Some(first) = ids.get(m.id.as_str()) {
            ctx.push(
                "id",
                format!("`{}` is already used by machines[{first}]", m.id),
                None,
            );
        } else {
            ids.insert(&m.id, i);
        }
        check_machine(m, parts.input_count > 0, &template_roles, &mut ctx);
        if let Some(mb) = &m.source.modbus {
            if m.source.mqtt.is_none() {
                registers.add(i, m, mb, &mut ctx);
            }
            if let Some(serial) = &mb.serial {
                match buses.get(serial.port.as_str()) {
                    Some((j, other_id, first))
                        if (first.baud, first.parity, first.data_bits, first.stop_bits)
                            != (
                                serial.baud,
                                serial.parity,
                                serial.data_bits,
                                serial.stop_bits,
                            ) =>
                    {
                        ctx.push(
                            "source.modbus.serial",
                            format!(
                                "`{}` is also used by machines[{j}] ({other_id}) with other line settings",
                                serial.port
                            ),
                            Some("machines on one serial bus share baud, parity, data_bits and stop_bits".into()),
                        );
                    }
                    Some(_) => {}
                    None => {
                        buses.insert(&serial.port, (i, &m.id, serial));
                    }
                }
            }
        }
    }
    for &(i, t) in &parts.inputs {
        check_template(i, t, issues);
    }
}

/// Things that are allowed but probably not meant: unused maps, secret files this host cannot read now.
pub fn warnings(c: &Config) -> Vec<ConfigIssue> {
    let mut out = Vec::new();
    let template_roles: BTreeSet<&str> = c.mqtt_inputs.iter().map(|t| t.signal.as_str()).collect();
    for (i, m) in c.machines.iter().enumerate() {
        let fed_by_templates = m.source.modbus.is_none() && m.source.mqtt.is_none();
        let has = |role: &str| {
            m.signals.contains_key(role) || (fed_by_templates && template_roles.contains(role))
        };
        for (key, set, role) in [
            ("state_codes", !m.state_codes.is_empty(), "state"),
            ("products", !m.products.is_empty(), "product"),
            ("reasons", !m.reasons.is_empty(), "reason"),
        ] {
            if set && !has(role) {
                out.push(
                    ConfigIssue::new(
                        format!("machines[{i}].{key}"),
                        format!(
                            "listed, but the machine has no `{role}` signal, so it is never used"
                        ),
                    )
                    .machine(Some(&m.id)),
                );
            }
        }
    }
    let mut files: Vec<(&str, Option<&std::path::Path>)> = vec![
        ("mqtt.password_file", c.mqtt.password_file.as_deref()),
        (
            "mqtt.tls.ca_file",
            c.mqtt.tls.as_ref().map(|t| t.ca_file.as_path()),
        ),
        (
            "mqtt.tls.cert_file",
            c.mqtt.tls.as_ref().and_then(|t| t.cert_file.as_deref()),
        ),
        (
            "mqtt.tls.key_file",
            c.mqtt.tls.as_ref().and_then(|t| t.key_file.as_deref()),
        ),
    ];
    if let Some(input) = &c.mqtt.input {
        files.push(("mqtt.input.password_file", input.password_file.as_deref()));
        files.push((
            "mqtt.input.tls.ca_file",
            input.tls.as_ref().map(|t| t.ca_file.as_path()),
        ));
        files.push((
            "mqtt.input.tls.cert_file",
            input.tls.as_ref().and_then(|t| t.cert_file.as_deref()),
        ));
        files.push((
            "mqtt.input.tls.key_file",
            input.tls.as_ref().and_then(|t| t.key_file.as_deref()),
        ));
    }
    for (key, path) in files {
        let Some(path) = path else { continue };
        if let Err(e) = std::fs::File::open(path) {
            out.push(
                ConfigIssue::new(
                    key,
                    format!("{} cannot be read on this host: {e}", path.display()),
                )
                .hint("checked again when the agent starts"),
            );
        }
    }
    out
}

/// Issue sink for one machine.
struct Ctx<'a> {
    base: String,
    machine: &'a str,
    issues: &'a mut Vec<ConfigIssue>,
}

impl Ctx<'_> {
    fn push(&mut self, key: &str, message: String, hint: Option<String>) {
        let path = if key.is_empty() {
            self.base.clone()
        } else {
            format!("{}.{key}", self.base)
        };
        let mut issue = ConfigIssue::new(path, message).machine(Some(self.machine));
        issue.hint = hint;
        self.issues.push(issue);
    }
}

fn issue(path: impl Into<String>, message: impl Into<String>, hint: Option<String>) -> ConfigIssue {
    let mut i = ConfigIssue::new(path, message);
    i.hint = hint;
    i
}

/// Why `s` is not a topic segment, if it is not.
fn segment_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("is empty".into());
    }
    if let Some(c) = s.chars().find(|c| matches!(c, '+' | '#' | '/')) {
        return Some(format!("`{s}` contains `{c}`, which MQTT topics reserve"));
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Some(format!("`{s}` contains a space or control character"));
    }
    None
}

/// Why `f` is not a valid MQTT topic filter, if it is not.
fn filter_problem(f: &str) -> Option<String> {
    if f.is_empty() {
        return Some("topic is empty".into());
    }
    let segments: Vec<&str> = f.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        if seg.contains('#') && (*seg != "#" || i + 1 != segments.len()) {
            return Some(format!(
                "`{f}`: `#` must be a whole segment and the last one"
            ));
        }
        if seg.contains('+') && *seg != "+" {
            return Some(format!("`{f}`: `+` must be a whole segment"));
        }
    }
    if f.contains('\0') {
        return Some(format!("`{f}` contains a NUL character"));
    }
    None
}

/// Why `p` is not a JSON path (`$`, `$.a.b`, `$.a[0]`) or JSON pointer (`/a/b`), if it is not.
fn json_path_problem(p: &str) -> Option<String> {
    if p.starts_with('/') {
        let bad_escape = p
            .match_indices('~')
            .any(|(i, _)| !matches!(p.as_bytes().get(i + 1), Some(b'0' | b'1')));
        return bad_escape
            .then(|| format!("`{p}`: `~` must be followed by 0 or 1 in a JSON pointer"));
    }
    let Some(mut rest) = p.strip_prefix('$') else {
        return Some(format!("`{p}` is not a JSON path"));
    };
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return Some(format!("`{p}` has an empty field name"));
            }
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else {
                return Some(format!("`{p}` has an unclosed `[`"));
            };
            if end == 0 || !after[..end].bytes().all(|b| b.is_ascii_digit()) {
                return Some(format!("`{p}`: `[…]` must hold a list index"));
            }
            rest = &after[end + 1..];
        } else {
            return Some(format!("`{p}`: expected `.field` or `[index]` after `$`"));
        }
    }
    None
}

const JSON_PATH_HINT: &str = "write `$.a.b` (`$.a[0]` for a list item) or a JSON pointer `/a/b`";

fn check_top(c: &Config, issues: &mut Vec<ConfigIssue>) {
    if let Some(why) = segment_problem(&c.site) {
        issues.push(issue(
            "site",
            format!("not a valid topic segment: {why}"),
            Some(SEGMENT_HINT.into()),
        ));
    }
    if TimeZone::get(&c.timezone).is_err() {
        let db = jiff::tz::db();
        let names: Vec<String> = db.available().map(|n| n.as_str().to_owned()).collect();
        let hint = match did_you_mean(&c.timezone, names.iter().map(String::as_str)) {
            Some(best) => format!("did you mean `{best}`?"),
            None => "an IANA zone name such as `Europe/Paris` or `America/Toronto`".into(),
        };
        issues.push(issue(
            "timezone",
            format!("unknown time zone `{}`", c.timezone),
            Some(hint),
        ));
    }
    let m = &c.mqtt;
    if m.topic_prefix.is_empty()
        || m.topic_prefix.starts_with('$')
        || m.topic_prefix
            .split('/')
            .any(|s| segment_problem(s).is_some())
    {
        issues.push(issue(
            "mqtt.topic_prefix",
            format!("`{}` is not a valid topic prefix", m.topic_prefix),
            Some(
                "segments separated by `/`, none empty, no `+` or `#`, not starting with `$`"
                    .into(),
            ),
        ));
    }
    check_broker(
        "mqtt",
        (&m.host, m.port, &m.client_id),
        m.tls.as_ref(),
        issues,
    );
    if m.keep_alive.as_millis() < 1000 {
        issues.push(issue(
            "mqtt.keep_alive",
            format!("{} is too short", m.keep_alive),
            Some("valid: 1s or more".into()),
        ));
    }
    if m.inflight == 0 {
        issues.push(issue(
            "mqtt.inflight",
            "0 is out of range",
            Some("valid: 1–65535".into()),
        ));
    }
    if m.max_packet_size.0 < 1024 {
        issues.push(issue(
            "mqtt.max_packet_size",
            format!("{} bytes is too small", m.max_packet_size.0),
            Some("valid: 1KB or more".into()),
        ));
    }
    if let Some(input) = &m.input {
        let endpoint = (input.host.as_str(), input.port, input.client_id.as_str());
        check_broker("mqtt.input", endpoint, input.tls.as_ref(), issues);
    }
    let s = &c.storage;
    if s.path.as_os_str().is_empty() {
        issues.push(issue("storage.path", "is empty", None));
    }
    if s.max_size.0 < 1 << 20 {
        issues.push(issue(
            "storage.max_size",
            format!("{} bytes is too small", s.max_size.0),
            Some("valid: 1MB or more".into()),
        ));
    }
    for (key, d) in [
        ("storage.snapshot_interval", s.snapshot_interval),
        ("storage.commit_interval", s.commit_interval),
        ("live_interval", c.live_interval),
    ] {
        if d.is_zero() {
            issues.push(issue(key, "must be more than 0", None));
        }
    }
    if let Some(listen) = &c.health.listen {
        if listen.parse::<SocketAddr>().is_err() {
            issues.push(issue(
                "health.listen",
                format!("`{listen}` is not an address and port"),
                Some("e.g. `127.0.0.1:9898`".into()),
            ));
        }
    }
    for (i, d) in c.non_production_dates.iter().enumerate() {
        if parse_date(d).is_none() {
            issues.push(issue(
                format!("non_production_dates[{i}]"),
                format!("`{d}` is not a date"),
                Some("write `YYYY-MM-DD`".into()),
            ));
        }
    }
}

/// Host, port, client id and TLS files of a broker connection under `base`.
fn check_broker(
    base: &str,
    (host, port, client_id): (&str, u16, &str),
    tls: Option<&TlsConfig>,
    issues: &mut Vec<ConfigIssue>,
) {
    if host.trim().is_empty() {
        issues.push(issue(format!("{base}.host"), "is empty", None));
    }
    if port == 0 {
        issues.push(issue(
            format!("{base}.port"),
            "0 is out of range",
            Some("valid: 1–65535".into()),
        ));
    }
    if client_id.trim().is_empty() {
        issues.push(issue(
            format!("{base}.client_id"),
            "is empty",
            Some("a stable id keeps the broker session".into()),
        ));
    }
    check_tls(&format!("{base}.tls"), tls, issues);
}

fn check_tls(path: &str, tls: Option<&TlsConfig>, issues: &mut Vec<ConfigIssue>) {
    if let Some(t) = tls {
        if t.cert_file.is_some() != t.key_file.is_some() {
            issues.push(issue(
                path,
                "`cert_file` and `key_file` go together",
                Some("set both for client certificates, or neither".into()),
            ));
        }
    }
}

/// A shift as minutes: start in the day, length.
struct Span {
    start: i64,
    len: i64,
}

fn minutes(t: jiff::civil::Time) -> i64 {
    i64::from(t.hour()) * 60 + i64::from(t.minute())
}

fn check_shifts(shifts: &[(usize, &ShiftConfig)], issues: &mut Vec<ConfigIssue>) {
    let mut spans: Vec<(usize, &ShiftConfig, Span)> = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    for &(i, s) in shifts {
        let base = format!("shifts[{i}]");
        if s.name.trim().is_empty() {
            issues.push(issue(format!("{base}.name"), "is empty", None));
        } else if let Some(first) = names.get(s.name.as_str()) {
            issues.push(issue(
                format!("{base}.name"),
                format!("`{}` is already used by shifts[{first}]", s.name),
                None,
            ));
        } else {
            names.insert(&s.name, i);
        }
        let start = parse_hhmm(&s.start);
        let end = parse_hhmm(&s.end);
        for (key, text, t) in [("start", &s.start, start), ("end", &s.end, end)] {
            if t.is_none() {
                issues.push(issue(
                    format!("{base}.{key}"),
                    format!("`{text}` is not a time of day"),
                    Some("write `HH:MM`, 00:00–23:59, quoted in YAML".into()),
                ));
            }
        }
        if s.days.is_empty() {
            issues.push(issue(
                format!("{base}.days"),
                "is empty: the shift never starts",
                Some("e.g. `[mon, tue, wed, thu, fri]`, or leave `days` out for every day".into()),
            ));
        }
        let (Some(start), Some(end)) = (start, end) else {
            continue;
        };
        let (s0, mut e0) = (minutes(start), minutes(end));
        if e0 <= s0 {
            e0 += MINUTES_PER_DAY;
        }
        check_breaks(&base, s, s0, e0, issues);
        spans.push((
            i,
            s,
            Span {
                start: s0,
                len: e0 - s0,
            },
        ));
    }
    for (a, (_, sa, pa)) in spans.iter().enumerate() {
        for (ib, sb, pb) in &spans[a + 1..] {
            if let Some(day) = first_overlap(sa, pa, sb, pb) {
                let ia = spans[a].0;
                issues.push(issue(
                    format!("shifts[{ib}]"),
                    format!(
                        "`{}` starting {day} overlaps shift `{}` (shifts[{ia}])",
                        sb.name, sa.name
                    ),
                    Some(
                        "shifts must not overlap; an end at or before the start means the next day"
                            .into(),
                    ),
                ));
            }
        }
    }
}

/// The day (of shift `b`) on which the two shifts first overlap in the weekly calendar.
fn first_overlap(sa: &ShiftConfig, pa: &Span, sb: &ShiftConfig, pb: &Span) -> Option<&'static str> {
    for db in Weekday::ALL.iter().filter(|d| sb.days.contains(d)) {
        let b0 = *db as i64 * MINUTES_PER_DAY + pb.start;
        for da in Weekday::ALL.iter().filter(|d| sa.days.contains(d)) {
            let a0 = *da as i64 * MINUTES_PER_DAY + pa.start;
            for wrap in [-MINUTES_PER_WEEK, 0, MINUTES_PER_WEEK] {
                if a0.max(b0 + wrap) < (a0 + pa.len).min(b0 + wrap + pb.len) {
                    return Some(weekday_name(*db));
                }
            }
        }
    }
    None
}

fn weekday_name(d: Weekday) -> &'static str {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][d as usize]
}

fn check_breaks(base: &str, s: &ShiftConfig, s0: i64, e0: i64, issues: &mut Vec<ConfigIssue>) {
    let mut placed: Vec<(usize, i64, i64)> = Vec::new();
    for (k, b) in s.breaks.iter().enumerate() {
        let path = format!("{base}.breaks[{k}]");
        let (Some(bs), Some(be)) = (parse_hhmm(&b.start), parse_hhmm(&b.end)) else {
            for (key, text) in [("start", &b.start), ("end", &b.end)] {
                if parse_hhmm(text).is_none() {
                    issues.push(issue(
                        format!("{path}.{key}"),
                        format!("`{text}` is not a time of day"),
                        Some("write `HH:MM`, 00:00–23:59, quoted in YAML".into()),
                    ));
                }
            }
            continue;
        };
        let mut b0 = minutes(bs);
        if b0 < s0 {
            b0 += MINUTES_PER_DAY;
        }
        let mut b1 = minutes(be)
            + if b0 >= MINUTES_PER_DAY {
                MINUTES_PER_DAY
            } else {
                0
            };
        if b1 <= b0 {
            b1 += MINUTES_PER_DAY;
        }
        if minutes(bs) == minutes(be) {
            issues.push(issue(
                path,
                format!("break {}–{} is empty", b.start, b.end),
                None,
            ));
            continue;
        }
        if b0 < s0 || b1 > e0 {
            issues.push(issue(
                path,
                format!(
                    "break {}–{} is outside the shift {}–{}",
                    b.start, b.end, s.start, s.end
                ),
                Some("a break must lie within its shift".into()),
            ));
            continue;
        }
        if let Some((other, _, _)) = placed.iter().find(|(_, o0, o1)| b0 < *o1 && *o0 < b1) {
            issues.push(issue(
                path,
                format!(
                    "break {}–{} overlaps {base}.breaks[{other}]",
                    b.start, b.end
                ),
                None,
            ));
            continue;
        }
        placed.push((k, b0, b1));
    }
}

fn check_machine(
    m: &MachineConfig,
    has_templates: bool,
    template_roles: &BTreeSet<&str>,
    ctx: &mut Ctx<'_>,
) {
    if let Some(why) = segment_problem(&m.id) {
        ctx.push(
            "id",
            format!("not a valid topic segment: {why}"),
            Some(SEGMENT_HINT.into()),
        );
    }
    if let Some(why) = segment_problem(&m.line) {
        ctx.push(
            "line",
            format!("not a valid topic segment: {why}"),
            Some(SEGMENT_HINT.into()),
        );
    }
    match m.ideal_cycle_time {
        Some(d) if d.is_zero() => ctx.push("ideal_cycle_time", "must be more than 0".into(), None),
        None if m.products.is_empty() => ctx.push(
            "ideal_cycle_time",
            "missing: performance needs an ideal cycle time".into(),
            Some("set `ideal_cycle_time`, or per-product times under `products`".into()),
        ),
        _ => {}
    }
    for (p, d) in &m.products {
        if d.is_zero() {
            ctx.push(&format!("products.{p}"), "must be more than 0".into(), None);
        }
    }
    if m.stop_after.is_some_and(HumanDuration::is_zero) {
        ctx.push("stop_after", "must be more than 0".into(), None);
    }
    let mut roles: BTreeSet<&str> = BTreeSet::new();
    for role in m.signals.keys() {
        if ROLES.contains(&role.as_str()) {
            roles.insert(role);
        } else {
            ctx.push(
                &format!("signals.{role}"),
                format!("unknown signal role `{role}`"),
                Some(choice_hint(role, &ROLES, "roles")),
            );
        }
    }
    let source = &m.source;
    if let Some(mb) = &source.modbus {
        check_modbus_source(mb, ctx);
    }
    match (&source.modbus, &source.mqtt) {
        (Some(_), Some(_)) => ctx.push(
            "source",
            "has both `modbus` and `mqtt`".into(),
            Some("a machine reads one source; choose one".into()),
        ),
        (None, None) if !has_templates => ctx.push(
            "source",
            "missing: no `modbus` or `mqtt` source".into(),
            Some(
                "set `source.modbus` or `source.mqtt`, or feed the machine through `mqtt_inputs`"
                    .into(),
            ),
        ),
        (None, None) => {
            if !m.signals.is_empty() {
                ctx.push(
                    "signals",
                    "listed, but the machine has no `source` to read them from".into(),
                    Some("add `source.modbus` or `source.mqtt`, or drop `signals` for a machine fed by `mqtt_inputs`".into()),
                );
            }
            roles.extend(template_roles.iter().copied());
        }
        (Some(_), None) => {
            for (role, sig) in &m.signals {
                check_modbus_signal(role, sig, ctx);
            }
            if m.signals.contains_key("state") {
                check_numeric_state_codes(m, ctx);
            }
        }
        (None, Some(mq)) => {
            let bad_filter = mq.topic.as_deref().and_then(filter_problem);
            if let Some(why) = &bad_filter {
                ctx.push("source.mqtt.topic", why.clone(), None);
            }
            for (role, sig) in &m.signals {
                check_mqtt_signal(role, sig, ctx);
                let outer = mq.topic.as_deref().filter(|_| bad_filter.is_none());
                if let (Some(outer), Some(topic)) = (outer, sig.topic.as_deref()) {
                    if filter_problem(topic).is_none() && !filter_covers(outer, topic) {
                        ctx.push(
                            &format!("signals.{role}.topic"),
                            format!("`{topic}` is outside the machine's subscription `{outer}`"),
                            Some("widen `source.mqtt.topic` or leave it out".into()),
                        );
                    }
                }
            }
        }
    }
    let counters = ["total_count", "good_count", "reject_count"]
        .iter()
        .filter(|c| roles.contains(*c))
        .count();
    if !roles.contains("total_count") && counters < 2 {
        ctx.push(
            "signals",
            "no part counter".into(),
            Some("add `total_count`, or two of `total_count`, `good_count`, `reject_count`".into()),
        );
    }
    if m.ideal_cycle_time.is_none() && !m.products.is_empty() && !roles.contains("product") {
        ctx.push(
            "products",
            "listed, but without a `product` signal and without `ideal_cycle_time` no part gets an ideal time".into(),
            Some("add a `product` signal, or set the machine's `ideal_cycle_time`".into()),
        );
    }
    if roles.contains("state") && m.state_codes.is_empty() {
        ctx.push(
            "state_codes",
            "missing: the `state` signal needs `state_codes`".into(),
            Some("map each code to running, stopped, setup, planned_stop or unknown".into()),
        );
    }
}

/// A Modbus `state` register gives numbers: a code such as `RUN` could never match.
fn check_numeric_state_codes(m: &MachineConfig, ctx: &mut Ctx<'_>) {
    for code in m.state_codes.keys() {
        if code.trim().parse::<f64>().is_err() {
            ctx.push(
                &format!("state_codes.{code}"),
                format!("`{code}` can never match: a Modbus `state` register gives numbers"),
                Some("use the numeric codes the PLC writes".into()),
            );
        }
    }
}

/// True when every topic matched by filter `inner` is matched by filter `outer`.
fn filter_covers(outer: &str, inner: &str) -> bool {
    let outer: Vec<&str> = outer.split('/').collect();
    let inner: Vec<&str> = inner.split('/').collect();
    for (i, o) in outer.iter().enumerate() {
        match (*o, inner.get(i).copied()) {
            ("#", _) => return true,
            (_, None) | (_, Some("#")) => return false,
            ("+", Some(_)) => {}
            (lit, Some(seg)) if lit == seg && seg != "+" => {}
            _ => return false,
        }
    }
    outer.len() == inner.len()
}

fn check_modbus_source(mb: &ModbusSource, ctx: &mut Ctx<'_>) {
    let p = "source.modbus";
    match (&mb.host, &mb.serial) {
        (Some(_), Some(_)) => ctx.push(
            p,
            "has both `host` and `serial`".into(),
            Some("Modbus TCP uses `host`, RTU uses `serial`; choose one".into()),
        ),
        (None, None) => ctx.push(
            p,
            "has neither `host` nor `serial`".into(),
            Some("Modbus TCP uses `host`, RTU uses `serial`".into()),
        ),
        (Some(h), None) if h.trim().is_empty() => {
            ctx.push(&format!("{p}.host"), "is empty".into(), None)
        }
        _ => {}
    }
    if mb.host.is_some() && mb.port == 0 {
        ctx.push(
            &format!("{p}.port"),
            "0 is out of range".into(),
            Some("valid: 1–65535".into()),
        );
    }
    if let Some(serial) = &mb.serial {
        if !(1..=247).contains(&mb.unit) {
            ctx.push(
                &format!("{p}.unit"),
                format!("{} is out of range", mb.unit),
                Some("valid on a serial line: 1–247".into()),
            );
        }
        if serial.port.trim().is_empty() {
            ctx.push(
                &format!("{p}.serial.port"),
                "is empty".into(),
                Some("e.g. `/dev/ttyUSB0`".into()),
            );
        }
        if serial.baud == 0 {
            ctx.push(
                &format!("{p}.serial.baud"),
                "must be more than 0".into(),
                Some("e.g. 9600 or 19200".into()),
            );
        }
        if !(5..=8).contains(&serial.data_bits) {
            ctx.push(
                &format!("{p}.serial.data_bits"),
                format!("{} is out of range", serial.data_bits),
                Some("valid: 5–8 (usually 8)".into()),
            );
        }
        if !(1..=2).contains(&serial.stop_bits) {
            ctx.push(
                &format!("{p}.serial.stop_bits"),
                format!("{} is out of range", serial.stop_bits),
                Some("valid: 1 or 2".into()),
            );
        }
    }
    if mb.interval.is_zero() {
        ctx.push(
            &format!("{p}.interval"),
            "must be more than 0".into(),
            Some("e.g. `1s`".into()),
        );
    }
    if mb.timeout.is_zero() {
        ctx.push(
            &format!("{p}.timeout"),
            "must be more than 0".into(),
            Some("e.g. `500ms`".into()),
        );
    }
    if !mb.interval.is_zero() && !mb.timeout.is_zero() && mb.timeout >= mb.interval {
        ctx.push(
            &format!("{p}.timeout"),
            format!(
                "{} is not shorter than the poll interval {}",
                mb.timeout, mb.interval
            ),
            Some("a request must time out before the next poll is due".into()),
        );
    }
    if mb.max_gap > 125 {
        ctx.push(
            &format!("{p}.max_gap"),
            format!("{} is out of range", mb.max_gap),
            Some("valid: 0–125".into()),
        );
    }
    if mb.fail_after == 0 {
        ctx.push(
            &format!("{p}.fail_after"),
            "0 is out of range".into(),
            Some("valid: 1 or more".into()),
        );
    }
}

fn check_scale_rollover(role: &str, sig: &SignalConfig, ctx: &mut Ctx<'_>) {
    let p = format!("signals.{role}");
    if sig.scale.is_some_and(|s| !s.is_finite() || s == 0.0) {
        ctx.push(
            &format!("{p}.scale"),
            "must be a finite number other than 0".into(),
            None,
        );
    }
    if sig.offset.is_some_and(|o| !o.is_finite()) {
        ctx.push(
            &format!("{p}.offset"),
            "must be a finite number".into(),
            None,
        );
    }
    if let Some(r) = sig.rollover {
        if !role.parse::<Signal>().is_ok_and(Signal::is_counter) {
            ctx.push(
                &format!("{p}.rollover"),
                "applies to counters only".into(),
                Some("total_count, good_count, reject_count".into()),
            );
        } else if r < 2 {
            ctx.push(
                &format!("{p}.rollover"),
                format!("{r} is out of range"),
                Some("valid: 2 or more".into()),
            );
        }
    }
}

/// Keys of the other source kind set on a signal (`topic` on a Modbus machine).
fn reject_foreign_keys(p: &str, keys: &[(&str, bool)], what: &str, reads: &str, ctx: &mut Ctx<'_>) {
    for (key, _) in keys.iter().filter(|(_, set)| *set) {
        ctx.push(
            &format!("{p}.{key}"),
            format!("`{key}` is {what}, but this machine reads {reads}"),
            None,
        );
    }
}

fn check_modbus_signal(role: &str, sig: &SignalConfig, ctx: &mut Ctx<'_>) {
    let p = format!("signals.{role}");
    let mqtt_keys = [
        ("topic", sig.topic.is_some()),
        ("json", sig.json.is_some()),
        ("timestamp", sig.timestamp.is_some()),
        ("map", !sig.map.is_empty()),
    ];
    reject_foreign_keys(&p, &mqtt_keys, "an MQTT key", "Modbus", ctx);
    check_scale_rollover(role, sig, ctx);
    let Some(kind) = sig.register else {
        ctx.push(
            &format!("{p}.register"),
            "missing key `register`".into(),
            Some("valid values: coil, discrete, holding, input".into()),
        );
        return;
    };
    let Some(address) = sig.address else {
        ctx.push(
            &format!("{p}.address"),
            "missing key `address`".into(),
            Some("valid: 0–65535".into()),
        );
        return;
    };
    let t = sig.effective_type().unwrap_or(DataType::U16);
    if t == DataType::Bool && role.parse::<Signal>().is_ok_and(Signal::is_counter) {
        ctx.push(
            &format!("{p}.register"),
            format!(
                "a counter cannot be read from a single bit ({})",
                kind.as_str()
            ),
            Some("read a holding or input register with an integer type (u16, u32, …)".into()),
        );
        return;
    }
    if kind.is_bit() {
        if t != DataType::Bool {
            ctx.push(
                &format!("{p}.type"),
                format!(
                    "`{}` on a {} table; coils and discrete inputs hold single bits",
                    t.as_str(),
                    kind.as_str()
                ),
                Some("use `type: bool` or leave `type` out".into()),
            );
        }
        if sig.bit.is_some() {
            ctx.push(
                &format!("{p}.bit"),
                "applies to holding and input registers only".into(),
                Some("a coil or discrete input is already one bit".into()),
            );
        }
    } else if let Some(bit) = sig.bit {
        if bit > 15 {
            ctx.push(
                &format!("{p}.bit"),
                format!("{bit} is out of range"),
                Some("valid: 0–15".into()),
            );
        }
        if t != DataType::Bool {
            ctx.push(
                &format!("{p}.type"),
                format!("`{}` with `bit`; a bit reads as bool", t.as_str()),
                Some("use `type: bool` or leave `type` out".into()),
            );
        }
    } else if t == DataType::Bool {
        ctx.push(
            &format!("{p}.type"),
            format!("`bool` on a {} register needs `bit`", kind.as_str()),
            Some("add `bit: 0–15`, or read a coil or discrete input".into()),
        );
    }
    if address > 65535 {
        ctx.push(
            &format!("{p}.address"),
            format!("{address} is out of range"),
            Some("valid: 0–65535".into()),
        );
    } else {
        let width = u32::from(sig.width());
        if address + width - 1 > 65535 {
            ctx.push(
                &format!("{p}.address"),
                format!(
                    "{address} with type {} ({width} registers) runs past 65535",
                    t.as_str()
                ),
                Some(format!("valid: 0–{}", 65536 - width)),
            );
        }
    }
    let is_16bit = sig.width() == 1;
    for (key, set) in [
        ("word_order", sig.word_order.is_some()),
        ("byte_order", sig.byte_order.is_some()),
        ("order", sig.order.is_some()),
    ] {
        if set && is_16bit {
            ctx.push(
                &format!("{p}.{key}"),
                format!("`{key}` on a 16-bit `{}`", t.as_str()),
                Some("orders apply to 32- and 64-bit types (u32, i32, f32, u64, i64, f64)".into()),
            );
        }
    }
    if let Some(order) = &sig.order {
        if !["ABCD", "CDAB", "BADC", "DCBA"].contains(&order.to_ascii_uppercase().as_str()) {
            ctx.push(
                &format!("{p}.order"),
                format!("unknown order `{order}`"),
                Some("valid values: ABCD, CDAB, BADC, DCBA".into()),
            );
        } else if sig.word_order.is_some() || sig.byte_order.is_some() {
            ctx.push(
                &format!("{p}.order"),
                "set together with `word_order`/`byte_order`".into(),
                Some("use `order` alone, or `word_order` and `byte_order`".into()),
            );
        }
    }
}

fn check_mqtt_signal(role: &str, sig: &SignalConfig, ctx: &mut Ctx<'_>) {
    let p = format!("signals.{role}");
    let modbus_keys = [
        ("register", sig.register.is_some()),
        ("address", sig.address.is_some()),
        ("type", sig.data_type.is_some()),
        ("word_order", sig.word_order.is_some()),
        ("byte_order", sig.byte_order.is_some()),
        ("order", sig.order.is_some()),
        ("bit", sig.bit.is_some()),
    ];
    reject_foreign_keys(&p, &modbus_keys, "a Modbus key", "MQTT", ctx);
    check_scale_rollover(role, sig, ctx);
    match &sig.topic {
        None => ctx.push(
            &format!("{p}.topic"),
            "missing key `topic`".into(),
            Some("the MQTT topic that carries this signal".into()),
        ),
        Some(t) => {
            if let Some(why) = filter_problem(t) {
                ctx.push(&format!("{p}.topic"), why, None);
            }
        }
    }
    for (key, path) in [("json", &sig.json), ("timestamp", &sig.timestamp)] {
        if let Some(why) = path.as_deref().and_then(json_path_problem) {
            ctx.push(&format!("{p}.{key}"), why, Some(JSON_PATH_HINT.into()));
        }
    }
}

fn check_template(i: usize, t: &MqttInputTemplate, issues: &mut Vec<ConfigIssue>) {
    let base = format!("mqtt_inputs[{i}]");
    if let Some(why) = filter_problem(&t.topic) {
        issues.push(issue(format!("{base}.topic"), why, None));
    } else {
        let segments: Vec<&str> = t.topic.split('/').collect();
        match segments.get(t.machine_segment) {
            None => issues.push(issue(
                format!("{base}.machine_segment"),
                format!(
                    "segment {} is past the end of `{}` ({} segments, counted from 0)",
                    t.machine_segment,
                    t.topic,
                    segments.len()
                ),
                None,
            )),
            Some(&"+") => {}
            Some(seg) => issues.push(issue(
                format!("{base}.machine_segment"),
                format!(
                    "segment {} of `{}` is `{seg}`, not `+`",
                    t.machine_segment, t.topic
                ),
                Some("the machine id must come from a `+` segment of the filter".into()),
            )),
        }
    }
    if !ROLES.contains(&t.signal.as_str()) {
        issues.push(issue(
            format!("{base}.signal"),
            format!("unknown signal role `{}`", t.signal),
            Some(choice_hint(&t.signal, &ROLES, "roles")),
        ));
    }
    for (key, path) in [("json", &t.json), ("timestamp", &t.timestamp)] {
        if let Some(why) = path.as_deref().and_then(json_path_problem) {
            issues.push(issue(
                format!("{base}.{key}"),
                why,
                Some(JSON_PATH_HINT.into()),
            ));
        }
    }
    if t.scale.is_some_and(|s| !s.is_finite() || s == 0.0) {
        issues.push(issue(
            format!("{base}.scale"),
            "must be a finite number other than 0",
            None,
        ));
    }
    if t.rollover.is_some_and(|r| r < 2) {
        issues.push(issue(format!("{base}.rollover"), "must be 2 or more", None));
    }
}

/// One read of a signal on a device's register table.
struct Occupant {
    first: u32,
    last: u32,
    bit: Option<u8>,
    owner: String,
}

/// Register use per device and table, to catch two signals on one register.
#[derive(Default)]
struct Registers {
    used: BTreeMap<(String, RegisterKind), Vec<Occupant>>,
}

impl Registers {
    fn add(&mut self, i: usize, m: &MachineConfig, mb: &ModbusSource, ctx: &mut Ctx<'_>) {
        let device = match (&mb.host, &mb.serial) {
            (Some(h), None) => format!("{h}:{} unit {}", mb.port, mb.unit),
            (None, Some(s)) => format!("{} unit {}", s.port, mb.unit),
            _ => return,
        };
        for (role, sig) in &m.signals {
            let (Some(kind), Some(address)) = (sig.register, sig.address) else {
                continue;
            };
            let last = address.saturating_add(u32::from(sig.width()) - 1);
            if last > 65535 || sig.bit.is_some_and(|b| b > 15) {
                continue;
            }
            let list = self.used.entry((device.clone(), kind)).or_default();
            let clash = list.iter().find(|o| {
                o.first <= last
                    && address <= o.last
                    && !matches!((o.bit, sig.bit), (Some(a), Some(b)) if a != b)
            });
            let range = if last == address {
                format!("{} {address}", kind.as_str())
            } else {
                format!("{} {address}–{last}", kind.as_str())
            };
            let owner = format!("machines[{i}] ({}).signals.{role}", m.id);
            if let Some(o) = clash {
                ctx.push(
                    &format!("signals.{role}"),
                    format!("{range} is also read by {} on the same device ({device})", o.owner),
                    Some("two signals cannot share a register; check the address and the type's width".into()),
                );
            } else {
                list.push(Occupant {
                    first: address,
                    last,
                    bit: sig.bit,
                    owner,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters_keep_wildcards_whole() {
        assert!(filter_problem("plant/+/count").is_none());
        assert!(filter_problem("plant/#").is_none());
        assert!(filter_problem("plant/#/x").is_some());
        assert!(filter_problem("plant/a+/x").is_some());
        assert!(filter_problem("").is_some());
    }

    #[test]
    fn json_paths_accept_dollar_and_pointer_forms() {
        for ok in ["$", "$.count", "$.a.b[2].c", "/a/b", "/a~1b"] {
            assert!(json_path_problem(ok).is_none(), "{ok}");
        }
        for bad in ["count", "$..a", "$.a[x]", "$[", "/a~2"] {
            assert!(json_path_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn a_subscription_covers_the_topics_it_matches() {
        assert!(filter_covers("plant/lathe2/#", "plant/lathe2/counter"));
        assert!(filter_covers("plant/+/counter", "plant/lathe2/counter"));
        assert!(filter_covers("plant/#", "plant/+/x"));
        assert!(filter_covers("plant/lathe2/#", "plant/lathe2"));
        assert!(!filter_covers("plant/lathe2/#", "plant/lathe3/counter"));
        assert!(!filter_covers("plant/lathe2/counter", "plant/lathe2/#"));
        assert!(!filter_covers("plant/lathe2", "plant/+"));
        assert!(!filter_covers("plant/+", "plant/a/b"));
    }

    #[test]
    fn topic_segments_reject_wildcards_slashes_and_empty() {
        assert!(segment_problem("press-1").is_none());
        for bad in ["", "a/b", "a+", "#", "a b"] {
            assert!(segment_problem(bad).is_some(), "{bad}");
        }
    }
}
