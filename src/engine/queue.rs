//! A priority queue of timed events.
//!
//! Events come out in order of time; events at the same time come out in the
//! order they were scheduled (a sequence number breaks ties), so the order
//! never depends on heap internals. Scheduling before the current time is an
//! error.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::SimTime;

struct Entry<E> {
    time: SimTime,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, o: &Self) -> bool {
        (self.time, self.seq) == (o.time, o.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.time, self.seq).cmp(&(o.time, o.seq))
    }
}

/// Scheduling an event before the queue's current time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event scheduled at {at} but the clock is already at {now}")]
pub struct InThePast {
    /// Requested time.
    pub at: SimTime,
    /// The queue's current time.
    pub now: SimTime,
}

/// A discrete-event queue with a clock that advances as events are popped.
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<Entry<E>>>,
    seq: u64,
    now: SimTime,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new(SimTime::ZERO)
    }
}

impl<E> EventQueue<E> {
    /// An empty queue whose clock reads `now`.
    pub fn new(now: SimTime) -> Self {
        Self {
            heap: BinaryHeap::new(),
            seq: 0,
            now,
        }
    }

    /// The current time: that of the last event popped (or the start time).
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Schedules `event` at `time` (≥ now).
    pub fn schedule(&mut self, time: SimTime, event: E) -> Result<(), InThePast> {
        if time < self.now {
            return Err(InThePast {
                at: time,
                now: self.now,
            });
        }
        self.heap.push(Reverse(Entry {
            time,
            seq: self.seq,
            event,
        }));
        self.seq += 1;
        Ok(())
    }

    /// Removes the earliest event and advances the clock to its time.
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        let Reverse(e) = self.heap.pop()?;
        self.now = e.time;
        Some((e.time, e.event))
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when no event is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_order_with_fifo_ties() {
        let mut q = EventQueue::new(SimTime(0));
        for (t, e) in [(5, 'a'), (1, 'b'), (5, 'c'), (3, 'd'), (1, 'e'), (5, 'f')] {
            q.schedule(SimTime(t), e).unwrap();
        }
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        let expect = [(1, 'b'), (1, 'e'), (3, 'd'), (5, 'a'), (5, 'c'), (5, 'f')];
        assert_eq!(
            order,
            expect.map(|(t, e)| (SimTime(t), e)).to_vec(),
            "ties must come out in scheduling order"
        );
        assert_eq!(q.now(), SimTime(5));
    }

    #[test]
    fn scheduling_in_the_past_is_an_error() {
        let mut q = EventQueue::new(SimTime(10));
        assert!(q.schedule(SimTime(9), ()).is_err());
        q.schedule(SimTime(10), ()).unwrap();
        q.schedule(SimTime(20), ()).unwrap();
        q.pop();
        q.pop();
        assert_eq!(
            q.schedule(SimTime(15), ()),
            Err(InThePast {
                at: SimTime(15),
                now: SimTime(20)
            })
        );
    }
}
