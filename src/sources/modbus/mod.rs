//! Modbus TCP/RTU polling: request planning, decoding, faults, and the PLC simulator.
