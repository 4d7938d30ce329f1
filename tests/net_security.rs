//! What a node refuses, and that the refusal changes nothing: a client
//! whose certificate has expired, a client announcing another protocol
//! version at the handshake, and a message framed with an unknown
//! protocol version on an accepted connection. (Certificates of another
//! cluster's CA: `net_foreign_certificates.rs`.)

mod common;

use common::raw::{ask, connect, connect_as, get, start, until_ready};
use common::run;
use shoal::Credentials;
use shoal::node::Limits;
use shoal::proto::message::PROTOCOL_VERSION;
use shoal::proto::{ClientRequest, ClientResponse, Consistency, Context, Request, Response};
use std::time::Duration;

fn put(key: &[u8], value: &[u8]) -> Request {
    Request::Data(ClientRequest::Put {
        key: key.to_vec(),
        value: value.to_vec(),
        context: Context::empty(),
        consistency: Consistency::One,
        timeout_ms: None,
        sloppy_quorum: true,
    })
}

/// The values a good connection reads for `key`.
async fn values(connection: &quinn::Connection, key: &[u8]) -> Vec<Vec<u8>> {
    match ask(connection, &get(key)).await {
        Ok(Response::Data(ClientResponse::Found { values, .. })) => {
            values.into_iter().map(|v| v.value).collect()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_client_with_an_expired_certificate_of_the_cluster_ca_is_refused() {
    run(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let node = start(dir.path(), Limits::default()).await;
        let (_e, good) = connect(dir.path(), &node).await.unwrap();
        until_ready(&good).await;
        assert!(matches!(
            ask(&good, &put(b"k", b"v")).await,
            Ok(Response::Data(ClientResponse::Written { .. }))
        ));

        // Signed by the right CA, but it expired in 2021.
        let expired = Credentials::from_cluster_dir_valid_between(
            &dir.path().join("cluster"),
            (2020, 1, 1),
            (2021, 1, 1),
        )
        .unwrap();
        // TLS 1.3 finishes the client's side of the handshake before the
        // node checks the client's certificate: the refusal shows on use.
        if let Ok((_e, intruder)) = connect_as(&expired, PROTOCOL_VERSION, &node).await {
            let write = ask(&intruder, &put(b"k", b"intruder")).await;
            assert!(write.is_err(), "a client with an expired certificate wrote");
            let reason = intruder.close_reason().map(|r| r.to_string()).unwrap_or_default();
            assert!(reason.contains("expired"), "closed for another reason: {reason}");
            assert!(ask(&intruder, &get(b"k")).await.is_err(), "and it could read");
        }
        // Control: the same CA with a current certificate gets in.
        let current = Credentials::from_cluster_dir(&dir.path().join("cluster")).unwrap();
        assert!(connect_as(&current, PROTOCOL_VERSION, &node).await.is_ok());

        assert_eq!(values(&good, b"k").await, vec![b"v".to_vec()]);
        node.shutdown().await.unwrap();
    });
}

#[test]
fn a_client_announcing_another_protocol_version_is_refused_at_the_handshake() {
    run(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let node = start(dir.path(), Limits::default()).await;
        let credentials = Credentials::from_cluster_dir(&dir.path().join("cluster")).unwrap();
        for version in [PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1] {
            let refused = connect_as(&credentials, version, &node).await;
            assert!(refused.is_err(), "protocol version {version} was accepted");
        }
        let (_e, good) = connect_as(&credentials, PROTOCOL_VERSION, &node).await.unwrap();
        until_ready(&good).await;
        node.shutdown().await.unwrap();
    });
}

#[test]
fn a_message_of_an_unknown_protocol_version_is_refused_and_changes_nothing() {
    run(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let node = start(dir.path(), Limits::default()).await;
        let (_e, connection) = connect(dir.path(), &node).await.unwrap();
        until_ready(&connection).await;
        // A well-formed frame (length, crc32, MessagePack) whose body says
        // it is of a version from the future.
        let body = rmp_serde::to_vec(&(PROTOCOL_VERSION + 1, put(b"k", b"from the future"))).unwrap();
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        frame.extend_from_slice(&body);
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        send.write_all(&frame).await.unwrap();
        let _ = send.finish();
        let answer = shoal::net::stream::read_frame::<Response>(&mut recv, 1 << 20).await;
        assert!(!matches!(answer, Ok(Some(_))), "answered: {answer:?}");
        // The connection still works, and nothing was written.
        assert!(values(&connection, b"k").await.is_empty());
        node.shutdown().await.unwrap();
    });
}
