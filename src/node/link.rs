//! One outgoing link to a peer: a QUIC connection (re-established when it
//! fails, with backoff), one long-lived stream carrying peer messages in
//! order, and datagrams for SWIM packets. The driver hands a link every
//! message of one turn for its peer at once; they go in one frame (a
//! [`PeerBatch`]) unless they are large, and frames are written in few
//! stream writes.
//!
//! A message larger than the peer accepts (`max_frame_bytes`, the same on
//! every node) is not sent: the peer would close the stream, and every
//! message queued behind it would be lost with it. The core treats it as a
//! lost message. Only merging concurrent siblings from several replicas
//! can make a state that large: no single write may (`max_state_bytes`).

use super::revocation;
use crate::net::frame::{HEADER_LEN, encode_into};
use crate::net::revocation::RevocationList;
use crate::net::stream::write_buffer;
use crate::net::tls::{PeerCertificate, Role, SERVER_NAME};
use crate::proto::message::{PeerBatch, PeerHello};
use crate::proto::{NodeId, PeerMessage};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The revoked certificates the node knows of.
type Revoked = watch::Receiver<Arc<RevocationList>>;

/// Most messages queued for one peer; more are dropped (the core copes).
const LINK_QUEUE: usize = 8192;
/// Most batches taken from the queue in one go.
const WRITE_BATCH: usize = 256;
/// Encoded bytes past which they are written to the stream before more are
/// encoded: small messages still go in few writes, while large ones (the
/// object gateway's 1 MiB blocks) are not all encoded into one buffer
/// while the stream waits for the peer.
const WRITE_BYTES: usize = 256 << 10;
/// Bytes reserved beyond a state's estimated size for the rest of its
/// message (the request id, placement and clock).
const STATE_SLACK: usize = 4096;
/// A frame takes messages while their estimated size stays under this (a
/// message larger alone goes in a frame of its own).
const FRAME_BYTES: usize = 64 << 10;
const MAX_BACKOFF: Duration = Duration::from_secs(2);

enum Outgoing {
    Messages(PeerBatch),
    Gossip(Bytes),
}

