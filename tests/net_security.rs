//! What a node refuses, and that the refusal changes nothing: a client
//! whose certificate has expired, a client announcing another protocol
//! version at the handshake, and a message framed with an unknown
//! protocol version on an accepted connection. (Certificates of another
//! cluster's CA: `net_foreign_certificates.rs`.)

mod common;

use common::raw::{ask, connect, connect_as, get, put, start, until_ready, values};
use common::run;
use shoal::Credentials;
use shoal::net::tls::{init_cluster_dir, transport_config};
use shoal::node::Limits;
use shoal::proto::message::{PROTOCOL_VERSION, Tagged};
use shoal::proto::{ClientResponse, Response};
use std::time::Duration;

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
fn a_client_of_another_protocol_version_is_refused_with_a_reason() {
    run(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let node = start(dir.path(), Limits::default()).await;
        let credentials = Credentials::from_cluster_dir(&dir.path().join("cluster")).unwrap();
        // A client from the future: the handshake fails.
        let refused = connect_as(&credentials, PROTOCOL_VERSION + 1, &node).await;
        assert!(refused.is_err(), "a newer protocol version was accepted");
        // An older client is told why, in words it can show.
        let old = PROTOCOL_VERSION - 1;
        let reason = match connect_as(&credentials, old, &node).await {
            Ok((_e, connection)) => connection.closed().await.to_string(),
            Err(reason) => reason,
        };
        let expected = format!("this node speaks shoal protocol {PROTOCOL_VERSION}, the client speaks {old}");
        assert!(reason.contains(&expected), "{reason}");
        let (_e, good) = connect_as(&credentials, PROTOCOL_VERSION, &node).await.unwrap();
        until_ready(&good).await;
        node.shutdown().await.unwrap();
    });
}

/// This client against a node of an older release: the error says so.
#[test]
fn this_client_names_a_node_of_another_protocol_version() {
    run(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        init_cluster_dir(dir.path()).unwrap();
        let credentials = Credentials::from_cluster_dir(dir.path()).unwrap();
        let server = credentials
            .server_config_speaking(transport_config(16), PROTOCOL_VERSION - 1)
            .unwrap();
        let endpoint = quinn::Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).unwrap();
        let accepting = endpoint.clone();
        tokio::spawn(async move {
            while let Some(incoming) = accepting.accept().await {
                let _ = incoming.await;
            }
        });
        let error = shoal::Client::builder(credentials)
            .seed(endpoint.local_addr().unwrap())
            .connect()
            .await
            .err()
            .expect("connected to a node of an older protocol");
        let text = error.to_string();
        assert!(
            text.contains(&format!("does not speak shoal protocol {PROTOCOL_VERSION}")),
            "{text}"
        );
        endpoint.close(0u32.into(), b"done");
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
        let answer = shoal::net::stream::read_frame::<Tagged<Response>>(&mut recv, 1 << 20).await;
        assert!(!matches!(answer, Ok(Some(_))), "answered: {answer:?}");
        // The connection still works, and nothing was written.
        assert!(values(&connection, b"k").await.is_empty());
        node.shutdown().await.unwrap();
    });
}
