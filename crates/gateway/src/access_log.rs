//! Access logs: one line per request, formatted with `$context` variables exactly as a stage's
//! `accessLogSettings.format`, written off the request path by a background thread.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};

use crate::context::RequestContext;

/// Lines queued but not yet written; beyond this, lines are dropped (and counted) rather than
/// slowing requests down.
const QUEUE: usize = 65_536;

#[derive(Debug)]
enum Segment {
    Literal(String),
    Var(String),
}

#[derive(Debug)]
pub struct AccessLog {
    segments: Vec<Segment>,
    tx: SyncSender<String>,
    dropped: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    #[error("cannot open access log file {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("access log format is empty")]
    EmptyFormat,
    #[error("access log format is {0} bytes; the maximum is 3072")]
    TooLong(usize),
    #[error("cannot start the access log writer: {0}")]
    Thread(std::io::Error),
}

fn parse_format(format: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut rest = format;
    while let Some(i) = rest.find('$') {
        lit.push_str(&rest[..i]);
        let at = &rest[i..];
        let (braced, after) = match at.strip_prefix("${") {
            Some(a) => (true, a),
            None => (false, &at[1..]),
        };
        if let Some(name_start) = after.strip_prefix("context.") {
            let len = name_start
                .char_indices()
                .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '.' || *c == '-'))
                .map_or(name_start.len(), |(i, _)| i);
            let mut name = &name_start[..len];
            // A trailing dot is punctuation, not part of the variable.
            while let Some(n) = name.strip_suffix('.') {
                name = n;
            }
            let mut consumed = "context.".len() + name.len();
            if braced {
                if after[consumed..].starts_with('}') {
                    consumed += 1;
                } else {
                    lit.push_str(&at[..2]);
                    rest = &at[2..];
                    continue;
                }
            }
            if !lit.is_empty() {
                out.push(Segment::Literal(std::mem::take(&mut lit)));
            }
            out.push(Segment::Var(name.to_string()));
            rest = &after[consumed..];
        } else {
            lit.push('$');
            rest = &at[1..];
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        out.push(Segment::Literal(lit));
    }
    out
}

impl AccessLog {
    /// `destination`: `stdout` (default), `stderr`, or a file path (appended to).
    pub fn new(format: &str, destination: Option<&str>) -> Result<Self, AccessLogError> {
        if format.trim().is_empty() {
            return Err(AccessLogError::EmptyFormat);
        }
        if format.len() > 3072 {
            return Err(AccessLogError::TooLong(format.len()));
        }
        let mut out: Box<dyn Write + Send> = match destination.unwrap_or("stdout") {
            "stdout" | "-" => Box::new(std::io::stdout()),
            "stderr" => Box::new(std::io::stderr()),
            path => Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| AccessLogError::Open {
                        path: path.to_string(),
                        source,
                    })?,
            ),
        };
        let (tx, rx) = sync_channel::<String>(QUEUE);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut w = BufWriter::new(&mut out);
                while let Ok(line) = rx.recv() {
                    let _ = w.write_all(line.as_bytes());
                    // Flush when the queue is drained so lines appear promptly under light load
                    // and in batches under heavy load.
                    while let Ok(l) = rx.try_recv() {
                        let _ = w.write_all(l.as_bytes());
                    }
                    let _ = w.flush();
                }
            })
            .map_err(AccessLogError::Thread)?;
        Ok(AccessLog {
            segments: parse_format(format),
            tx,
            dropped: AtomicU64::new(0),
        })
    }

    pub fn format_line(&self, ctx: &RequestContext) -> String {
        let mut line = String::with_capacity(256);
        for s in &self.segments {
            match s {
                Segment::Literal(l) => line.push_str(l),
                // AWS writes `-` for variables without a value.
                Segment::Var(v) => match ctx.lookup(v) {
                    Some(s) if !s.is_empty() => line.push_str(&s),
                    _ => line.push('-'),
                },
            }
        }
        line.push('\n');
        line
    }

    pub fn log(&self, ctx: &RequestContext) {
        let line = self.format_line(ctx);
        if let Err(TrySendError::Full(_)) = self.tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_format() {
        let log = AccessLog::new(
            "$context.identity.sourceIp - - [$context.requestTime] \"$context.httpMethod $context.resourcePath $context.protocol\" $context.status $context.responseLength $context.requestId",
            Some("stderr"),
        )
        .expect("log");
        let ctx = RequestContext {
            source_ip: "1.2.3.4".into(),
            request_time_epoch_ms: 1_700_000_000_000,
            http_method: "GET".into(),
            resource_path: "/pets".into(),
            protocol: "HTTP/1.1",
            status: Some(200),
            request_id: "rid".into(),
            ..Default::default()
        };
        assert_eq!(
            log.format_line(&ctx),
            "1.2.3.4 - - [14/Nov/2023:22:13:20 +0000] \"GET /pets HTTP/1.1\" 200 - rid\n"
        );
    }

    #[test]
    fn json_format_and_braces() {
        let log = AccessLog::new(
            "{\"id\":\"$context.requestId\",\"s\":\"${context.stage}\",\"x\":\"$other\"}",
            Some("stderr"),
        )
        .expect("log");
        let ctx = RequestContext {
            request_id: "r1".into(),
            stage: "dev".into(),
            ..Default::default()
        };
        assert_eq!(
            log.format_line(&ctx),
            "{\"id\":\"r1\",\"s\":\"dev\",\"x\":\"$other\"}\n"
        );
    }
}
