//! Function log lines (Lambda's `START`/`END`/`REPORT` lines and the processes' output) go to
//! stderr through one writer thread: under load many lines leave in one write, instead of one
//! unbuffered write per line on the request path. Lines keep their order.

use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::OnceLock;
use std::time::Duration;

enum Msg {
    Line(String),
    Flush(SyncSender<()>),
}

fn writer(rx: Receiver<Msg>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr());
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(m) = next {
            match m {
                Msg::Line(l) => {
                    let _ = out.write_all(l.as_bytes());
                }
                Msg::Flush(done) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        // Nothing more queued: out it goes.
        let _ = out.flush();
    }
}

fn sender() -> Option<&'static SyncSender<Msg>> {
    static TX: OnceLock<Option<SyncSender<Msg>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = sync_channel(8192);
        std::thread::Builder::new()
            .name("lambda-logs".into())
            .spawn(move || writer(rx))
            .ok()
            .map(|_| tx)
    })
    .as_ref()
}

/// Writes `line` (with its newline) to stderr, after every line written before it.
pub(crate) fn line(line: String) {
    let unsent = match sender() {
        // Blocks only when 8192 lines are waiting, as a blocked stderr would block a write.
        Some(tx) => match tx.send(Msg::Line(line)) {
            Ok(()) => return,
            Err(e) => match e.0 {
                Msg::Line(l) => l,
                Msg::Flush(_) => return,
            },
        },
        None => line,
    };
    let _ = std::io::stderr().write_all(unsent.as_bytes());
}

/// Waits (at most a second) until every line written so far is out.
pub(crate) fn flush() {
    let Some(tx) = sender() else { return };
    let (done, wait) = sync_channel(1);
    if tx.send(Msg::Flush(done)).is_ok() {
        let _ = wait.recv_timeout(Duration::from_secs(1));
    }
}
