//! Pure decoding of register words and bits into sample values: data types, word/byte order,
//! `bit:` of a register, scale then offset, NaN/inf → no value.

use crate::config::{ByteOrder, DataType, RegisterKind, SignalConfig, WordOrder};
use crate::sample::Value;

use super::ModbusError;

/// How one signal's raw registers or bit become a [`Value`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoder {
    /// Register table the signal lives in.
    pub kind: RegisterKind,
    /// Data type (`bool` for coils and discrete inputs).
    pub data_type: DataType,
    /// Bit index of a holding/input register, read as bool.
    pub bit: Option<u8>,
    /// Word order of multi-register values.
    pub word_order: WordOrder,
    /// Byte order inside each register.
    pub byte_order: ByteOrder,
    /// Multiply the raw value.
    pub scale: Option<f64>,
    /// Add after scaling.
    pub offset: Option<f64>,
    /// Keep whole results as `Int` even when scaled (cumulative counters).
    pub counter: bool,
}

/// Parse the `order:` shorthand: ABCD (big/big), CDAB (little words), BADC (swapped bytes), DCBA (both).
pub fn parse_order(s: &str) -> Option<(WordOrder, ByteOrder)> {
    match s.trim().to_ascii_uppercase().as_str() {
        "ABCD" => Some((WordOrder::Big, ByteOrder::Big)),
        "CDAB" => Some((WordOrder::Little, ByteOrder::Big)),
        "BADC" => Some((WordOrder::Big, ByteOrder::Little)),
        "DCBA" => Some((WordOrder::Little, ByteOrder::Little)),
        _ => None,
    }
}

impl Decoder {
    /// Build the decoder of one Modbus signal; `machine`/`role` only name the error.
    pub fn from_config(
        machine: &str,
        role: &str,
        counter: bool,
        sig: &SignalConfig,
    ) -> Result<Decoder, ModbusError> {
        let err = |message: String| ModbusError::Signal {
            machine: machine.to_owned(),
            signal: role.to_owned(),
            message,
        };
        let kind = sig
            .register
            .ok_or_else(|| err("`register` is required for a Modbus signal".into()))?;
        let data_type = sig.data_type.unwrap_or(if kind.is_bit() {
            DataType::Bool
        } else {
            DataType::U16
        });
        if kind.is_bit() && data_type != DataType::Bool {
            return Err(err(format!(
                "a {kind:?} is one bit; type must be bool, not {data_type:?}"
            )));
        }
        if let Some(b) = sig.bit {
            if kind.is_bit() || b > 15 {
                return Err(err(format!(
                    "`bit: {b}` needs a holding/input register and an index 0–15"
                )));
            }
        }
        let (mut word_order, mut byte_order) = (
            sig.word_order.unwrap_or_default(),
            sig.byte_order.unwrap_or_default(),
        );
        if let Some(o) = &sig.order {
            (word_order, byte_order) = parse_order(o)
                .ok_or_else(|| err(format!("`order: {o}` is not ABCD, CDAB, BADC or DCBA")))?;
        }
        Ok(Decoder {
            kind,
            data_type,
            bit: sig.bit,
            word_order,
            byte_order,
            scale: sig.scale,
            offset: sig.offset,
            counter,
        })
    }

    /// Width of the signal in its table (registers, or 1 bit).
    pub fn width(&self) -> u16 {
        if self.kind.is_bit() || self.bit.is_some() {
            1
        } else {
            self.data_type.registers()
        }
    }

    /// Decode a coil or discrete input.
    pub fn decode_bit(&self, bit: bool) -> Option<Value> {
        Some(Value::Bool(bit))
    }

