//! `--speed`: replays a source in event time, `speed` times faster than it happened, so
//! a file or the simulator plays out like live traffic (for the page, a demo, a test
//! that watches an incident unfold). While the next input is not due the source is
//! idle, which is when the pipeline's watchers look.

use std::io;
use std::time::{Duration, Instant};

use devloom_schemas::TimestampNs;

use crate::core::{Input, ReadStamp, Source};

/// Longest single wait, so the pipeline still sees idle moments.
const MAX_WAIT: Duration = Duration::from_millis(50);

/// A source released in event time.
pub struct Paced<S> {
    inner: S,
    speed: f64,
    start: Option<(TimestampNs, Instant)>,
    held: Option<Input>,
}

impl<S: Source> Paced<S> {
    /// `inner`, `speed` times real time (above 0).
    pub fn new(inner: S, speed: f64) -> Self {
        Self { inner, speed, start: None, held: None }
    }
}

fn event_time(input: &Input) -> Option<TimestampNs> {
    match input {
        Input::Record(events, _) => events.iter().map(|e| e.event_time_ns()).max(),
        Input::Event(event, _) => Some(event.event_time_ns()),
        Input::Rejected(r, _) => r.salvaged.iter().map(|e| e.event_time_ns()).max(),
        Input::Read(_) | Input::Calls { .. } | Input::Idle => None,
    }
}

/// The input as if read now: its alert → map latency starts when it is released.
fn restamp(input: Input) -> Input {
    match input {
        Input::Record(events, _) => Input::Record(events, ReadStamp::now()),
        Input::Event(event, _) => Input::Event(event, ReadStamp::now()),
        Input::Rejected(r, _) => Input::Rejected(r, ReadStamp::now()),
        other => other,
    }
}

impl<S: Source> Source for Paced<S> {
    fn next_input(&mut self) -> Option<io::Result<Input>> {
        let input = match self.held.take() {
            Some(input) => input,
            None => match self.inner.next_input()? {
                Ok(input) => input,
                Err(e) => return Some(Err(e)),
            },
        };
        let Some(t) = event_time(&input) else { return Some(Ok(input)) };
        let (t0, started) = *self.start.get_or_insert((t, Instant::now()));
        let due = started + Duration::from_secs_f64(t.saturating_sub(t0) as f64 / 1e9 / self.speed);
        let now = Instant::now();
        if due <= now {
            return Some(Ok(restamp(input)));
        }
        std::thread::sleep((due - now).min(MAX_WAIT));
        self.held = Some(input);
        Some(Ok(Input::Idle))
    }
}
