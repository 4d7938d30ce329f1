//! A write that reached a node whose answer never came is reported as
//! indeterminate (it may have been applied), not as "unreachable", and is
//! not sent to a second node; a read in the same spot moves on.

mod common;

use common::run;
use shoal::net::stream::{FrameReader, write_frame};
use shoal::net::tls::{Credentials, init_cluster_dir, transport_config};
use shoal::proto::membership::NodeStatus;
use shoal::proto::message::{AdminResponse, MemberReport, Tagged};
use shoal::proto::{NodeId, Request, Response, StatusReport};
use shoal::{Client, ClientError, Consistency, Context};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A node that answers status requests (the ring: itself alone, N=1) and
/// takes every data request without ever answering it; counts them.
async fn silent_node(credentials: &Credentials) -> (quinn::Endpoint, Arc<AtomicUsize>) {
    let server = credentials.server_config(transport_config(16)).unwrap();
    let endpoint = quinn::Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let taken = Arc::new(AtomicUsize::new(0));
    let (accepting, counter) = (endpoint.clone(), taken.clone());
    tokio::spawn(async move {
        while let Some(incoming) = accepting.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(connection) = incoming.await else { return };
                while let Ok((mut send, recv)) = connection.accept_bi().await {
                    let counter = counter.clone();
                    tokio::spawn(async move {
                        let mut reader = FrameReader::new(recv, 1 << 20);
                        while let Ok(Some(Tagged { id, body })) = reader.next::<Tagged<Request>>().await {
                            match body {
                                Request::Admin(_) => {
                                    let answer =
                                        Response::Admin(AdminResponse::Status(Box::new(report(addr))));
                                    let _ = write_frame(&mut send, &Tagged { id, body: answer }).await;
                                }
                                // Never answered.
                                _ => {
                                    counter.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                        }
                    });
                }
            });
        }
    });
    (endpoint, taken)
}

fn report(addr: SocketAddr) -> StatusReport {
    StatusReport {
        node: NodeId(7),
        generation: 1,
        members: vec![MemberReport {
            node: NodeId(7),
            addr,
            generation: 1,
            status: NodeStatus::Normal,
            up: true,
            ownership: 1.0,
            storage_failed: false,
        }],
        stats: Default::default(),
        in_flight: 0,
        replication: 1,
        vnodes: 8,
        hints: Vec::new(),
        keys: 0,
        root: Default::default(),
        streaming: None,
        storage_failure: None,
    }
}

#[test]
fn a_write_without_an_answer_is_indeterminate_and_sent_once() {
    run(Duration::from_secs(30), async {
        let dir = tempfile::tempdir().unwrap();
        init_cluster_dir(dir.path()).unwrap();
        let credentials = Credentials::from_cluster_dir(dir.path()).unwrap();
        let (endpoint, taken) = silent_node(&credentials).await;
        let addr = endpoint.local_addr().unwrap();
        let client = Client::builder(credentials)
            .seed(addr)
            .attempt_timeout(Duration::from_millis(500))
            .connect()
            .await
            .unwrap();

        let error = client
            .put("k", "v", &Context::empty(), Consistency::One)
            .await
            .unwrap_err();
        assert!(
            matches!(error, ClientError::Indeterminate { node, .. } if node == addr),
            "{error:?}"
        );
        assert!(error.may_have_applied());
        assert!(error.to_string().contains("may have been applied"), "{error}");
        assert_eq!(taken.load(Ordering::SeqCst), 1, "the write was sent once");

        let error = client.get("k", Consistency::One).await.unwrap_err();
        assert!(matches!(error, ClientError::Unreachable { .. }), "{error:?}");
        assert!(!error.may_have_applied());
        client.close().await;
        endpoint.close(0u32.into(), b"done");
    });
}

/// The retry policy: a read tries the next node when one does not answer,
/// up to `max_nodes_per_request` nodes.
#[test]
fn a_read_tries_at_most_the_nodes_the_policy_allows() {
    run(Duration::from_secs(30), async {
        let dir = tempfile::tempdir().unwrap();
        init_cluster_dir(dir.path()).unwrap();
        let credentials = Credentials::from_cluster_dir(dir.path()).unwrap();
        let (first, first_taken) = silent_node(&credentials).await;
        let (second, second_taken) = silent_node(&credentials).await;
        let seeds = [first.local_addr().unwrap(), second.local_addr().unwrap()];
        for (limit, second_tried) in [(usize::MAX, 1), (1, 0)] {
            let client = Client::builder(credentials.clone())
                .seeds(seeds)
                .attempt_timeout(Duration::from_millis(300))
                .max_nodes_per_request(limit)
                .connect()
                .await
                .unwrap();
            let before = (
                first_taken.load(Ordering::SeqCst),
                second_taken.load(Ordering::SeqCst),
            );
            let error = client.get("k", Consistency::One).await.unwrap_err();
            assert!(matches!(error, ClientError::Unreachable { .. }), "{error:?}");
            assert_eq!(first_taken.load(Ordering::SeqCst), before.0 + 1);
            assert_eq!(second_taken.load(Ordering::SeqCst), before.1 + second_tried);
            client.close().await;
        }
        first.close(0u32.into(), b"done");
        second.close(0u32.into(), b"done");
    });
}