    /// Decode from the registers starting at the signal's address (`words.len() >= width`).
    /// `None` when the words are too short or the result is not a finite number.
    pub fn decode_words(&self, words: &[u16]) -> Option<Value> {
        if let Some(b) = self.bit {
            return words.first().map(|w| Value::Bool((w >> b) & 1 == 1));
        }
        let n = usize::from(self.data_type.registers());
        let words = words.get(..n)?;
        let mut bytes = [0u8; 8];
        for (i, slot) in bytes.chunks_exact_mut(2).take(n).enumerate() {
            let w = match self.word_order {
                WordOrder::Big => words[i],
                WordOrder::Little => words[n - 1 - i],
            };
            let [hi, lo] = w.to_be_bytes();
            slot.copy_from_slice(&match self.byte_order {
                ByteOrder::Big => [hi, lo],
                ByteOrder::Little => [lo, hi],
            });
        }
        let b2 = [bytes[0], bytes[1]];
        let b4 = [bytes[0], bytes[1], bytes[2], bytes[3]];
        let raw = match self.data_type {
            DataType::Bool => return Some(Value::Bool(u16::from_be_bytes(b2) != 0)),
            DataType::U16 => Raw::Int(i128::from(u16::from_be_bytes(b2))),
            DataType::I16 => Raw::Int(i128::from(i16::from_be_bytes(b2))),
            DataType::U32 => Raw::Int(i128::from(u32::from_be_bytes(b4))),
            DataType::I32 => Raw::Int(i128::from(i32::from_be_bytes(b4))),
            DataType::U64 => Raw::Int(i128::from(u64::from_be_bytes(bytes))),
            DataType::I64 => Raw::Int(i128::from(i64::from_be_bytes(bytes))),
            DataType::F32 => Raw::Float(f64::from(f32::from_be_bytes(b4))),
            DataType::F64 => Raw::Float(f64::from_be_bytes(bytes)),
        };
        self.finish(raw)
    }

    fn finish(&self, raw: Raw) -> Option<Value> {
        if self.scale.is_none() && self.offset.is_none() {
            return match raw {
                Raw::Int(i) => Some(
                    i64::try_from(i)
                        .map(Value::Int)
                        .unwrap_or(Value::Float(i as f64)),
                ),
                Raw::Float(f) => f.is_finite().then_some(Value::Float(f)),
            };
        }
        let x = match raw {
            Raw::Int(i) => i as f64,
            Raw::Float(f) => f,
        };
        let y = x * self.scale.unwrap_or(1.0) + self.offset.unwrap_or(0.0);
        if !y.is_finite() {
            return None;
        }
        if self.counter && y.fract() == 0.0 && y.abs() < 9.0e15 {
            return Some(Value::Int(y as i64));
        }
        Some(Value::Float(y))
    }
}

enum Raw {
    Int(i128),
    Float(f64),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(t: DataType, order: &str) -> Decoder {
        let (word_order, byte_order) = parse_order(order).unwrap();
        Decoder {
            kind: RegisterKind::Holding,
            data_type: t,
            bit: None,
            word_order,
            byte_order,
            scale: None,
            offset: None,
            counter: false,
        }
    }

    /// Registers holding the big-endian bytes `b` in the given order.
    fn regs(b: &[u8], order: &str) -> Vec<u16> {
        let mut w: Vec<u16> = b
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        let (wo, bo) = parse_order(order).unwrap();
        if wo == WordOrder::Little {
            w.reverse();
        }
        if bo == ByteOrder::Little {
            w.iter_mut().for_each(|x| *x = x.swap_bytes());
        }
        w
    }

    #[test]
    fn every_type_decodes_in_every_order() {
        for order in ["ABCD", "CDAB", "BADC", "DCBA"] {
            let d = |t| dec(t, order);
            assert_eq!(
                d(DataType::U32).decode_words(&regs(&0xDEAD_BEEFu32.to_be_bytes(), order)),
                Some(Value::Int(0xDEAD_BEEF)),
                "{order}"
            );
            assert_eq!(
                d(DataType::I32).decode_words(&regs(&(-123_456i32).to_be_bytes(), order)),
                Some(Value::Int(-123_456))
            );
            assert_eq!(
                d(DataType::U64)
                    .decode_words(&regs(&0x0102_0304_0506_0708u64.to_be_bytes(), order)),
                Some(Value::Int(0x0102_0304_0506_0708))
            );
            assert_eq!(
                d(DataType::I64).decode_words(&regs(&(-9_876_543_210i64).to_be_bytes(), order)),
                Some(Value::Int(-9_876_543_210))
            );
            assert_eq!(
                d(DataType::F32).decode_words(&regs(&1.5f32.to_be_bytes(), order)),
                Some(Value::Float(1.5))
            );
            assert_eq!(
                d(DataType::F64).decode_words(&regs(&(-2.25f64).to_be_bytes(), order)),
                Some(Value::Float(-2.25))
            );
        }
    }

