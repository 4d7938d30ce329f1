//! The node's side of client streams (protocol 6 on).
//!
//! A client keeps a few streams open per connection and sends any number
//! of requests on each, tagged with ids ([`Tagged`]). One task reads a
//! stream's requests and hands them to the driver; one task writes the
//! answers, as many as are ready in one write, in the order they are
//! ready. No task is started per request.
//!
//! A connection has at most `max_requests_per_connection` requests in
//! flight, over all its streams. Past that, the stream's reader waits for
//! an answer to be written before it reads on, so QUIC's flow control holds
//! the client back and nothing queues at the node.

use super::{Event, forbidden, log_bad_frame};
use crate::net::frame::encode_into;
use crate::net::stream::{FrameReader, write_buffer};
use crate::net::tls::Role;
use crate::proto::message::Tagged;
use crate::proto::{Request, Response};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

/// Answers written in one write at most.
const WRITE_BATCH: usize = 64;

/// Where the answer to a request goes.
pub(crate) enum Replier {
    /// A caller in this process (the HTTP API, the S3 gateway, the node's
    /// own tasks).
    Once(oneshot::Sender<Response>),
    /// A request read from a client stream.
    Stream(StreamReply),
}

pub(crate) struct StreamReply {
    id: u64,
    answers: mpsc::UnboundedSender<Answer>,
    /// The request's place among the connection's requests in flight,
    /// held until its answer is written.
    permit: OwnedSemaphorePermit,
}

struct Answer {
    id: u64,
    response: Response,
    _permit: OwnedSemaphorePermit,
}

impl Replier {
    /// Answers; a caller that went away is not an error.
    pub(crate) fn send(self, response: Response) {
        match self {
            Replier::Once(reply) => {
                let _ = reply.send(response);
            }
            Replier::Stream(StreamReply { id, answers, permit }) => {
                let _ = answers.send(Answer {
                    id,
                    response,
                    _permit: permit,
                });
            }
        }
    }
}

impl From<oneshot::Sender<Response>> for Replier {
    fn from(reply: oneshot::Sender<Response>) -> Replier {
        Replier::Once(reply)
    }
}

/// Serves one client stream until the client finishes it, it fails, or
/// the node stops; then writes the answers still due and finishes it.
pub(super) async fn serve(
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    events: mpsc::Sender<Event>,
    max_frame: usize,
    role: Option<Role>,
    in_flight: Arc<Semaphore>,
) {
    let (answers, queued) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_answers(send, queued));
    let mut reader = FrameReader::new(recv, max_frame);
    loop {
        let Tagged { id, body: request } = match reader.next::<Tagged<Request>>().await {
            Ok(Some(tagged)) => tagged,
            Ok(None) => break,
            Err(error) => {
                // The stream's bytes are lost from here: its earlier
                // requests are answered, and it ends.
                log_bad_frame(&error, "request stream");
                reader.stop(1);
                break;
            }
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let reply = Replier::Stream(StreamReply {
            id,
            answers: answers.clone(),
            permit,
        });
        match role {
            Some(role) if !role.allows(&request) => reply.send(forbidden(role, &request)),
            _ => {
                if events.send(Event::Request { request, reply }).await.is_err() {
                    break;
                }
            }
        }
    }
    drop(answers);
    let _ = writer.await;
}

/// Writes a stream's answers as they come, then finishes the stream once
/// every request read on it was answered.
async fn write_answers(mut send: quinn::SendStream, mut queued: mpsc::UnboundedReceiver<Answer>) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut buf = Vec::new();
    while queued.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        for answer in &batch {
            encode_into(
                &mut buf,
                &Tagged {
                    id: answer.id,
                    body: &answer.response,
                },
            );
        }
        if write_buffer(&mut send, &mut buf).await.is_err() {
            return;
        }
        // Written: these requests leave the connection's count in flight.
        batch.clear();
    }
    if send.finish().is_ok() {
        // Let the client read the last answers before the stream is dropped.
        let _ = send.stopped().await;
    }
}
