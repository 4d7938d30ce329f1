//! Peer frames (batches of messages), anti-entropy (DigestTree exchange) messages included: any
//! bytes decode to a message or an error, never a panic or a runaway
//! allocation. The body is also tried with a valid checksum, so the
//! MessagePack decoder sees every input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::net::frame::{DEFAULT_MAX_FRAME, decode, decode_body};
use shoal::proto::PeerMessage;
use shoal::proto::message::{PeerBatch, PeerHello};

fuzz_target!(|data: &[u8]| {
    let _ = decode::<PeerBatch>(data, DEFAULT_MAX_FRAME);
    let _ = decode_body::<PeerBatch>(data, crc32fast::hash(data));
    let _ = decode_body::<PeerMessage>(data, crc32fast::hash(data));
    let _ = decode_body::<PeerHello>(data, crc32fast::hash(data));
});
