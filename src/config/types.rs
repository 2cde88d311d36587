//! The configuration file's shape: one struct per YAML section, with defaults and doc comments.
//! `config/example.yaml` documents every key; keep the two in step.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::duration::{ByteSize, HumanDuration};

/// The whole agent configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Plant identifier, a topic segment (`shopfloor/{site}/…`).
    pub site: String,
    /// IANA time zone of the plant (`Europe/Paris`); shifts and breaks are local times in it.
    pub timezone: String,
    /// The broker the agent publishes to (and, unless `mqtt.input` says otherwise, subscribes on).
    #[serde(default)]
    pub mqtt: MqttConfig,
    /// Where the SQLite journal and outbox live.
    #[serde(default)]
    pub storage: StorageConfig,
    /// The shift calendar. Empty means no shift windows (hours only).
    #[serde(default)]
    pub shifts: Vec<ShiftConfig>,
    /// Dates (`YYYY-MM-DD`, local) with no production: no shift window opens on them.
    #[serde(default)]
    pub non_production_dates: Vec<String>,
    /// Stops shorter than this count as run time (a performance loss). Default 120s.
    #[serde(default = "default_small_stop")]
    pub small_stop_threshold: HumanDuration,
    /// How often `oee/current` is published. Default 10s.
    #[serde(default = "default_live_interval")]
    pub live_interval: HumanDuration,
    /// Samples up to this much older than the newest of their machine are still accepted. Default 5s.
    #[serde(default = "default_reorder_window")]
    pub reorder_window: HumanDuration,
    /// Health and metrics endpoint.
    #[serde(default)]
    pub health: HealthConfig,
    /// MQTT input templates whose machine id comes from a topic segment
    /// (one entry for twenty identical sensors).
    #[serde(default)]
    pub mqtt_inputs: Vec<MqttInputTemplate>,
    /// The machines.
    pub machines: Vec<MachineConfig>,
}

fn default_small_stop() -> HumanDuration {
    HumanDuration::from_secs(120)
}
fn default_live_interval() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_reorder_window() -> HumanDuration {
    HumanDuration::from_secs(5)
}

/// Which broker the agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerMode {
    /// Connect to `host:port`.
    #[default]
    External,
    /// Run rumqttd inside the agent on `host:port` (dashboards connect to the agent's PC).
    Embedded,
}

/// MQTT broker connection (publishing side).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `external` (default) or `embedded`.
    #[serde(default)]
    pub broker: BrokerMode,
    /// Broker host. Default 127.0.0.1.
    #[serde(default = "default_host")]
    pub host: String,
    /// Broker port. Default 1883.
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// Stable client id (persistent session). Default `shopfloor-agent`.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// First topic segment. Default `shopfloor`.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// User name, if the broker wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the password (never in the YAML, never logged).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// TLS; absent means plain TCP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// MQTT keep-alive. Default 30s (at least 1s).
    #[serde(default = "default_keep_alive")]
    pub keep_alive: HumanDuration,
    /// QoS 1 messages in flight before waiting for PUBACKs. Default 100.
    #[serde(default = "default_inflight")]
    pub inflight: u16,
    /// Largest MQTT packet accepted or sent. Default 1MB.
    #[serde(default = "default_max_packet")]
    pub max_packet_size: ByteSize,
    /// A separate broker for inputs (machines' own broker); absent means the one above.
    #[serde(default)]
    pub input: Option<MqttInputBroker>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            broker: BrokerMode::External,
            host: default_host(),
            port: default_mqtt_port(),
            client_id: default_client_id(),
            topic_prefix: default_prefix(),
            username: None,
            password_file: None,
            tls: None,
            keep_alive: default_keep_alive(),
            inflight: default_inflight(),
            max_packet_size: default_max_packet(),
            input: None,
        }
    }
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_mqtt_port() -> u16 {
    1883
}
fn default_client_id() -> String {
    "shopfloor-agent".into()
}
fn default_prefix() -> String {
    "shopfloor".into()
}
fn default_keep_alive() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_inflight() -> u16 {
    100
}
fn default_max_packet() -> ByteSize {
    ByteSize(1 << 20)
}

