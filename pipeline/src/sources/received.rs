//! What the HTTP receivers took, as the embedded run's input: read from the intake's
//! bounded queue in the order requests were accepted, until SIGTERM / SIGINT. On stop
//! the intake is closed first (later requests get 503), then the queue is drained, so
//! every payload a sender was told was taken is processed.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use crate::core::{Input, Source};
use crate::receivers::intake::Queue;

/// How long the loop waits for a request before an idle turn (periodic work, stop).
const IDLE: Duration = Duration::from_millis(200);

/// The receivers' queue as a source.
pub struct Received {
    queue: Queue,
    stop: Arc<AtomicBool>,
    draining: bool,
}

impl Received {
    /// Reads `queue` until `stop` is set.
    pub fn new(queue: Queue, stop: Arc<AtomicBool>) -> Self {
        Self { queue, stop, draining: false }
    }
}

impl Source for Received {
    fn next_input(&mut self) -> Option<io::Result<Input>> {
        if !self.draining && self.stop.load(Ordering::Relaxed) {
            self.queue.close();
            self.draining = true;
        }
        if self.draining {
            return self.queue.rx.try_recv().ok().map(Ok);
        }
        match self.queue.rx.recv_timeout(IDLE) {
            Ok(input) => Some(Ok(input)),
            Err(RecvTimeoutError::Timeout) => Some(Ok(Input::Idle)),
            Err(RecvTimeoutError::Disconnected) => None,
        }
    }
}
