//! One timer for an operation that may stay pending too long: a request
//! body that stops arriving (slow POST, `body`) or a write the client
//! stops taking (slow read, `conn_io`). It is made at the first stall,
//! re-armed when a new stall starts and left alone while one lasts, so it
//! costs nothing per byte or frame.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

#[derive(Debug)]
pub(super) struct StallTimer {
    idle: Duration,
    /// Made at the first stall only.
    timer: Option<Pin<Box<Sleep>>>,
    /// A stall is going on (its deadline is set).
    waiting: bool,
}

impl StallTimer {
    pub(super) fn new(idle: Duration) -> StallTimer {
        StallTimer {
            idle,
            timer: None,
            waiting: false,
        }
    }

    /// The operation moved: the next pending one starts a new stall.
    pub(super) fn moved(&mut self) {
        self.waiting = false;
    }

    /// The operation is pending: `Ready` once this stall has lasted the
    /// idle time.
    pub(super) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = Instant::now() + self.idle;
        let timer = match &mut self.timer {
            Some(t) => {
                if !self.waiting {
                    t.as_mut().reset(deadline);
                }
                t
            }
            None => self
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.waiting = true;
        timer.as_mut().poll(cx)
    }
}
