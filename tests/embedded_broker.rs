//! The embedded broker carries a QoS 1 message between two real rumqttc clients over TCP.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use shopfloor_agent::publish::broker::EmbeddedBroker;

#[tokio::test]
async fn embedded_broker_relays_qos1_between_clients() {
    let broker = EmbeddedBroker::start_local().expect("broker starts");
    let mut sub_opts = MqttOptions::new("t-sub", "127.0.0.1", broker.port());
    sub_opts.set_keep_alive(Duration::from_secs(5));
    let (sub, mut sub_loop) = AsyncClient::new(sub_opts, 10);
    sub.subscribe("t/#", QoS::AtLeastOnce).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        let mut published = false;
        loop {
            match sub_loop.poll().await.expect("subscriber connection") {
                Event::Incoming(Packet::SubAck(_)) if !published => {
                    published = true;
                    let mut pub_opts = MqttOptions::new("t-pub", "127.0.0.1", broker.port());
                    pub_opts.set_keep_alive(Duration::from_secs(5));
                    let (client, mut pub_loop) = AsyncClient::new(pub_opts, 10);
                    client
                        .publish("t/x", QoS::AtLeastOnce, false, "hello")
                        .await
                        .unwrap();
                    tokio::spawn(async move {
                        for _ in 0..20 {
                            if pub_loop.poll().await.is_err() {
                                break;
                            }
                        }
                    });
                }
                Event::Incoming(Packet::Publish(p)) => return p,
                _ => {}
            }
        }
    })
    .await
    .expect("message within 10 s");
    assert_eq!(got.topic, "t/x");
    assert_eq!(&got.payload[..], b"hello");
}
