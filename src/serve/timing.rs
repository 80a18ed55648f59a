//! The time from a request coming in to the last byte of its answer going out: the answer's body is wrapped
//! so that the time is taken when the body is finished (or dropped, when the client went away), and given to
//! the alert rules' window with the answer's cache result.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http_body::{Frame, SizeHint};

use crate::alerts::Engine;
use crate::alerts::window::Served;

/// `response` with its body timed: when its last byte is out, `engine` records `served` and the time since
/// `started`.
pub fn until_last_byte(
    response: Response,
    started: Instant,
    served: Served,
    engine: Arc<Engine>,
) -> Response {
    let (parts, body) = response.into_parts();
    let timed = Timed { inner: body, stop: Some(Stop { started, served, engine }) };
    Response::from_parts(parts, Body::new(timed))
}

struct Stop {
    started: Instant,
    served: Served,
    engine: Arc<Engine>,
}

impl Drop for Stop {
    fn drop(&mut self) {
        self.engine.record(self.served, self.started.elapsed());
    }
}

struct Timed {
    inner: Body,
    stop: Option<Stop>,
}

impl http_body::Body for Timed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || this.inner.is_end_stream() {
            this.stop.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
