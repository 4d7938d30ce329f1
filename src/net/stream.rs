//! Frames on QUIC streams.

use super::frame::{FrameError, HEADER_LEN, decode_body, encode, parse_header};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Reads one frame. `Ok(None)` when the stream ends cleanly between frames.
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
    decode_body(&body, crc).map(Some)
}

/// Writes one frame.
pub async fn write_frame<T: Serialize>(send: &mut quinn::SendStream, message: &T) -> Result<(), FrameError> {
    send.write_all(&encode(message))
        .await
        .map_err(|e| FrameError::Io { source: e.into() })
}