/// A broker the agent subscribes to for machine signals.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttInputBroker {
    /// Broker host.
    pub host: String,
    /// Broker port. Default 1883.
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// Stable client id for the persistent input session. Default `shopfloor-agent-in`.
    #[serde(default = "default_input_client_id")]
    pub client_id: String,
    /// User name.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// TLS.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

fn default_input_client_id() -> String {
    "shopfloor-agent-in".into()
}

/// TLS files (PEM).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate(s) that signed the broker's certificate.
    pub ca_file: PathBuf,
    /// Client certificate, for brokers that require one.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Client private key (with `cert_file`).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// The SQLite store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Database file. Default `/var/lib/shopfloor-agent/agent.db`.
    #[serde(default = "default_db_path")]
    pub path: PathBuf,
    /// Size bound of the database; past it, rows are dropped in the documented order. Default 512MB.
    #[serde(default = "default_max_size")]
    pub max_size: ByteSize,
    /// How often the engine snapshot is written. Default 60s.
    #[serde(default = "default_snapshot_interval")]
    pub snapshot_interval: HumanDuration,
    /// Raw events are committed at least this often. Default 1s.
    #[serde(default = "default_commit_interval")]
    pub commit_interval: HumanDuration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: default_db_path(),
            max_size: default_max_size(),
            snapshot_interval: default_snapshot_interval(),
            commit_interval: default_commit_interval(),
        }
    }
}

fn default_db_path() -> PathBuf {
    PathBuf::from("/var/lib/shopfloor-agent/agent.db")
}
fn default_max_size() -> ByteSize {
    ByteSize(512 << 20)
}
fn default_snapshot_interval() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_commit_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}

/// Health endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// `127.0.0.1:9898`; absent means no endpoint.
    #[serde(default)]
    pub listen: Option<String>,
}

/// Day of the week in the shift calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday
    Mon,
    /// Tuesday
    Tue,
    /// Wednesday
    Wed,
    /// Thursday
    Thu,
    /// Friday
    Fri,
    /// Saturday
    Sat,
    /// Sunday
    Sun,
}

impl Weekday {
    /// Every day, Monday first.
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];
    /// jiff's weekday.
    pub fn to_jiff(self) -> jiff::civil::Weekday {
        use jiff::civil::Weekday as J;
        match self {
            Weekday::Mon => J::Monday,
            Weekday::Tue => J::Tuesday,
            Weekday::Wed => J::Wednesday,
            Weekday::Thu => J::Thursday,
            Weekday::Fri => J::Friday,
            Weekday::Sat => J::Saturday,
            Weekday::Sun => J::Sunday,
        }
    }
}

fn default_days() -> Vec<Weekday> {
    Weekday::ALL.to_vec()
}

/// One shift of the calendar. `end` earlier than `start` means it ends the next day.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftConfig {
    /// Shift name (`day`, `night`, `A`).
    pub name: String,
    /// Local start `HH:MM`.
    pub start: String,
    /// Local end `HH:MM`; at or before `start` means the next day.
    pub end: String,
    /// Days the shift starts on. Default every day.
    #[serde(default = "default_days")]
    pub days: Vec<Weekday>,
    /// Breaks inside the shift (local `HH:MM`), excluded from planned time.
    #[serde(default)]
    pub breaks: Vec<BreakConfig>,
}

/// A break inside a shift.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakConfig {
    /// Local start `HH:MM`.
    pub start: String,
    /// Local end `HH:MM`.
    pub end: String,
}

/// State categories of DESIGN.md §3 that a state code can map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateCategory {
    /// Producing.
    Running,
    /// Unplanned stop (availability loss).
    Stopped,
    /// Changeover (availability loss, reported apart).
    Setup,
    /// Planned stop (excluded from planned time).
    PlannedStop,
    /// No valid data (excluded from planned time).
    Unknown,
}

impl StateCategory {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            StateCategory::Running => "running",
            StateCategory::Stopped => "stopped",
            StateCategory::Setup => "setup",
            StateCategory::PlannedStop => "planned_stop",
            StateCategory::Unknown => "unknown",
        }
    }
}

