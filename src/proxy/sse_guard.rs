//! Keeps a route marked busy while a streaming response (server-sent events) is open, so a user
//! watching a live stream is not culled as idle.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::routes::OpenConnection;

pub struct HoldOpen<B> {
    inner: B,
    _open: OpenConnection,
}

impl<B> HoldOpen<B> {
    pub fn new(inner: B, open: OpenConnection) -> Self {
        Self { inner, _open: open }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for HoldOpen<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
