//! Frames on QUIC streams.

use super::frame::{FrameError, HEADER_LEN, decode, decode_body, encode, parse_header, truncated};
use crate::proto::shared_bytes::sharing;
use bytes::{Buf, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest piece asked of the stream at once.
const READ_CHUNK: usize = 256 * 1024;
/// A reader's buffer past this size, once empty, is given back.
const KEEP_BUFFER: usize = 1024 * 1024;
/// Frames from this size on are taken out of the reader's buffer whole,
/// so that their large values share them ([`sharing`]) instead of being
/// copied out.
const SHARE_FRAME: usize = 64 * 1024;

/// Reads the frames of one stream, any number of them, each checked
/// against `max` before its body is awaited.
///
/// It reads whatever the stream has ready and decodes every whole frame in
/// it, so a stream carrying many small frames costs one read per batch of
/// them rather than two per frame.
pub struct FrameReader {
    recv: quinn::RecvStream,
    buf: BytesMut,
    max: usize,
}

impl FrameReader {
    /// Reads frames of at most `max` body bytes from `recv`.
    pub fn new(recv: quinn::RecvStream, max: usize) -> FrameReader {
        FrameReader {
            recv,
            buf: BytesMut::new(),
            max,
        }
    }

    /// The next frame's message. `Ok(None)` when the stream ends cleanly
    /// between frames.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        loop {
            if let Some((frame, crc)) = self.large_frame()? {
                // Its large values share the frame's memory, not copies.
                return sharing(&frame, |frame| decode_body(&frame[HEADER_LEN..], crc)).map(Some);
            }
            if let Some((message, used)) = decode::<T>(&self.buf, self.max)? {
                self.buf.advance(used);
                self.release_if_empty();
                return Ok(Some(message));
            }
            if let Some(header) = self.buf.first_chunk::<HEADER_LEN>() {
                // A frame has begun: room for all of it at once.
                let (len, _) = parse_header(*header, self.max)?;
                self.buf.reserve(HEADER_LEN + len - self.buf.len());
            }
            match self.recv.read_chunk(READ_CHUNK, true).await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk.bytes),
                Ok(None) if self.buf.is_empty() => return Ok(None),
                Ok(None) => return Err(truncated(&self.buf, self.max)),
                Err(e) => return Err(FrameError::Io { source: e.into() }),
            }
        }
    }

    /// The next frame, taken out of the buffer, and its checksum, if it is
    /// whole and at least [`SHARE_FRAME`] bytes long.
    fn large_frame(&mut self) -> Result<Option<(Bytes, u32)>, FrameError> {
        let Some(header) = self.buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let (len, crc) = parse_header(*header, self.max)?;
        if len < SHARE_FRAME || self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let frame = self.buf.split_to(HEADER_LEN + len).freeze();
        self.release_if_empty();
        Ok(Some((frame, crc)))
    }

    /// Gives an empty buffer past [`KEEP_BUFFER`] back, so that one large
    /// frame does not leave its stream holding that much memory.
    fn release_if_empty(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > KEEP_BUFFER {
            self.buf = BytesMut::new();
        }
    }

    /// Tells the sender to stop: nothing more will be read.
    pub fn stop(&mut self, code: u32) {
        let _ = self.recv.stop(code.into());
    }
}

/// Reads one frame. `Ok(None)` when the stream ends cleanly between frames.
/// (For a stream of many frames, a [`FrameReader`] reads ahead.)
pub async fn read_frame<T: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Result<Option<T>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(quinn::ReadExactError::FinishedEarly(got)) => {
            return Err(FrameError::Truncated {
                needed: HEADER_LEN,
                got,
            });
        }
        Err(quinn::ReadExactError::ReadError(e)) => return Err(FrameError::Io { source: e.into() }),
    }
    let (len, crc) = parse_header(header, max)?;
    let mut body = vec![0u8; len];
    match recv.read_exact(&mut body).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(got)) => {
            return Err(FrameError::Truncated {
                needed: HEADER_LEN + len,
                got: HEADER_LEN + got,
            });
        }
        Err(quinn::ReadExactError::ReadError(e)) => return Err(FrameError::Io { source: e.into() }),
    }
    super::frame::decode_body(&body, crc).map(Some)
}

/// Below this, a buffer's bytes are copied into the stream and the buffer
/// is kept for the next write; from it on, the buffer itself is handed to
/// the stream (no copy of a large message) and a new one starts.
const HAND_OVER: usize = 64 * 1024;

/// Writes `buf`'s encoded frames to `send` and leaves `buf` empty. A large
/// buffer is handed to QUIC as it is, not copied: it stays allocated until
/// the peer acknowledges it, and the caller starts a new one. So a buffer
/// kept for reuse never grew past about twice [`HAND_OVER`], and callers
/// need not shrink it.
pub async fn write_buffer(send: &mut quinn::SendStream, buf: &mut Vec<u8>) -> Result<(), quinn::WriteError> {
    if buf.len() < HAND_OVER {
        send.write_all(buf).await?;
        buf.clear();
        return Ok(());
    }
    send.write_chunk(bytes::Bytes::from(std::mem::take(buf))).await
}

/// Writes one frame.
pub async fn write_frame<T: Serialize>(send: &mut quinn::SendStream, message: &T) -> Result<(), FrameError> {
    send.write_all(&encode(message))
        .await
        .map_err(|e| FrameError::Io { source: e.into() })
}
