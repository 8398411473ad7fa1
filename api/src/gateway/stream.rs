//! A streamed answer passed through as its events arrive: each complete
//! server-sent event goes out as soon as its blank line is in, nothing is
//! held back longer. The gateway always asks the engine for usage
//! (`stream_options.include_usage`); the usage chunk (`choices: []`) is
//! read for metering, and dropped when the client did not ask for it.

use bytes::{Bytes, BytesMut};

/// Tokens a response says it used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    /// The `usage` object of an OpenAI answer, if it has one.
    pub fn of(answer: &serde_json::Value) -> Option<Usage> {
        let usage = answer.get("usage")?.as_object()?;
        let field = |name: &str| usage.get(name).and_then(serde_json::Value::as_u64);
        Some(Usage {
            prompt_tokens: field("prompt_tokens")?,
            completion_tokens: field("completion_tokens").unwrap_or(0),
        })
    }
}

/// Splits a byte stream into server-sent events and filters them.
#[derive(Debug)]
pub struct Events {
    buffer: BytesMut,
    /// Whether the client asked for the usage chunk.
    pub client_wants_usage: bool,
    /// The usage the stream reported, once it has.
    pub usage: Option<Usage>,
    /// Events that carried choices: about one output token each, what a
    /// stream cut before its usage chunk is metered by.
    pub choice_events: u64,
}

/// The end of an event: a blank line.
fn event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

impl Events {
    pub fn new(client_wants_usage: bool) -> Self {
        Events {
            buffer: BytesMut::new(),
            client_wants_usage,
            usage: None,
            choice_events: 0,
        }
    }

    /// Takes in `chunk`; what may go to the client now.
    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        self.buffer.extend_from_slice(chunk);
        let mut out = BytesMut::new();
        while let Some((at, len)) = event_end(&self.buffer) {
            let event = self.buffer.split_to(at + len);
            if self.keep(&event[..at]) {
                out.extend_from_slice(&event);
            }
        }
        out.freeze()
    }

    /// What is left when the engine's stream ends without a blank line.
    pub fn finish(&mut self) -> Bytes {
        let rest = self.buffer.split();
        if self.keep(&rest) {
            rest.freeze()
        } else {
            Bytes::new()
        }
    }

    /// Reads one event's usage; whether it goes to the client.
    fn keep(&mut self, event: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(event) else {
            return true;
        };
        let data: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim_start)
            .collect::<Vec<_>>()
            .join("\n");
        if data.is_empty() || data == "[DONE]" {
            return true;
        }
        let Ok(chunk) = serde_json::from_str::<serde_json::Value>(&data) else {
            return true;
        };
        if chunk
            .get("choices")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|c| !c.is_empty())
        {
            self.choice_events += 1;
        }
        if let Some(usage) = Usage::of(&chunk) {
            self.usage = Some(usage);
            let only_usage = chunk
                .get("choices")
                .and_then(serde_json::Value::as_array)
                .is_some_and(Vec::is_empty);
            if only_usage && !self.client_wants_usage {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: &str =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n";
    const USAGE: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    #[test]
    fn events_pass_as_soon_as_they_are_whole_and_usage_is_read() {
        let mut events = Events::new(true);
        let whole = format!("{CHUNK}{USAGE}{DONE}");
        // Split anywhere, even inside an event: nothing out until its end.
        let (a, b) = whole.as_bytes().split_at(10);
        assert!(events.push(a).is_empty());
        let out = events.push(b);
        assert_eq!(out, whole.as_bytes(), "all three, unchanged");
        assert_eq!(
            events.usage,
            Some(Usage {
                prompt_tokens: 12,
                completion_tokens: 3
            })
        );
    }

    #[test]
    fn the_usage_chunk_is_dropped_when_the_client_did_not_ask() {
        let mut events = Events::new(false);
        let out = events.push(format!("{CHUNK}{USAGE}{DONE}").as_bytes());
        assert_eq!(out, format!("{CHUNK}{DONE}").as_bytes());
        assert_eq!(events.usage.map(|u| u.prompt_tokens), Some(12));
        assert_eq!(events.choice_events, 1, "the usage chunk has no choices");
        assert!(events.finish().is_empty());
    }

    #[test]
    fn crlf_events_and_a_tail_without_a_blank_line_pass() {
        let mut events = Events::new(false);
        let out = events.push(b"data: {\"choices\":[]}\r\n\r\ndata: [DO");
        assert_eq!(out, &b"data: {\"choices\":[]}\r\n\r\n"[..]);
        assert_eq!(events.finish(), &b"data: [DO"[..]);
    }
}
