//! A real node (fjall underneath) given peer messages that no honest node
//! sends: keys the storage engine asserts on (empty, or over its 65,535
//! bytes) and an interval that ends before it starts. Each used to panic
//! the node's driver; now each is dropped at the core's boundary, counted,
//! and the node keeps serving.

mod common;

use common::raw::{ask, connect, start, until_ready};
use common::run;
use shoal::net::stream::write_frame;
use shoal::node::Limits;
use shoal::proto::digest_tree::Summary;
use shoal::proto::message::{AdminRequest, AdminResponse, AeInterval, PeerHello};
use shoal::proto::version::{Actor, VersionVector};
use shoal::proto::{
    ClientRequest, ClientResponse, Consistency, Context, NodeId, PeerMessage, Request, Response, Versioned,
};
use std::time::Duration;

fn state() -> Versioned {
    let mut object = Versioned::new();
    let actor = Actor {
        node: NodeId(77),
        epoch: 1,
    };
    object
        .write(actor, &VersionVector::new(), Some(b"junk".to_vec()), 1, 8)
        .unwrap();
    object
}

async fn invalid_messages(connection: &quinn::Connection) -> u64 {
    match ask(connection, &Request::Admin(AdminRequest::Status)).await {
        Ok(Response::Admin(AdminResponse::Status(report))) => report.stats.invalid_messages,
        other => panic!("no status: {other:?}"),
    }
}

#[test]
fn junk_from_a_peer_is_dropped_and_counted_and_the_node_keeps_serving() {
    run(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let node = start(dir.path(), Limits::default()).await;
        let (_endpoint, connection) = connect(dir.path(), &node).await.unwrap();
        until_ready(&connection).await;

        let mut stream = connection.open_uni().await.unwrap();
        write_frame(&mut stream, &PeerHello { node: NodeId(77) })
            .await
            .unwrap();
        let junk = [
            PeerMessage::ReplicaPut {
                request: 1,
                key: Vec::new(),
                object: state().into(),
                placement: None,
            },
            PeerMessage::ReplicaPut {
                request: 2,
                key: vec![b'k'; 70_000],
                object: state().into(),
                placement: None,
            },
            PeerMessage::AeSummaries {
                intervals: vec![AeInterval {
                    first: 10,
                    last: 5,
                    summary: Summary { digest: 1, count: 1 },
                }],
            },
        ];
        // Two frames (batches): the first two messages together, then the
        // third; every message of a batch is handled, junk or not.
        let (together, alone) = junk.split_at(2);
        for batch in [together, alone] {
            write_frame(&mut stream, &batch).await.unwrap();
        }
        let _ = stream.finish();

        let mut counted = 0;
        for _ in 0..100 {
            counted = invalid_messages(&connection).await;
            if counted == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(counted, 3, "every junk message is counted");
        let put = Request::Data(ClientRequest::Put {
            key: b"after".to_vec(),
            value: b"still here".to_vec(),
            context: Context::empty(),
            consistency: Consistency::One,
            timeout_ms: None,
            sloppy_quorum: false,
            ttl_ms: None,
        });
        let answer = ask(&connection, &put).await.unwrap();
        assert!(
            matches!(answer, Response::Data(ClientResponse::Written { .. })),
            "the node no longer takes writes: {answer:?}"
        );
        node.shutdown().await.unwrap();
    });
}