/// One machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    /// Unique id, a topic segment (letters, digits, `-`, `_`, `.`).
    pub id: String,
    /// Production line, a topic segment. Default `default`.
    #[serde(default = "default_line")]
    pub line: String,
    /// Ideal (design) cycle time per part.
    pub ideal_cycle_time: Option<HumanDuration>,
    /// Ideal cycle time per product code/name; overrides `ideal_cycle_time` for that product.
    #[serde(default)]
    pub products: BTreeMap<String, HumanDuration>,
    /// State code → category, for the `state` signal.
    #[serde(default)]
    pub state_codes: BTreeMap<String, StateCategory>,
    /// Stop reason code → text, for stop events.
    #[serde(default)]
    pub reasons: BTreeMap<String, String>,
    /// For machines with neither `running` nor `state`: stopped after this long without a part.
    /// Default 3 × ideal cycle time.
    #[serde(default)]
    pub stop_after: Option<HumanDuration>,
    /// Where the signals come from.
    #[serde(default)]
    pub source: SourceConfig,
    /// Signal role → where to read it.
    #[serde(default)]
    pub signals: BTreeMap<String, SignalConfig>,
}

fn default_line() -> String {
    "default".into()
}

/// A machine's source: exactly one of `modbus` or `mqtt`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Poll a PLC over Modbus TCP or RTU.
    #[serde(default)]
    pub modbus: Option<ModbusSource>,
    /// Subscribe to MQTT topics.
    #[serde(default)]
    pub mqtt: Option<MqttSource>,
}

/// A Modbus device: TCP (`host`) or RTU (`serial`), one unit id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusSource {
    /// PLC or gateway host (TCP). Machines sharing host and port share one connection.
    #[serde(default)]
    pub host: Option<String>,
    /// TCP port. Default 502.
    #[serde(default = "default_modbus_port")]
    pub port: u16,
    /// Serial line (RTU). Machines on the same `serial.port` share the bus.
    #[serde(default)]
    pub serial: Option<SerialConfig>,
    /// Unit (slave) id, 1–247 (0 and 255 are accepted for TCP gateways that need them). Default 1.
    #[serde(default = "default_unit")]
    pub unit: u8,
    /// Poll interval. Default 1s.
    #[serde(default = "default_poll_interval")]
    pub interval: HumanDuration,
    /// Timeout of one request. Default 500ms.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Largest gap of unused registers bridged when coalescing reads. Default 10.
    #[serde(default = "default_max_gap")]
    pub max_gap: u16,
    /// After this many failed polls in a row the machine's signals go `null`. Default 3.
    #[serde(default = "default_fail_after")]
    pub fail_after: u32,
}

fn default_modbus_port() -> u16 {
    502
}
fn default_unit() -> u8 {
    1
}
fn default_poll_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_timeout() -> HumanDuration {
    HumanDuration::from_millis(500)
}
fn default_max_gap() -> u16 {
    10
}
fn default_fail_after() -> u32 {
    3
}

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    /// No parity.
    #[default]
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// An RTU serial line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// Device path (`/dev/ttyUSB0`).
    pub port: String,
    /// Baud rate. Default 9600.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// `none` (default), `even` or `odd`.
    #[serde(default)]
    pub parity: Parity,
    /// Data bits, 7 or 8. Default 8.
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    /// Stop bits, 1 or 2. Default 1.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
}

fn default_baud() -> u32 {
    9600
}
fn default_data_bits() -> u8 {
    8
}
fn default_stop_bits() -> u8 {
    1
}

/// A machine subscribed over MQTT.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSource {
    /// Subscription filter covering the machine's signal topics (`plant/lathe2/#`).
    /// Optional when every signal names its own topic.
    #[serde(default)]
    pub topic: Option<String>,
}

/// Modbus register tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegisterKind {
    /// Coils (FC 1), read/write bits.
    Coil,
    /// Discrete inputs (FC 2), read-only bits.
    Discrete,
    /// Holding registers (FC 3).
    Holding,
    /// Input registers (FC 4).
    Input,
}

impl RegisterKind {
    /// The name used in config (`coil`, `discrete`, `holding`, `input`).
    pub fn as_str(self) -> &'static str {
        match self {
            RegisterKind::Coil => "coil",
            RegisterKind::Discrete => "discrete",
            RegisterKind::Holding => "holding",
            RegisterKind::Input => "input",
        }
    }
    /// True for the two bit tables.
    pub fn is_bit(self) -> bool {
        matches!(self, RegisterKind::Coil | RegisterKind::Discrete)
    }
}