/// The sending side of a link; the task behind it does the I/O and ends
/// when the link is dropped.
pub(super) struct Link {
    queue: mpsc::Sender<Outgoing>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Link {
    pub(super) fn spawn(
        endpoint: quinn::Endpoint,
        addr: SocketAddr,
        me: NodeId,
        max_frame: usize,
        revoked: Revoked,
    ) -> Link {
        let (queue, rx) = mpsc::channel(LINK_QUEUE);
        let task = tokio::spawn(run(endpoint, addr, me, max_frame, rx, revoked));
        Link { queue, task }
    }

    /// Queues `messages` for the peer, to be sent in this order.
    pub(super) fn send_messages(&self, messages: PeerBatch) {
        let _ = self.queue.try_send(Outgoing::Messages(messages));
    }

    pub(super) fn send_gossip(&self, data: Bytes) {
        let _ = self.queue.try_send(Outgoing::Gossip(data));
    }
}

async fn run(
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
    me: NodeId,
    max_frame: usize,
    mut rx: mpsc::Receiver<Outgoing>,
    revoked: Revoked,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let connection = match connect(&endpoint, addr, &revoked).await {
            Ok(connection) => connection,
            Err(error) => {
                tracing::debug!(%addr, %error, "peer unreachable");
                // Drop what is queued: stale messages help nobody, and the
                // core retries what matters.
                while rx.try_recv().is_ok() {}
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                if rx.is_closed() {
                    return;
                }
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let (connection, certificate) = connection;
        // A peer whose certificate is revoked or expires gets nothing more.
        let sent = tokio::select! {
            sent = pump(&connection, me, max_frame, &mut rx) => sent,
            why = revocation::until_invalid(&certificate, revoked.clone()) => {
                connection.close(crate::net::revocation::CLOSE_CERTIFICATE.into(), why.as_bytes());
                Err(format!("{why} (serial {})", certificate.serial))
            }
        };
        match sent {
            Ok(()) => return, // the driver is gone
            Err(error) => tracing::debug!(%addr, %error, "peer link broke; reconnecting"),
        }
    }
}

/// The bytes a message's state needs, for the large ones (a replica write
/// carries a whole object block); 0 for the rest, which are small or
/// bounded by their senders.
fn estimated_bytes(message: &PeerMessage) -> usize {
    match message {
        PeerMessage::ReplicaPut { key, object, .. } | PeerMessage::HintedPut { key, object, .. } => {
            crate::proto::store::state_bytes(key, object) as usize + STATE_SLACK
        }
        _ => 0,
    }
}

/// Where the frame of `messages` that begins at `start` ends, and its
/// estimated size: consecutive messages share a frame while their
/// estimated size stays under [`FRAME_BYTES`].
fn next_frame(messages: &[PeerMessage], start: usize) -> (usize, usize) {
    let mut end = start + 1;
    let mut bytes = estimated_bytes(&messages[start]);
    while let Some(next) = messages.get(end) {
        let more = estimated_bytes(next);
        if bytes + more > FRAME_BYTES {
            break;
        }
        bytes += more;
        end += 1;
    }
    (end, bytes)
}

/// Appends one frame holding `messages` to `out` if its body is at most
/// `max_frame` bytes (what the peer accepts). A frame over it is encoded
/// again message by message, and a message over it alone is left out with
/// a warning.
fn encode_frame(out: &mut Vec<u8>, messages: &[PeerMessage], estimated: usize, max_frame: usize) {
    let start = out.len();
    // Room for a large state first: a buffer grown while encoding it would
    // copy everything encoded so far (a whole 1 MiB object block, as the
    // fields after the state are written).
    out.reserve(HEADER_LEN + estimated);
    encode_into(out, &messages);
    let body = out.len() - start - HEADER_LEN;
    if body <= max_frame {
        return;
    }
    out.truncate(start);
    if let [message] = messages {
        tracing::warn!(
            kind = message.kind(),
            bytes = body,
            max_frame_bytes = max_frame,
            "peer message larger than a peer accepts; not sent (siblings merged from several \
             replicas may outgrow max_state_bytes)"
        );
        return;
    }
    for message in messages {
        encode_frame(
            out,
            std::slice::from_ref(message),
            estimated_bytes(message),
            max_frame,
        );
    }
}

/// A connection to the node at `addr`, and its certificate: refused if the
/// certificate is not a node's or is revoked.
async fn connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    revoked: &Revoked,
) -> Result<(quinn::Connection, PeerCertificate), String> {
    let connecting = endpoint.connect(addr, SERVER_NAME).map_err(|e| e.to_string())?;
    let connection = connecting.await.map_err(|e| e.to_string())?;
    let certificate = PeerCertificate::of_connection(&connection);
    let Some(certificate) = certificate.filter(|c| matches!(c.role, None | Some(Role::Node))) else {
        connection.close(0u32.into(), b"not a node");
        return Err(format!("{addr} presented a certificate that is not a node's"));
    };
    if revoked.borrow().is_revoked(&certificate.serial) {
        connection.close(
            crate::net::revocation::CLOSE_CERTIFICATE.into(),
            b"certificate revoked",
        );
        return Err(format!(
            "{addr} presented a revoked certificate (serial {})",
            certificate.serial
        ));
    }
    Ok((connection, certificate))
}

/// Sends until the queue closes (Ok) or the connection fails (Err).
async fn pump(
    connection: &quinn::Connection,
    me: NodeId,
    max_frame: usize,
    rx: &mut mpsc::Receiver<Outgoing>,
) -> Result<(), String> {
    let mut stream = connection.open_uni().await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    encode_into(&mut buf, &PeerHello { node: me });
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    loop {
        if rx.recv_many(&mut batch, WRITE_BATCH).await == 0 {
            return Ok(());
        }
        for outgoing in batch.drain(..) {
            match outgoing {
                Outgoing::Messages(messages) => {
                    let mut start = 0;
                    while start < messages.len() {
                        let (end, estimated) = next_frame(&messages, start);
                        encode_frame(&mut buf, &messages[start..end], estimated, max_frame);
                        start = end;
                        if buf.len() >= WRITE_BYTES {
                            write_buffer(&mut stream, &mut buf)
                                .await
                                .map_err(|e| e.to_string())?;
                        }
                    }
                }
                Outgoing::Gossip(data) => {
                    // A SWIM packet lost here is like one lost on the wire.
                    let _ = connection.send_datagram(data);
                }
            }
        }
        if !buf.is_empty() {
            write_buffer(&mut stream, &mut buf)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::stream::read_frame;
    use crate::net::tls::{Credentials, init_cluster_dir, transport_config};
    use crate::proto::message::KeyState;

    fn ack(batch: u64) -> PeerMessage {
        PeerMessage::PushAck {
            batch,
            result: Ok(()),
        }
    }

    #[tokio::test]
    async fn a_batch_goes_in_one_frame_and_a_message_larger_than_a_peer_accepts_is_skipped() {
        const MAX_FRAME: usize = 1000;
        let dir = tempfile::tempdir().unwrap();
        init_cluster_dir(dir.path()).unwrap();
        let credentials = Credentials::from_cluster_dir(dir.path()).unwrap();
        let transport = transport_config(16);
        let server = quinn::Endpoint::server(
            credentials.server_config(transport.clone()).unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        client.set_default_client_config(credentials.client_config(transport).unwrap());

        let link = Link::spawn(
            client.clone(),
            server.local_addr().unwrap(),
            NodeId(7),
            MAX_FRAME,
            watch::Sender::new(Arc::default()).subscribe(),
        );
        let too_big = PeerMessage::Push {
            batch: 2,
            states: vec![KeyState {
                key: vec![b'k'; 2 * MAX_FRAME],
                object: Default::default(),
            }],
        };
        link.send_messages(vec![ack(1), too_big, ack(3)]);
        link.send_messages(vec![ack(4), ack(5)]);

        let received = tokio::time::timeout(Duration::from_secs(10), async {
            let connection = server.accept().await.unwrap().await.unwrap();
            let mut recv = connection.accept_uni().await.unwrap();
            let hello: PeerHello = read_frame(&mut recv, MAX_FRAME).await.unwrap().unwrap();
            assert_eq!(hello.node, NodeId(7));
            let mut frames = Vec::new();
            for _ in 0..3 {
                // A frame over MAX_FRAME would fail here, as it does on a node.
                match read_frame::<PeerBatch>(&mut recv, MAX_FRAME).await {
                    Ok(Some(messages)) => frames.push(
                        messages
                            .into_iter()
                            .map(|message| match message {
                                PeerMessage::PushAck { batch, .. } => batch,
                                other => panic!("expected an acknowledgement, got {other:?}"),
                            })
                            .collect::<Vec<_>>(),
                    ),
                    other => panic!("expected a frame of acknowledgements, got {other:?}"),
                }
            }
            frames
        })
        .await
        .expect("the small messages arrive within 10 s");
        assert_eq!(
            received,
            vec![vec![1], vec![3], vec![4, 5]],
            "the one too large is skipped, the rest of its batch arrives in order, each \
             message in a frame of its own, and the next batch in one frame"
        );
        drop(link);
        client.close(0u32.into(), b"done");
        server.close(0u32.into(), b"done");
    }
}
