//! Per-connection timers that are re-armed rather than re-created.
//!
//! Every request on a keep-alive connection arms two deadlines: hyper's header-read timeout
//! (slowloris protection) and the integration timeout. A fresh tokio timer each time costs an
//! allocation, a registration in the timer wheel and a removal. Worse, a registration that
//! is earlier than the runtime's next planned wake-up makes tokio wake its own driver through
//! the eventfd: a system call and a spurious epoll round every few requests
//! (bench/README.md).
//!
//! A [`SleepSlot`] keeps one timer per connection and purpose. A later deadline does not
//! touch it: the timer stays armed for the earlier one, and when that fires it is moved on to
//! the deadline now in force (so the wheel entry fires at most once per timeout period). Only
//! an earlier deadline re-arms it at once. A request that finds the slot in use (HTTP/2
//! streams in parallel) gets a timer of its own.

use std::borrow::Borrow;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::time::Sleep;

/// One reusable timer.
#[derive(Debug, Clone, Default)]
pub struct SleepSlot(Arc<Mutex<Option<Pin<Box<Sleep>>>>>);

impl SleepSlot {
    /// A timer that fires at `deadline`, the slot's own when it is free.
    pub fn sleep_until(&self, deadline: Instant) -> SlotSleep {
        SlotSleep::new(self.clone(), deadline)
    }

    /// Runs `fut` for at most `limit` (as `tokio::time::timeout`).
    ///
    /// `fut` is taken pinned (`std::pin::pin!(f)`), not by value: an async fn that takes a
    /// future by value stores it twice over (its argument and its local), and each caller
    /// up the chain copies it again. A 2 KB backend call became 6 KB inside this timeout
    /// that way, and was copied on every request.
    pub fn timeout<F: Future + Unpin>(&self, limit: Duration, fut: F) -> Timeout<'_, F> {
        self.timeout_at((tokio::time::Instant::now() + limit).into_std(), fut)
    }

    /// Runs `fut` until `deadline` at most (as `tokio::time::timeout_at`); `fut` is taken
    /// pinned, as for [`SleepSlot::timeout`]. A future of its own rather than an `async fn`:
    /// that would add a state machine around this one, and its timer would hold a clone of
    /// the slot (two atomic operations) where a borrow does.
    pub fn timeout_at<F: Future + Unpin>(&self, deadline: Instant, fut: F) -> Timeout<'_, F> {
        Timeout {
            fut,
            sleep: SlotSleep::new(self, deadline),
        }
    }

    /// The slot's timer, or `None` when another user has it.
    fn take(&self) -> Option<Pin<Box<Sleep>>> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }

    /// Gives a timer back, unless the slot got another one meanwhile.
    fn put(&self, sleep: Pin<Box<Sleep>>) {
        if let Ok(mut slot) = self.0.lock() {
            if slot.is_none() {
                *slot = Some(sleep);
            }
        }
    }
}

/// [`SleepSlot::timeout_at`]'s future.
#[derive(Debug)]
pub struct Timeout<'s, F> {
    fut: F,
    sleep: SlotSleep<&'s SleepSlot>,
}

impl<F: Future + Unpin> Future for Timeout<'_, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(v) = Pin::new(&mut this.fut).poll(cx) {
            return Poll::Ready(Ok(v));
        }
        Pin::new(&mut this.sleep).poll(cx).map(|()| Err(Elapsed))
    }
}

/// The deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// A timer taken from a [`SleepSlot`] (owned, or borrowed by a [`Timeout`]); goes back to
/// it when dropped.
#[derive(Debug)]
pub struct SlotSleep<S: Borrow<SleepSlot> = SleepSlot> {
    sleep: Option<Pin<Box<Sleep>>>,
    /// This sleep's own deadline; the timer may be armed earlier than it.
    deadline: tokio::time::Instant,
    slot: S,
}

