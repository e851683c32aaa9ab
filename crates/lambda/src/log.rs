//! Function log lines (Lambda's `START`/`END`/`REPORT` lines and the processes' output) go to
//! stderr through one writer thread: under load many lines leave in one write, instead of one
//! unbuffered write per line on the request path. Lines keep their order.
//!
//! Writers append to a shared buffer and wake the thread only when the buffer was empty; the
//! thread then lets lines gather for a few milliseconds before writing them out. A wake-up per
//! line (a channel send) cost the invocation path more than the write it saved.

use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// How long the writer lets lines gather once woken.
const GATHER: Duration = Duration::from_millis(5);
/// Beyond this much unwritten text (stderr blocked or slow), writers wait, as a blocked stderr
/// would block a direct write.
const MAX_PENDING: usize = 4 << 20;

#[derive(Default)]
struct State {
    text: Vec<u8>,
    /// Flushes asked for since the last write; the writer bumps `written` when they are out.
    flush_requested: u64,
    written: u64,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when there is something to write (the buffer was empty) or a flush is asked.
    work: Condvar,
    /// Signalled after every write.
    done: Condvar,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A writer that panicked holding the lock left only bytes behind; keep using them.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn writer(shared: &'static Shared) {
    let mut err = std::io::stderr();
    loop {
        {
            let mut st = lock(&shared.state);
            while st.text.is_empty() && st.flush_requested == st.written {
                st = shared.work.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        }
        std::thread::sleep(GATHER);
        let (text, upto) = {
            let mut st = lock(&shared.state);
            (std::mem::take(&mut st.text), st.flush_requested)
        };
        let _ = err.write_all(&text);
        let _ = err.flush();
        let mut st = lock(&shared.state);
        st.written = upto;
        // Give the (usually large) buffer back rather than reallocating it next time.
        if st.text.is_empty() {
            let mut text = text;
            text.clear();
            st.text = text;
        }
        drop(st);
        shared.done.notify_all();
    }
}

fn shared() -> Option<&'static Shared> {
    static SHARED: OnceLock<Option<&'static Shared>> = OnceLock::new();
    *SHARED.get_or_init(|| {
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            done: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("lambda-logs".into())
            .spawn(move || writer(shared))
            .ok()
            .map(|_| shared)
    })
}

/// Writes `line` (with its newline) to stderr, after every line written before it.
pub(crate) fn line(line: String) {
    let Some(shared) = shared() else {
        let _ = std::io::stderr().write_all(line.as_bytes());
        return;
    };
    let mut st = lock(&shared.state);
    while st.text.len() > MAX_PENDING {
        st = shared.done.wait(st).unwrap_or_else(|p| p.into_inner());
    }
    let was_empty = st.text.is_empty();
    st.text.extend_from_slice(line.as_bytes());
    drop(st);
    if was_empty {
        shared.work.notify_one();
    }
}

/// Waits (at most a second) until every line written so far is out.
pub(crate) fn flush() {
    let Some(shared) = shared() else { return };
    let mut st = lock(&shared.state);
    st.flush_requested += 1;
    let target = st.flush_requested;
    shared.work.notify_one();
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while st.written < target {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        st = match shared.done.wait_timeout(st, left) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_returns_once_lines_are_written() {
        for i in 0..100 {
            line(format!("log test line {i}\n"));
        }
        // `flush` gives up after a second; returning well before means the writer confirmed.
        let started = std::time::Instant::now();
        flush();
        assert!(started.elapsed() < Duration::from_millis(900));
    }
}
