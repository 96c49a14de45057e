//! Decoding off the operator thread. A polled message is handed to a small pool of
//! worker threads and its place in the merge is held by a [`Slot`] the decoded input is
//! delivered to. The merge orders messages by their Kafka metadata (timestamp, topic
//! rank, partition, offset), never by their contents, so the order, and with it the
//! output, is the same as decoding in line; only the message whose turn it is may have to
//! wait for its worker. The job queue is bounded, so a slow pool slows polling (and the
//! partitions' pause/resume backpressure does the rest), never memory.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use devloom_schemas::codec::DecodeOptions;

use crate::core::{Input, RawRecord, ReadStamp, decode_record};

/// Where a message's decoded input arrives.
pub struct Slot(Receiver<Input>);

impl Slot {
    /// The decoded input, waiting for the worker if it is not done; `None` if the worker
    /// died (a bug: decoding does not panic on any input).
    pub fn take(self) -> Option<Input> {
        self.0.recv().ok()
    }
}

type Job = (RawRecord, ReadStamp, SyncSender<Input>);

/// Worker threads decoding records.
pub struct DecodePool {
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl DecodePool {
    /// `threads` workers; 0 means one fewer than the cores (at least one).
    pub fn start(threads: usize, opts: DecodeOptions) -> std::io::Result<Self> {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1)),
            n => n,
        };
        let (jobs, queue) = sync_channel::<Job>(threads * 64);
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..threads)
            .map(|i| {
                let (queue, opts) = (queue.clone(), opts.clone());
                std::thread::Builder::new().name(format!("devloom-decode-{i}")).spawn(move || {
                    loop {
                        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        let Ok((record, read, done)) = job else { return };
                        // The receiver may be gone (the source stopped): nothing to do then.
                        let _ = done.send(Input::decoded(decode_record(record, &opts), read));
                    }
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self { jobs: Some(jobs), workers })
    }

    /// Queues `record` for decoding (waiting while the queue is full); its slot.
    pub fn decode(&self, record: RawRecord, read: ReadStamp) -> Slot {
        let (done, slot) = sync_channel(1);
        // Should every worker be gone, the job is dropped and the empty slot says so.
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send((record, read, done));
        }
        Slot(slot)
    }
}

impl Drop for DecodePool {
    fn drop(&mut self) {
        self.jobs.take();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use devloom_schemas::codec::Expect;

    use super::*;
    use crate::core::Origin;

    /// Slots come back in the order they were handed out, whatever order the workers
    /// finish in, and a bad record is its dead letter, as in line.
    #[test]
    fn slots_keep_their_order_and_dead_letters() {
        let pool = DecodePool::start(3, DecodeOptions::default()).unwrap();
        let record = |i: usize| {
            let payload = if i % 7 == 3 {
                b"not json".to_vec()
            } else {
                format!(r#"{{"service":"s{i}","status":"firing","starts_at":"2026-11-27T09:00:00Z"}}"#)
                    .into_bytes()
            };
            RawRecord::new(payload, Expect::Alerts, Origin::Simulator)
        };
        let slots: Vec<Slot> = (0..200).map(|i| pool.decode(record(i), ReadStamp::now())).collect();
        for (i, slot) in slots.into_iter().enumerate() {
            match slot.take().unwrap() {
                Input::Record(events, _) => match &events[..] {
                    [devloom_schemas::Event::Alert(a)] => assert_eq!(a.service, format!("s{i}")),
                    other => panic!("{i}: {other:?}"),
                },
                Input::Rejected(r, _) => assert_eq!(i % 7, 3, "{i}: {}", r.reason),
                _ => panic!("{i}: not a record"),
            }
        }
    }
}
