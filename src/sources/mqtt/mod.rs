//! MQTT subscriptions: topic filters, plain and JSON payloads, bad-payload accounting.
