//! Pure request planning: a machine's Modbus signals become the fewest reads per register table
//! (≤ 125 registers or ≤ 2000 bits each, bridging gaps up to `max_gap`), grouped by endpoint.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{Config, MachineConfig, ModbusSource, RegisterKind, SerialConfig};
use crate::sample::{MachineId, Signal};

use super::decode::Decoder;
use super::ModbusError;

/// Most registers one read may ask for (FC 3/4).
pub const MAX_REGISTERS: u16 = 125;
/// Most bits one read may ask for (FC 1/2).
pub const MAX_BITS: u16 = 2000;

/// One signal to read.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalSpec {
    /// Its role.
    pub signal: Signal,
    /// PDU address in its table.
    pub address: u16,
    /// How to decode it.
    pub decoder: Decoder,
}

/// One read request: a contiguous range of one table, and the signals it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// Register table (decides the function code 1–4).
    pub kind: RegisterKind,
    /// First address.
    pub start: u16,
    /// Number of registers or bits.
    pub count: u16,
    /// Indices into [`UnitPlan::signals`].
    pub signals: Vec<usize>,
}

impl ReadRequest {
    /// The Modbus function code this read is sent with (1–4, never a write).
    pub fn function_code(&self) -> u8 {
        match self.kind {
            RegisterKind::Coil => 1,
            RegisterKind::Discrete => 2,
            RegisterKind::Holding => 3,
            RegisterKind::Input => 4,
        }
    }
}

/// Everything needed to poll one machine (one unit id).
#[derive(Debug, Clone)]
pub struct UnitPlan {
    /// Machine id of the samples.
    pub machine: MachineId,
    /// Unit (slave) id.
    pub unit: u8,
    /// Poll interval; zero polls back to back (benchmarks).
    pub interval: Duration,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Failed polls in a row before every signal goes `null`.
    pub fail_after: u32,
    /// The signals.
    pub signals: Vec<SignalSpec>,
    /// The reads, in table then address order.
    pub reads: Vec<ReadRequest>,
}

/// Where a unit is reached: machines with the same endpoint share one connection or bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Modbus TCP `host:port`.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// Modbus RTU on a serial line (keyed by device path).
    Rtu {
        /// Device path.
        path: String,
        /// Baud rate.
        baud: u32,
        /// Parity.
        parity: crate::config::Parity,
        /// Data bits.
        data_bits: u8,
        /// Stop bits.
        stop_bits: u8,
    },
}

impl Endpoint {
    fn of(src: &ModbusSource) -> Option<Endpoint> {
        match (&src.host, &src.serial) {
            (Some(host), _) => Some(Endpoint::Tcp {
                host: host.clone(),
                port: src.port,
            }),
            (
                None,
                Some(SerialConfig {
                    port,
                    baud,
                    parity,
                    data_bits,
                    stop_bits,
                }),
            ) => Some(Endpoint::Rtu {
                path: port.clone(),
                baud: *baud,
                parity: *parity,
                data_bits: *data_bits,
                stop_bits: *stop_bits,
            }),
            (None, None) => None,
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Rtu { path, .. } => f.write_str(path),
        }
    }
}

/// Plan every Modbus machine of the config, grouped by endpoint (units in config order).
pub fn plan_config(config: &Config) -> Result<Vec<(Endpoint, Vec<UnitPlan>)>, ModbusError> {
    let mut out: BTreeMap<String, (Endpoint, Vec<UnitPlan>)> = BTreeMap::new();
    for m in &config.machines {
        if let Some(src) = &m.source.modbus {
            let ep = Endpoint::of(src).ok_or_else(|| ModbusError::Signal {
                machine: m.id.clone(),
                signal: "source".into(),
                message: "a Modbus source needs `host` (TCP) or `serial` (RTU)".into(),
            })?;
            let key = match &ep {
                Endpoint::Tcp { host, port } => format!("tcp {host}:{port}"),
                Endpoint::Rtu { path, .. } => format!("rtu {path}"),
            };
            let plan = plan_machine(m, src)?;
            out.entry(key)
                .or_insert_with(|| (ep, Vec::new()))
                .1
                .push(plan);
        }
    }
    Ok(out.into_values().collect())
}

/// Plan one machine read through `src`.
pub fn plan_machine(m: &MachineConfig, src: &ModbusSource) -> Result<UnitPlan, ModbusError> {
    let mut signals = Vec::new();
    for (role, sig) in &m.signals {
        let err = |message: String| ModbusError::Signal {
            machine: m.id.clone(),
            signal: role.clone(),
            message,
        };
        let signal: Signal = role.parse().map_err(err)?;
        let decoder = Decoder::from_config(&m.id, role, signal.is_counter(), sig)?;
        let address = sig
            .address
            .ok_or_else(|| err("`address` is required for a Modbus signal".into()))?;
        if address + u32::from(decoder.width()) > 65_536 {
            return Err(err(format!(
                "address {address} + {} registers is past 65535",
                decoder.width()
            )));
        }
        signals.push(SignalSpec {
            signal,
            address: address as u16,
            decoder,
        });
    }
    let reads = coalesce(&signals, src.max_gap);
    Ok(UnitPlan {
        machine: MachineId::from(m.id.as_str()),
        unit: src.unit,
        interval: src.interval.to_std(),
        timeout: src.timeout.to_std().max(Duration::from_millis(1)),
        fail_after: src.fail_after.max(1),
        signals,
        reads,
    })
}

