//! A local function's stdout and stderr, copied to Turnpike's stderr one line at a time and
//! tagged with the invocation that wrote it (`init` before the first), as CloudWatch groups a
//! function's log lines.
//!
//! The tag cannot be read off "the invocation running now" when a line is read: a function
//! that prints during init and then asks for its first event has written those lines before
//! the event went out, but the copying task may read them after. So when the runtime API
//! hands out an event, it marks each pipe at the byte where the event's output starts: what
//! the copier has read so far plus what is still in the pipe (`FIONREAD`). The function is
//! blocked in `/next` then and writes nothing, so the mark is exact. The copier attributes
//! each line by where it ends.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, ReadBuf};

/// One output pipe of a function process.
#[derive(Debug)]
pub(crate) struct Pipe {
    fd: RawFd,
    /// Bytes the copier has taken out of the pipe.
    read: AtomicU64,
    /// Set before the copier drops the pipe (the fd number may then be reused).
    closed: AtomicBool,
    /// `(offset, tag)`: output from `offset` on belongs to `tag`.
    marks: Mutex<VecDeque<(u64, Arc<str>)>>,
}

impl Pipe {
    pub(crate) fn new(fd: RawFd) -> Arc<Pipe> {
        Arc::new(Pipe {
            fd,
            read: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            marks: Mutex::new(VecDeque::new()),
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// From here on, output belongs to `tag`.
    pub(crate) fn mark(&self, tag: &Arc<str>) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        // `read` and the pipe's fill level are read separately; retry until `read` did not
        // move in between (the copier only drains, and the writer is waiting for its event).
        let settled = (0..8).find_map(|_| {
            let before = self.read.load(Ordering::Acquire);
            let unread = self.unread();
            (self.read.load(Ordering::Acquire) == before).then_some(before + unread)
        });
        let offset = settled.unwrap_or_else(|| self.read.load(Ordering::Acquire) + self.unread());
        self.marks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((offset, tag.clone()));
    }

    /// Bytes waiting in the pipe (0 when that cannot be told).
    fn unread(&self) -> u64 {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int through the pointer, which points at `n`. A closed
        // or reused fd makes the call fail or answer for another file; either only moves a
        // log tag, never memory.
        let rc = unsafe { libc::ioctl(self.fd, libc::FIONREAD, &mut n as *mut libc::c_int) };
        if rc == 0 {
            u64::try_from(n).unwrap_or(0)
        } else {
            0
        }
    }
}

/// Counts what is read through it into [`Pipe::read`].
struct Counted<R> {
    inner: R,
    pipe: Arc<Pipe>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.pipe.read.fetch_add(n as u64, Ordering::AcqRel);
        r
    }
}

/// Reads a pipe's output as tagged lines.
pub(crate) struct Lines<R> {
    reader: BufReader<Counted<R>>,
    pipe: Arc<Pipe>,
    tag: Arc<str>,
    consumed: u64,
    line: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Lines<R> {
    pub(crate) fn new(r: R, pipe: Arc<Pipe>) -> Self {
        Lines {
            reader: BufReader::new(Counted {
                inner: r,
                pipe: pipe.clone(),
            }),
            pipe,
            tag: Arc::from("init"),
            consumed: 0,
            line: Vec::new(),
        }
    }

    /// The next line (without its line ending) and the tag it belongs to.
    pub(crate) async fn next(&mut self) -> Option<(Arc<str>, String)> {
        self.line.clear();
        match self.reader.read_until(b'\n', &mut self.line).await {
            Ok(0) | Err(_) => {
                self.pipe.closed.store(true, Ordering::Release);
                return None;
            }
            Ok(n) => self.consumed += n as u64,
        }
        // The line belongs to the last mark it goes past.
        let mut marks = self.pipe.marks.lock().unwrap_or_else(|e| e.into_inner());
        while marks
            .front()
            .is_some_and(|(offset, _)| *offset < self.consumed)
        {
            if let Some((_, t)) = marks.pop_front() {
                self.tag = t;
            }
        }
        let text = String::from_utf8_lossy(&self.line);
        Some((
            self.tag.clone(),
            text.trim_end_matches(['\n', '\r']).to_string(),
        ))
    }
}

/// Copies `r` to Turnpike's stderr line by line, as `[lambda:{name}] [{tag}] {line}`.
pub(crate) async fn pump<R: AsyncRead + Unpin>(r: R, pipe: Arc<Pipe>, name: String) {
    let mut lines = Lines::new(r, pipe);
    while let Some((tag, text)) = lines.next().await {
        crate::log::line(format!("[lambda:{name}] [{tag}] {text}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use tokio::io::AsyncWriteExt;

    /// Lines written before a mark keep the earlier tag even when they are read after it.
    #[tokio::test]
    async fn lines_are_tagged_by_where_the_mark_fell() {
        let (mut tx, rx) = tokio::net::unix::pipe::pipe().expect("pipe");
        let pipe = Pipe::new(rx.as_raw_fd());
        tx.write_all(b"init one\ninit two\n").await.expect("write");
        // Nothing has been read yet: the mark falls after the two init lines.
        pipe.mark(&Arc::from("req-1"));
        tx.write_all(b"during req-1\n").await.expect("write");
        pipe.mark(&Arc::from("req-2"));
        tx.write_all(b"during req-2\r\n").await.expect("write");
        drop(tx);
        let marks: Vec<u64> = pipe
            .marks
            .lock()
            .expect("lock")
            .iter()
            .map(|(o, _)| *o)
            .collect();
        assert_eq!(marks, vec![18, 31]);
        let mut lines = Lines::new(rx, pipe.clone());
        let mut out = Vec::new();
        while let Some((tag, text)) = lines.next().await {
            out.push(format!("{tag}: {text}"));
        }
        assert_eq!(
            out,
            vec![
                "init: init one",
                "init: init two",
                "req-1: during req-1",
                "req-2: during req-2"
            ]
        );
        assert_eq!(pipe.read.load(Ordering::Acquire), 45);
        assert!(pipe.closed.load(Ordering::Acquire));
    }
}