/// Register data types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// One bit (coil, discrete, or `bit:` of a register).
    Bool,
    /// Unsigned 16-bit.
    U16,
    /// Signed 16-bit.
    I16,
    /// Unsigned 32-bit (2 registers).
    U32,
    /// Signed 32-bit.
    I32,
    /// Unsigned 64-bit (4 registers).
    U64,
    /// Signed 64-bit.
    I64,
    /// IEEE 754 single (2 registers).
    F32,
    /// IEEE 754 double (4 registers).
    F64,
}

impl DataType {
    /// The name used in config (`u16`, `f32`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::U64 => "u64",
            DataType::I64 => "i64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
        }
    }
    /// Registers occupied (bools: 1).
    pub fn registers(self) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }
    /// Counter width in bits for unsigned integer types (rollover is then known).
    pub fn counter_bits(self) -> Option<u32> {
        match self {
            DataType::U16 => Some(16),
            DataType::U32 => Some(32),
            DataType::U64 => Some(64),
            _ => None,
        }
    }
}

/// Order of 16-bit words in a multi-register value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WordOrder {
    /// Most significant word first (ABCD / BADC). Default.
    #[default]
    Big,
    /// Least significant word first (CDAB / DCBA).
    Little,
}

/// Order of the two bytes inside each register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ByteOrder {
    /// Modbus standard (ABCD / CDAB). Default.
    #[default]
    Big,
    /// Swapped bytes (BADC / DCBA).
    Little,
}

/// Where one signal comes from: Modbus keys (`register`, `address`, …) or MQTT keys (`topic`, `json`, …),
/// according to the machine's source.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalConfig {
    // --- Modbus ---
    /// Register table: coil, discrete, holding, input.
    #[serde(default)]
    pub register: Option<RegisterKind>,
    /// PDU address, 0–65535.
    #[serde(default)]
    pub address: Option<u32>,
    /// Data type. Default `bool` for coil/discrete, `u16` for registers.
    #[serde(default, rename = "type")]
    pub data_type: Option<DataType>,
    /// Word order of 32/64-bit values (`big` or `little`).
    #[serde(default)]
    pub word_order: Option<WordOrder>,
    /// Byte order inside each register (`big` or `little`).
    #[serde(default)]
    pub byte_order: Option<ByteOrder>,
    /// Shorthand for both orders: ABCD, CDAB, BADC or DCBA.
    #[serde(default)]
    pub order: Option<String>,
    /// Bit index 0–15 of a holding/input register, read as bool.
    #[serde(default)]
    pub bit: Option<u8>,
    // --- MQTT ---
    /// Topic (filter, `+` and `#` allowed) carrying this signal.
    #[serde(default)]
    pub topic: Option<String>,
    /// Path into a JSON payload (`$.count` or `/count`); absent means a plain payload.
    #[serde(default)]
    pub json: Option<String>,
    /// Path of a timestamp field in the JSON payload (RFC 3339 or epoch ms); else arrival time.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Text → value map (`RUN: true`, `IDLE: 2`).
    #[serde(default)]
    pub map: BTreeMap<String, serde_json::Value>,
    // --- both ---
    /// Multiply the raw value.
    #[serde(default)]
    pub scale: Option<f64>,
    /// Add after scaling.
    #[serde(default)]
    pub offset: Option<f64>,
    /// Counter modulus (`65536`) when the width is not known from the register type.
    #[serde(default)]
    pub rollover: Option<u64>,
}

/// MQTT input template: the machine id is a segment of the topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttInputTemplate {
    /// Topic filter (`sensors/+/count`).
    pub topic: String,
    /// 0-based index of the topic segment holding the machine id.
    pub machine_segment: usize,
    /// Signal role this topic carries.
    pub signal: String,
    /// JSON path; absent means plain payload.
    #[serde(default)]
    pub json: Option<String>,
    /// Timestamp path in the JSON payload.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Text → value map.
    #[serde(default)]
    pub map: BTreeMap<String, serde_json::Value>,
    /// Multiply the raw value.
    #[serde(default)]
    pub scale: Option<f64>,
    /// Counter modulus.
    #[serde(default)]
    pub rollover: Option<u64>,
}
