//! Limits that protect a node, on a real node over QUIC: connections per
//! node, requests in flight per connection, and message size.

mod common;

use common::raw::{ask, connect, get, put, start, until_ready, values};
use common::run;
use shoal::net::stream::{FrameReader, write_frame};
use shoal::node::Limits;
use shoal::proto::message::Tagged;
use shoal::proto::{ClientRequest, ClientResponse, Consistency, Context, Request, Response};
use std::time::Duration;

#[test]
fn connections_past_the_limit_are_refused_until_one_closes() {
    run(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let limits = {
            let mut limits = Limits::default();
            limits.max_connections = 2;
            limits
        };
        let node = start(dir.path(), limits).await;
        let (_e1, first) = connect(dir.path(), &node).await.unwrap();
        let (_e2, second) = connect(dir.path(), &node).await.unwrap();
        until_ready(&first).await;
        until_ready(&second).await;
        let third = connect(dir.path(), &node).await;
        assert!(third.is_err(), "a third connection was accepted");

        // The open ones still work; once one closes, a new one gets in.
        until_ready(&second).await;
        first.close(0u32.into(), b"done");
        let mut admitted = None;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Ok(pair) = connect(dir.path(), &node).await {
                admitted = Some(pair);
                break;
            }
        }
        let (_e3, third) = admitted.expect("no connection admitted after one closed");
        until_ready(&third).await;
        node.shutdown().await.unwrap();
    });
}

/// A client that sends requests without reading the answers: once the
/// answers it has not read fill the stream and the connection's limit of
/// requests in flight is reached, the node stops reading its requests
/// (QUIC's flow control then stops the client), instead of queueing them.
#[test]
fn requests_in_flight_on_one_connection_are_bounded() {
    run(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let limits = {
            let mut limits = Limits::default();
            limits.max_requests_per_connection = 2;
            limits
        };
        let node = start(dir.path(), limits).await;
        let (_e, connection) = connect(dir.path(), &node).await.unwrap();
        until_ready(&connection).await;
        let big = vec![7u8; 100 * 1024];
        assert!(matches!(
            ask(&connection, &put(b"big", &big)).await,
            Ok(Response::Data(ClientResponse::Written { .. }))
        ));

        // 30 reads of 100 KiB, 3 MB of answers (over the 1.25 MB a stream
        // buffers unread), then a write, all on one stream, nothing read.
        let (mut send, recv) = connection.open_bi().await.unwrap();
        let mut id = 0;
        for _ in 0..30 {
            write_frame(
                &mut send,
                &Tagged {
                    id,
                    body: get(b"big"),
                },
            )
            .await
            .unwrap();
            id += 1;
        }
        write_frame(
            &mut send,
            &Tagged {
                id,
                body: put(b"marker", b"m"),
            },
        )
        .await
        .unwrap();
        send.finish().unwrap();
        // The write was never read by the node: another connection does
        // not see it.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (_e2, other) = connect(dir.path(), &node).await.unwrap();
        assert!(
            values(&other, b"marker").await.is_empty(),
            "the node read past its limit"
        );

        // Reading the answers lets the node read on, up to the write.
        let mut reader = FrameReader::new(recv, 1 << 20);
        let mut answered = 0;
        while let Some(Tagged { body, .. }) = reader.next::<Tagged<Response>>().await.unwrap() {
            assert!(
                matches!(
                    body,
                    Response::Data(ClientResponse::Found { .. } | ClientResponse::Written { .. })
                ),
                "{body:?}"
            );
            answered += 1;
        }
        assert_eq!(answered, 31);
        assert_eq!(values(&other, b"marker").await, vec![b"m".to_vec()]);
        node.shutdown().await.unwrap();
    });
}

#[test]
fn a_message_over_the_frame_limit_is_refused_and_nothing_is_stored() {
    run(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let limits = {
            let mut limits = Limits::default();
            limits.max_frame_bytes = 64 * 1024;
            limits
        };
        let node = start(dir.path(), limits).await;
        let (_e, connection) = connect(dir.path(), &node).await.unwrap();
        until_ready(&connection).await;
        // Within max_value_bytes, but over the node's frame limit.
        let put = Request::Data(ClientRequest::Put {
            key: b"big".to_vec(),
            value: vec![7u8; 100 * 1024],
            context: Context::empty(),
            consistency: Consistency::One,
            timeout_ms: None,
            sloppy_quorum: true,
            ttl_ms: None,
        });
        let refused = ask(&connection, &put).await;
        assert!(refused.is_err(), "an oversized message was answered: {refused:?}");
        // The connection and the node carry on; the key was never stored.
        match ask(&connection, &get(b"big")).await {
            Ok(Response::Data(ClientResponse::Found { values, .. })) => assert!(values.is_empty()),
            other => panic!("{other:?}"),
        }
        node.shutdown().await.unwrap();
    });
}
