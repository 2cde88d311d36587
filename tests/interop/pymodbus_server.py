"""Interop peer for tests/interop_modbus.rs: a pymodbus 3.x Modbus TCP server with a fixed register map.

The map is written here independently of the agent's decoder: values are packed with Python's
`struct` (big-endian bytes A B C D ...) and laid out in the named register order.

    python pymodbus_server.py PORT      # prints READY once listening, serves until killed
"""

import asyncio
import struct
import sys

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice


def regs(fmt, value, order):
    """Registers holding `value` packed as `fmt`, in ABCD, CDAB, BADC or DCBA order."""
    raw = struct.pack(">" + fmt, value)
    words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if order in ("CDAB", "DCBA"):
        words.reverse()
    if order in ("BADC", "DCBA"):
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


# Unit 1, holding registers from PDU address 0.
HOLDING_1 = (
    regs("I", 3_000_000_000, "ABCD")  # 0-1   u32 ABCD
    + regs("i", -1_234_567, "CDAB")  # 2-3   i32 CDAB
    + regs("Q", 123_456_789_012_345, "BADC")  # 4-7   u64 BADC
    + regs("q", -42, "DCBA")  # 8-11  i64 DCBA
    + regs("f", 3.25, "CDAB")  # 12-13 f32 CDAB
    + regs("d", -1234.5, "ABCD")  # 14-17 f64 ABCD
    + regs("h", -300, "ABCD")  # 18    i16
    + [0xA55A]  # 19    u16, bit 1 set, bit 0 clear
)
INPUT_1 = [1234]  # input 0: 123.4 with scale 0.1
COILS_1 = [True, False]  # coil 0 on, coil 1 off
DISCRETE_1 = [True]  # discrete input 0 on

# Unit 2 on the same port (a gateway): holding 0 = 7.
HOLDING_2 = [7]


def device(dev_id, coils, discrete, holding, inputs):
    return SimDevice(
        id=dev_id,
        simdata=(
            [SimData(address=0, values=coils, datatype=DataType.BITS)],
            [SimData(address=0, values=discrete, datatype=DataType.BITS)],
            [SimData(address=0, values=holding, datatype=DataType.REGISTERS)],
            [SimData(address=0, values=inputs, datatype=DataType.REGISTERS)],
        ),
    )


async def main(port):
    devices = [
        device(1, COILS_1, DISCRETE_1, HOLDING_1, INPUT_1),
        device(2, [False], [False], HOLDING_2, [0]),
    ]
    server = ModbusTcpServer(devices, address=("127.0.0.1", port))
    task = asyncio.create_task(server.serve_forever())
    # serve_forever binds first; give it a moment, then tell the test we are up.
    for _ in range(100):
        if server.transport is not None:
            break
        await asyncio.sleep(0.05)
    print("READY", flush=True)
    await task


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
