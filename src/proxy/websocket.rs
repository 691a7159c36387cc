//! Carries a WebSocket's bytes between the browser and the app, and ends it politely. On shutdown
//! the browser gets a close frame (1001, going away) so its page reconnects through another
//! replica at once, rather than a cut TCP connection (1006). A close frame may only be written
//! between two of the app's frames, so the app-to-browser direction is followed frame by frame.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// A close frame from a server (unmasked) with status 1001, "going away".
const GOING_AWAY: [u8; 4] = [0x88, 0x02, 0x03, 0xE9];
/// How long a frame in flight may take to finish once shutdown starts.
const FINISH_FRAME_WITHIN: Duration = Duration::from_secs(2);
const BUFFER: usize = 8 * 1024;

/// Where the app-to-browser stream stands between frame boundaries (RFC 6455 §5.2).
#[derive(Debug, Default)]
pub struct FrameTracker {
    /// Bytes of the current frame's header seen so far (at most 14).
    header: Vec<u8>,
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
}

impl FrameTracker {
    /// Follows `bytes` as they are passed on.
    pub fn observe(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len() as u64);
                self.payload_left -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            self.header.push(bytes[0]);
            bytes = &bytes[1..];
            if let Some(len) = self.header_done() {
                self.header.clear();
                self.payload_left = len;
            }
        }
    }

    /// The payload length once the header is complete.
    fn header_done(&self) -> Option<u64> {
        let h = &self.header;
        if h.len() < 2 {
            return None;
        }
        let masked = h[1] & 0x80 != 0;
        let mask_len = if masked { 4 } else { 0 };
        let (len, len_bytes) = match h[1] & 0x7F {
            126 => (None, 2),
            127 => (None, 8),
            n => (Some(u64::from(n)), 0),
        };
        if h.len() < 2 + len_bytes + mask_len {
            return None;
        }
        Some(len.unwrap_or_else(|| {
            h[2..2 + len_bytes]
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        }))
    }

    /// Whether the next byte would start a new frame.
    pub fn at_boundary(&self) -> bool {
        self.header.is_empty() && self.payload_left == 0
    }
}

/// Copies both ways until either side closes, `closed` fires (the session, token or instance
/// ended: cut at once), or `shutdown` fires (the browser gets a going-away close frame).
pub async fn carry<C, A>(
    client: &mut C,
    app: &mut A,
    shutdown: &CancellationToken,
    closed: impl std::future::Future<Output = ()>,
    meters: &crate::observe::ProxyMeters,
) -> std::io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
    A: AsyncRead + AsyncWrite + Unpin,
{
    let mut to_client = vec![0u8; BUFFER];
    let mut to_app = vec![0u8; BUFFER];
    let mut frames = FrameTracker::default();
    let mut finish_by: Option<tokio::time::Instant> = None;
    tokio::pin!(closed);
    loop {
        if finish_by.is_some() && frames.at_boundary() {
            client.write_all(&GOING_AWAY).await?;
            client.flush().await?;
            return Ok(());
        }
        let deadline = async {
            match finish_by {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = app.read(&mut to_client) => {
                let n = n?;
                if n == 0 {
                    return client.shutdown().await;
                }
                client.write_all(&to_client[..n]).await?;
                meters.sent_to_client(n);
                frames.observe(&to_client[..n]);
            }
            n = client.read(&mut to_app), if finish_by.is_none() => {
                let n = n?;
                if n == 0 {
                    return app.shutdown().await;
                }
                app.write_all(&to_app[..n]).await?;
                meters.sent_to_app(n);
            }
            _ = shutdown.cancelled(), if finish_by.is_none() => {
                finish_by = Some(tokio::time::Instant::now() + FINISH_FRAME_WITHIN);
            }
            _ = deadline => return Ok(()),
            _ = &mut closed => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload_len: usize) -> Vec<u8> {
        let mut f = vec![0x82];
        match payload_len {
            n if n < 126 => f.push(n as u8),
            n if n <= 0xFFFF => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend(std::iter::repeat_n(7u8, payload_len));
        f
    }

    #[test]
    fn boundaries_are_found_across_split_reads_and_all_length_forms() {
        let mut stream = Vec::new();
        for len in [0, 5, 125, 126, 300, 70_000] {
            stream.extend(frame(len));
        }
        for chunk in [1, 3, 7, 1000, stream.len()] {
            let mut t = FrameTracker::default();
            for piece in stream.chunks(chunk) {
                t.observe(piece);
            }
            assert!(t.at_boundary(), "chunks of {chunk}");
        }
        let mut t = FrameTracker::default();
        let one = frame(300);
        t.observe(&one[..3]);
        assert!(!t.at_boundary(), "inside the header");
        t.observe(&one[3..100]);
        assert!(!t.at_boundary(), "inside the payload");
        t.observe(&one[100..]);
        assert!(t.at_boundary());
    }

    #[test]
    fn a_masked_frame_counts_its_mask() {
        let mut t = FrameTracker::default();
        t.observe(&[0x81, 0x82, 1, 2, 3, 4, b'h']);
        assert!(!t.at_boundary());
        t.observe(b"i");
        assert!(t.at_boundary());
    }

    #[tokio::test]
    async fn on_shutdown_the_client_gets_going_away_after_the_frame_in_flight() {
        let (mut client, mut client_side) = tokio::io::duplex(1 << 16);
        let (mut app, mut app_side) = tokio::io::duplex(1 << 16);
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let carried = tokio::spawn(async move {
            carry(
                &mut client_side,
                &mut app_side,
                &stop,
                std::future::pending(),
                &Default::default(),
            )
            .await
        });
        let big = frame(1000);
        app.write_all(&big[..500]).await.expect("half a frame");
        tokio::time::sleep(Duration::from_millis(50)).await;
        shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(50)).await;
        app.write_all(&big[500..]).await.expect("the rest");
        carried.await.expect("join").expect("carried");
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.expect("read");
        assert_eq!(
            &got[..big.len()],
            &big[..],
            "the frame in flight arrives whole"
        );
        assert_eq!(&got[big.len()..], &GOING_AWAY, "then a close frame, 1001");
    }
}