    #[test]
    fn byte_order_swaps_bytes_inside_a_single_register() {
        assert_eq!(
            dec(DataType::U16, "ABCD").decode_words(&[0x1234]),
            Some(Value::Int(0x1234))
        );
        assert_eq!(
            dec(DataType::U16, "BADC").decode_words(&[0x1234]),
            Some(Value::Int(0x3412))
        );
        assert_eq!(
            dec(DataType::I16, "ABCD").decode_words(&[0xFFFE]),
            Some(Value::Int(-2))
        );
    }

    #[test]
    fn u64_above_i64_max_becomes_float() {
        assert_eq!(
            dec(DataType::U64, "ABCD").decode_words(&[0xFFFF; 4]),
            Some(Value::Float(u64::MAX as f64))
        );
    }

    #[test]
    fn nan_and_infinity_give_no_value() {
        let d = dec(DataType::F32, "ABCD");
        assert_eq!(d.decode_words(&regs(&f32::NAN.to_be_bytes(), "ABCD")), None);
        assert_eq!(
            d.decode_words(&regs(&f32::INFINITY.to_be_bytes(), "ABCD")),
            None
        );
    }

    #[test]
    fn scale_then_offset_turns_an_integer_into_a_float() {
        let mut d = dec(DataType::I16, "ABCD");
        d.scale = Some(0.1);
        d.offset = Some(-5.0);
        match d.decode_words(&[250]) {
            Some(Value::Float(f)) => assert!((f - 20.0).abs() < 1e-9, "{f}"),
            other => panic!("expected a float, got {other:?}"),
        }
    }

    #[test]
    fn a_scaled_counter_stays_an_integer_when_whole() {
        let mut d = dec(DataType::U16, "ABCD");
        d.scale = Some(10.0);
        d.counter = true;
        assert_eq!(d.decode_words(&[7]), Some(Value::Int(70)));
    }

    #[test]
    fn bit_of_a_register_reads_as_bool() {
        let mut d = dec(DataType::U16, "ABCD");
        d.bit = Some(3);
        assert_eq!(d.decode_words(&[0b1000]), Some(Value::Bool(true)));
        assert_eq!(d.decode_words(&[0b0111]), Some(Value::Bool(false)));
        assert_eq!(d.width(), 1);
    }

    #[test]
    fn too_few_words_give_no_value() {
        assert_eq!(dec(DataType::U32, "ABCD").decode_words(&[1]), None);
    }

    #[test]
    fn order_shorthand_overrides_word_and_byte_order() {
        let sig = SignalConfig {
            register: Some(RegisterKind::Holding),
            data_type: Some(DataType::U32),
            word_order: Some(WordOrder::Big),
            order: Some("dcba".into()),
            ..SignalConfig::default()
        };
        let d = Decoder::from_config("m", "total_count", true, &sig).unwrap();
        assert_eq!(
            (d.word_order, d.byte_order),
            (WordOrder::Little, ByteOrder::Little)
        );
    }

    #[test]
    fn a_coil_with_a_numeric_type_is_refused() {
        let sig = SignalConfig {
            register: Some(RegisterKind::Coil),
            data_type: Some(DataType::U16),
            ..SignalConfig::default()
        };
        assert!(Decoder::from_config("m", "running", false, &sig).is_err());
    }
}
