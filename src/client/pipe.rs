//! One connection's client streams (protocol 6 on).
//!
//! A [`Pipe`] keeps a few long-lived streams ("lanes") open on one
//! connection and carries every request of this client to that node on
//! them, each tagged with an id; the node answers each with the same id as
//! soon as it is ready, in any order. A request costs one frame each way,
//! not a stream opened, finished and acknowledged. QUIC's flow control on
//! the lanes is the back-pressure: a node that has as many requests of this
//! connection in flight as it allows stops reading them.

use super::Attempt;
use crate::net::frame::{DEFAULT_MAX_FRAME, FrameError, encode};
use crate::net::stream::FrameReader;
use crate::proto::message::Tagged;
use crate::proto::{Request, Response};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Streams per connection: a large value on one does not hold up the
/// small requests on the others.
const LANES: usize = 4;
/// Requests a lane's writer sends in one write at most.
const WRITE_BATCH: usize = 64;

/// Why a request got no answer.
#[derive(Clone, Debug)]
enum Lost {
    /// The connection or the stream failed.
    Closed(String),
    /// The node sent something this client cannot read.
    Unreadable(String),
}

/// The requests of one connection still waiting for their answers.
#[derive(Default)]
struct Pending {
    waiting: HashMap<u64, oneshot::Sender<Result<Response, Lost>>>,
    /// Set once a lane failed: every waiting request was failed, and no new
    /// one is taken (the client connects again).
    broken: Option<Lost>,
}

struct Shared {
    addr: SocketAddr,
    connection: quinn::Connection,
    next_id: AtomicU64,
    pending: Mutex<Pending>,
}

impl Shared {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fails every waiting request, marks the pipe unusable and closes
    /// its connection (the client connects again on its next request).
    fn break_with(&self, why: Lost) {
        let waiting = {
            let mut pending = self.pending();
            pending.broken.get_or_insert(why.clone());
            std::mem::take(&mut pending.waiting)
        };
        self.connection.close(0u32.into(), b"request stream ended");
        for (_, waiter) in waiting {
            let _ = waiter.send(Err(why.clone()));
        }
    }

    /// What a failure of the connection looks like to a caller (the node's
    /// reason when it closed the connection because of our certificate).
    fn closed(&self, error: impl std::fmt::Display) -> Lost {
        Lost::Closed(super::closed_because(&self.connection, error))
    }
}

/// The lanes of one connection to one node.
pub(super) struct Pipe {
    shared: Arc<Shared>,
    lanes: Vec<mpsc::UnboundedSender<Bytes>>,
}

/// Forgets a request's waiter when its caller stops waiting, answered or
/// not (a timeout, or a dropped future).
struct Waiting<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.shared.pending().waiting.remove(&self.id);
    }
}

impl Pipe {
    /// Opens the lanes on `connection` (to the node at `addr`).
    pub(super) async fn open(addr: SocketAddr, connection: quinn::Connection) -> Result<Pipe, Attempt> {
        let shared = Arc::new(Shared {
            addr,
            connection: connection.clone(),
            next_id: AtomicU64::new(0),
            pending: Mutex::new(Pending::default()),
        });
        let mut lanes = Vec::with_capacity(LANES);
        for _ in 0..LANES {
            let (send, recv) = connection
                .open_bi()
                .await
                .map_err(|e| Attempt::NotSent(super::closed_because(&connection, e)))?;
            let (queue, queued) = mpsc::unbounded_channel();
            tokio::spawn(write_requests(send, queued, shared.clone()));
            tokio::spawn(read_answers(recv, shared.clone()));
            lanes.push(queue);
        }
        Ok(Pipe { shared, lanes })
    }

    /// The connection under the lanes.
    pub(super) fn connection(&self) -> &quinn::Connection {
        &self.shared.connection
    }

    /// Whether requests can still be sent: the connection is open and no
    /// lane failed.
    pub(super) fn usable(&self) -> bool {
        self.shared.connection.close_reason().is_none() && self.shared.pending().broken.is_none()
    }

    /// Sends `request` and waits up to `within` for its answer.
    pub(super) async fn call(&self, request: &Request, within: Duration) -> Result<Response, Attempt> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (waiter, answer) = oneshot::channel();
        {
            let mut pending = self.shared.pending();
            if let Some(why) = &pending.broken {
                return Err(self.attempt(why.clone(), false));
            }
            pending.waiting.insert(id, waiter);
        }
        let _waiting = Waiting {
            shared: &self.shared,
            id,
        };
        let frame = Bytes::from(encode(&Tagged { id, body: request }));
        let lane = &self.lanes[usize::try_from(id).unwrap_or(0) % self.lanes.len()];
        if lane.send(frame).is_err() {
            return Err(Attempt::NotSent("the request stream closed".into()));
        }
        match tokio::time::timeout(within, answer).await {
            Ok(Ok(Ok(response))) => Ok(response),
            Ok(Ok(Err(why))) => Err(self.attempt(why, true)),
            Ok(Err(_)) => Err(Attempt::NoAnswer("the request stream closed".into())),
            Err(_) => Err(Attempt::NoAnswer(format!("no answer within {within:?}"))),
        }
    }

    /// The attempt's failure for `why`; `sent` when the request had left.
    fn attempt(&self, why: Lost, sent: bool) -> Attempt {
        match why {
            Lost::Closed(reason) if sent => Attempt::NoAnswer(reason),
            Lost::Closed(reason) => Attempt::NotSent(reason),
            Lost::Unreadable(reason) => Attempt::Final(super::ClientError::Protocol {
                addr: self.shared.addr,
                source: FrameError::Malformed { reason },
            }),
        }
    }
}

/// Writes a lane's requests, as many as are queued in one write.
async fn write_requests(
    mut send: quinn::SendStream,
    mut queued: mpsc::UnboundedReceiver<Bytes>,
    shared: Arc<Shared>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while queued.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        if let Err(error) = send.write_all_chunks(&mut batch).await {
            shared.break_with(shared.closed(error));
            return;
        }
        batch.clear();
    }
    // The pipe was dropped: the node answers what it has, then ends too.
    let _ = send.finish();
}

/// Hands each answer on a lane to its waiting request.
async fn read_answers(recv: quinn::RecvStream, shared: Arc<Shared>) {
    let mut reader = FrameReader::new(recv, DEFAULT_MAX_FRAME);
    loop {
        match reader.next::<Tagged<Response>>().await {
            Ok(Some(Tagged { id, body })) => {
                // No waiter: its caller gave up on it.
                if let Some(waiter) = shared.pending().waiting.remove(&id) {
                    let _ = waiter.send(Ok(body));
                }
            }
            Ok(None) => {
                shared.break_with(Lost::Closed("the node ended the request stream".into()));
                return;
            }
            Err(FrameError::Io { source }) => {
                shared.break_with(shared.closed(source));
                return;
            }
            Err(error) => {
                shared.break_with(Lost::Unreadable(error.to_string()));
                reader.stop(1);
                return;
            }
        }
    }
}
