//! A request body as it arrives: DATA frames are queued per stream by the connection and taken
//! by the pipeline; every byte taken (or dropped) is reported back, and only then does the
//! connection give the client that much flow-control window again. So what one connection
//! holds of request bodies is bounded by the window it advertised (`CONN_RECV_WINDOW`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the connection shares with its streams' bodies: the bytes they released, and how to
/// wake the connection's task about them.
#[derive(Default)]
pub(super) struct ConnShared {
    /// Something was released: the connection's loop takes the lock only then.
    pending: AtomicBool,
    released: Mutex<Vec<(u32, usize)>>,
    pub(super) waker: AtomicWaker,
}

impl ConnShared {
    fn release(&self, id: u32, n: usize) {
        if n == 0 {
            return;
        }
        self.released
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id, n));
        self.pending.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// The bytes released since the last call, by stream.
    pub(super) fn take_released(&self, into: &mut Vec<(u32, usize)>) {
        if !self.pending.swap(false, Ordering::Acquire) {
            return;
        }
        let mut released = self.released.lock().unwrap_or_else(PoisonError::into_inner);
        into.append(&mut released);
    }
}

/// Why a body ends in an error (the stream was reset: by the client, or by kubeguard because
/// the body broke the protocol or its limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Broken {
    Reset,
    LengthMismatch,
    TooLarge,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Broken::Reset => "h2 request stream reset",
            Broken::LengthMismatch => "h2 request body differs from its content-length",
            Broken::TooLarge => "h2 request body too large",
        })
    }
}

impl std::error::Error for Broken {}

#[derive(Default)]
struct State {
    chunks: VecDeque<Bytes>,
    end: bool,
    broken: Option<Broken>,
    /// The reader is gone: whatever comes is released at once.
    dropped: bool,
    waker: Option<Waker>,
}

/// The connection's end of one stream's body.
pub(super) struct Feed {
    state: Arc<Mutex<State>>,
}

impl Feed {
    /// Queues `data`; `false` when the reader is gone (the caller releases it at once).
    pub(super) fn push(&self, data: Bytes) -> bool {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.dropped {
            return false;
        }
        st.chunks.push_back(data);
        if let Some(w) = st.waker.take() {
            w.wake();
        }
        true
    }

    pub(super) fn end(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.end = true;
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }

    /// The body ends in an error; the bytes still queued are returned (released by the caller).
    pub(super) fn break_off(&self, why: Broken) -> usize {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.broken.get_or_insert(why);
        let n = st.chunks.drain(..).map(|c| c.len()).sum();
        if let Some(w) = st.waker.take() {
            w.wake();
        }
        n
    }
}

impl Drop for Feed {
    /// The stream ended without END_STREAM (its answer was complete first, or it was dropped):
    /// the body ends in an error rather than look complete.
    fn drop(&mut self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !st.end {
            st.broken.get_or_insert(Broken::Reset);
            if let Some(w) = st.waker.take() {
                w.wake();
            }
        }
    }
}

/// The pipeline's end: an `http_body::Body`.
pub struct H2Body {
    id: u32,
    state: Arc<Mutex<State>>,
    conn: Arc<ConnShared>,
    declared: Option<u64>,
}

impl std::fmt::Debug for H2Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Body").field("id", &self.id).finish()
    }
}

pub(super) fn channel(id: u32, conn: Arc<ConnShared>, declared: Option<u64>) -> (Feed, H2Body) {
    let state = Arc::new(Mutex::new(State::default()));
    (
        Feed {
            state: state.clone(),
        },
        H2Body {
            id,
            state,
            conn,
            declared,
        },
    )
}

impl Body for H2Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let mut st = this.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(why) = st.broken {
            return Poll::Ready(Some(Err(Box::new(why))));
        }
        if let Some(chunk) = st.chunks.pop_front() {
            drop(st);
            this.conn.release(this.id, chunk.len());
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if st.end {
            return Poll::Ready(None);
        }
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.end && st.chunks.is_empty() && st.broken.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.declared {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl Drop for H2Body {
    fn drop(&mut self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.dropped = true;
        let n: usize = st.chunks.drain(..).map(|c| c.len()).sum();
        drop(st);
        self.conn.release(self.id, n);
    }
}
