#!/usr/bin/env python3
"""Publish MQTT messages with paho-mqtt, waiting for every PUBACK (interop peer of tests/interop_mqtt.rs).

  paho_publish.py --port P --topic T --message 1 --message '{"n":2}'   # explicit payloads
  paho_publish.py --port P --topic T --hex ff28                         # raw bytes (non-UTF-8)
  paho_publish.py --port P --topic T --seq 1 500                        # {"n": 1} .. {"n": 500}
  paho_publish.py --port P --topic T --seq 1 3000 --resilient --delay-ms 1
      one message at a time, each re-sent until acknowledged, riding through broker restarts
      (at least once: duplicates possible, nothing missing)
Exit 0 when every message is acknowledged, 1 otherwise.
"""
import argparse
import json
import os
import sys
import time

import paho.mqtt.client as mqtt


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--qos", type=int, default=1)
    p.add_argument("--message", action="append", default=[])
    p.add_argument("--hex", action="append", default=[])
    p.add_argument("--seq", nargs=2, type=int, metavar=("FIRST", "COUNT"))
    p.add_argument("--resilient", action="store_true")
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--deadline-s", type=float, default=60.0)
    a = p.parse_args()

    payloads = [m.encode() for m in a.message] + [bytes.fromhex(h) for h in a.hex]
    if a.seq:
        first, count = a.seq
        payloads += [json.dumps({"n": i}).encode() for i in range(first, first + count)]

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"paho-pub-{os.getpid()}",
        clean_session=not a.resilient,
    )
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(min_delay=1, max_delay=1)
    client.connect(a.host, a.port, keepalive=30)
    client.loop_start()
    if a.resilient:
        return publish_resilient(client, a, payloads)
    infos = [client.publish(a.topic, pl, qos=a.qos) for pl in payloads]
    failed = 0
    for info in infos:
        info.wait_for_publish(timeout=30)
        if not info.is_published():
            failed += 1
    client.disconnect()
    client.loop_stop()
    if failed:
        print(f"paho_publish: {failed} of {len(infos)} messages not acknowledged", file=sys.stderr)
        return 1
    return 0


def publish_resilient(client, a, payloads) -> int:
    deadline = time.monotonic() + a.deadline_s
    for pl in payloads:
        while True:
            if time.monotonic() > deadline:
                print("paho_publish: deadline passed", file=sys.stderr)
                return 1
            if not client.is_connected():
                time.sleep(0.02)
                continue
            info = client.publish(a.topic, pl, qos=a.qos)
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):
                pass
            if info.is_published():
                break
        if a.delay_ms:
            time.sleep(a.delay_ms / 1000.0)
    client.disconnect()
    client.loop_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