impl<S: Borrow<SleepSlot>> SlotSleep<S> {
    fn new(slot: S, deadline: Instant) -> Self {
        let deadline = tokio::time::Instant::from_std(deadline);
        let sleep = match slot.borrow().take() {
            Some(mut s) => {
                // Armed for an earlier request's deadline (the common case), the timer is
                // left alone and moved on only if it fires (`poll`): re-arming it on every
                // request cost more than the rest of the timeout. Armed later than this
                // deadline, it must be brought forward now.
                if s.deadline() > deadline {
                    s.as_mut().reset(deadline);
                }
                s
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        SlotSleep {
            sleep: Some(sleep),
            deadline,
            slot,
        }
    }
}

impl<S: Borrow<SleepSlot> + Unpin> Future for SlotSleep<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(s) = this.sleep.as_mut() else {
            return Poll::Ready(());
        };
        loop {
            std::task::ready!(s.as_mut().poll(cx));
            if s.deadline() >= this.deadline {
                return Poll::Ready(());
            }
            // It fired at an earlier request's deadline: on to this one.
            s.as_mut().reset(this.deadline);
        }
    }
}

impl<S: Borrow<SleepSlot>> Drop for SlotSleep<S> {
    fn drop(&mut self) {
        if let Some(s) = self.sleep.take() {
            self.slot.borrow().put(s);
        }
    }
}

impl hyper::rt::Sleep for SlotSleep {}

/// hyper's timer for one connection: its header-read deadline reuses one [`SleepSlot`].
#[derive(Debug, Clone, Default)]
pub struct ConnTimer(SleepSlot);

impl hyper::rt::Timer for ConnTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(self.0.sleep_until(Instant::now() + duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(self.0.sleep_until(deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tokio's clock, which paused time advances (std's does not).
    fn now() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    #[tokio::test(start_paused = true)]
    async fn slot_timers_fire_time_out_and_are_reused() {
        let slot = SleepSlot::default();
        let start = now();
        slot.sleep_until(start + Duration::from_millis(50)).await;
        assert!(now().duration_since(start) >= Duration::from_millis(50));
        // The slot's timer is back and re-armed for a later deadline.
        assert!(slot.0.lock().expect("lock").is_some());
        let again = now();
        slot.sleep_until(again + Duration::from_millis(80)).await;
        assert!(now().duration_since(again) >= Duration::from_millis(80));

        let sleeping = std::pin::pin!(tokio::time::sleep(Duration::from_secs(1)));
        let slow = slot.timeout(Duration::from_millis(10), sleeping);
        assert_eq!(slow.await, Err(Elapsed));
        let ready = std::pin::pin!(async { 7 });
        let fast = slot.timeout(Duration::from_secs(1), ready);
        assert_eq!(fast.await, Ok(7));
        // A second user while the slot's timer is taken gets its own.
        let a = slot.sleep_until(now() + Duration::from_millis(30));
        let b = slot.sleep_until(now() + Duration::from_millis(20));
        let t = now();
        b.await;
        assert!(now().duration_since(t) >= Duration::from_millis(20));
        a.await;
        assert!(now().duration_since(t) >= Duration::from_millis(30));
        // A later deadline than the one the timer is armed for: it fires at the earlier one,
        // and is moved on rather than ending the sleep.
        let t = now();
        drop(slot.sleep_until(t + Duration::from_millis(10)));
        slot.sleep_until(t + Duration::from_millis(500)).await;
        assert!(now().duration_since(t) >= Duration::from_millis(500));
        // ...and a timer that fired long ago, left in the slot, too.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let t = now();
        slot.sleep_until(t + Duration::from_millis(300)).await;
        assert!(now().duration_since(t) >= Duration::from_millis(300));
        // A deadline earlier than the re-armed timer's is honoured too.
        let t = now();
        drop(slot.sleep_until(t + Duration::from_secs(60)));
        slot.sleep_until(t + Duration::from_millis(5)).await;
        assert!(now().duration_since(t) < Duration::from_secs(1));
    }
}