/// Coalesce signals into the fewest reads: per table, sorted by address, a read grows while the
/// gap to the next signal is at most `max_gap` and the read stays within the table's limit.
pub fn coalesce(signals: &[SignalSpec], max_gap: u16) -> Vec<ReadRequest> {
    let mut order: Vec<usize> = (0..signals.len()).collect();
    order.sort_by_key(|&i| (signals[i].decoder.kind, signals[i].address));
    let mut reads: Vec<ReadRequest> = Vec::new();
    for i in order {
        let s = &signals[i];
        let kind = s.decoder.kind;
        let limit = u32::from(if kind.is_bit() {
            MAX_BITS
        } else {
            MAX_REGISTERS
        });
        let (start, end) = (
            u32::from(s.address),
            u32::from(s.address) + u32::from(s.decoder.width()),
        );
        if let Some(r) = reads.last_mut().filter(|r| r.kind == kind) {
            let r_end = u32::from(r.start) + u32::from(r.count);
            let new_end = r_end.max(end);
            if start <= r_end + u32::from(max_gap) && new_end - u32::from(r.start) <= limit {
                r.count = (new_end - u32::from(r.start)) as u16;
                r.signals.push(i);
                continue;
            }
        }
        reads.push(ReadRequest {
            kind,
            start: start as u16,
            count: (end - start) as u16,
            signals: vec![i],
        });
    }
    reads
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ByteOrder, DataType, WordOrder};

    fn spec(kind: RegisterKind, address: u16, t: DataType) -> SignalSpec {
        SignalSpec {
            signal: Signal::TotalCount,
            address,
            decoder: Decoder {
                kind,
                data_type: t,
                bit: None,
                word_order: WordOrder::Big,
                byte_order: ByteOrder::Big,
                scale: None,
                offset: None,
                counter: true,
            },
        }
    }

    #[test]
    fn neighbours_in_one_table_share_one_read() {
        let s = vec![
            spec(RegisterKind::Holding, 100, DataType::U32),
            spec(RegisterKind::Holding, 102, DataType::U16),
            spec(RegisterKind::Holding, 110, DataType::U16),
            spec(RegisterKind::Coil, 0, DataType::Bool),
        ];
        let r = coalesce(&s, 10);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].kind, r[0].start, r[0].count),
            (RegisterKind::Coil, 0, 1)
        );
        assert_eq!(
            (r[1].kind, r[1].start, r[1].count),
            (RegisterKind::Holding, 100, 11)
        );
        assert_eq!(r[1].signals, vec![0, 1, 2]);
    }

    #[test]
    fn a_gap_wider_than_max_gap_splits_the_read() {
        let s = vec![
            spec(RegisterKind::Input, 0, DataType::U16),
            spec(RegisterKind::Input, 12, DataType::U16),
        ];
        assert_eq!(coalesce(&s, 10).len(), 2);
        assert_eq!(coalesce(&s, 11).len(), 1);
    }

    #[test]
    fn reads_never_exceed_125_registers_or_2000_bits() {
        let regs: Vec<_> = (0..200u16)
            .map(|a| spec(RegisterKind::Holding, a * 2, DataType::U32))
            .collect();
        let r = coalesce(&regs, 10);
        assert!(r.iter().all(|r| r.count <= MAX_REGISTERS));
        assert_eq!(r.iter().map(|r| r.signals.len()).sum::<usize>(), 200);
        assert_eq!(r.len(), 4, "400 registers need 4 reads: {r:?}");
        let bits: Vec<_> = (0..4500u16)
            .map(|a| spec(RegisterKind::Discrete, a, DataType::Bool))
            .collect();
        let r = coalesce(&bits, 0);
        assert_eq!(r.len(), 3);
        assert!(r.iter().all(|r| r.count <= MAX_BITS));
    }

    #[test]
    fn a_multi_register_value_is_never_split_across_reads() {
        let s = vec![
            spec(RegisterKind::Holding, 0, DataType::U16),
            spec(RegisterKind::Holding, 123, DataType::U64),
        ];
        let r = coalesce(&s, 200);
        assert_eq!(r.len(), 2);
        assert_eq!((r[1].start, r[1].count), (123, 4));
    }

    #[test]
    fn overlapping_signals_share_registers() {
        let mut bit = spec(RegisterKind::Holding, 5, DataType::U16);
        bit.decoder.bit = Some(2);
        let s = vec![spec(RegisterKind::Holding, 5, DataType::U16), bit];
        let r = coalesce(&s, 0);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].start, r[0].count), (5, 1));
    }

    #[test]
    fn function_codes_follow_the_table() {
        let fc: Vec<u8> = [
            RegisterKind::Coil,
            RegisterKind::Discrete,
            RegisterKind::Holding,
            RegisterKind::Input,
        ]
        .into_iter()
        .map(|kind| {
            ReadRequest {
                kind,
                start: 0,
                count: 1,
                signals: vec![],
            }
            .function_code()
        })
        .collect();
        assert_eq!(fc, vec![1, 2, 3, 4]);
    }
}
