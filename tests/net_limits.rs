//! Limits that protect a node, on a real node over QUIC: connections per
//! node, requests in flight per connection, and message size.

mod common;

use common::raw::{ask, connect, get, start, until_ready};
use common::run;
use shoal::net::stream::{read_frame, write_frame};
use shoal::node::Limits;
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
        // Two requests open and unanswered (nothing sent yet on them)...
        let (mut send1, mut recv1) = connection.open_bi().await.unwrap();
        let (mut send2, _recv2) = connection.open_bi().await.unwrap();
        // (the peer sees a stream once it carries data)
        send1.write_all(&[]).await.unwrap();
        send2.write_all(&[]).await.unwrap();
        // ...and a third cannot even start: it waits for credit instead of
        // queueing at the node.
        let third = tokio::time::timeout(Duration::from_millis(500), connection.open_bi()).await;
        assert!(third.is_err(), "a third request stream opened past the limit");

        // Finishing one request frees a place.
        write_frame(&mut send1, &get(b"k")).await.unwrap();
        send1.finish().unwrap();
        let answer = read_frame::<Response>(&mut recv1, 1 << 20).await.unwrap();
        assert!(matches!(
            answer,
            Some(Response::Data(ClientResponse::Found { .. }))
        ));
        let third = tokio::time::timeout(Duration::from_secs(5), connection.open_bi()).await;
        assert!(
            matches!(third, Ok(Ok(_))),
            "no place freed after a request finished"
        );
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
