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
    /// The tokens of an answer's `usage` object, if it says how many.
    fn of(usage: &serde_json::Value) -> Option<Usage> {
        let usage = usage.as_object()?;
        let field = |name: &str| usage.get(name).and_then(serde_json::Value::as_u64);
        Some(Usage {
            prompt_tokens: field("prompt_tokens")?,
            completion_tokens: field("completion_tokens").unwrap_or(0),
        })
    }
}

/// What the gateway reads of an answer or a streamed chunk: whether it has
/// choices, and its usage. Parsed without building the rest — the answer's
/// text is checked and skipped, never copied (a whole `serde_json::Value`
/// per answer was a measurable share of the gateway's CPU).
#[derive(Debug, Default, serde::Deserialize)]
struct Reading {
    #[serde(default)]
    choices: Choices,
    #[serde(default)]
    usage: Option<serde_json::Value>,
}

/// An answer's `choices`: absent (or not a list), empty, or not.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Choices {
    #[default]
    NotAList,
    Empty,
    Some,
}

impl<'de> serde::Deserialize<'de> for Choices {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Choices;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Choices, A::Error> {
                let mut any = false;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    any = true;
                }
                Ok(if any { Choices::Some } else { Choices::Empty })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Choices, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Choices::NotAList)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Choices, E> {
                Ok(Choices::NotAList)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Choices, E> {
                Ok(Choices::NotAList)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Choices, E> {
                Ok(Choices::NotAList)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Choices, E> {
                Ok(Choices::NotAList)
            }
            fn visit_str<E>(self, _: &str) -> Result<Choices, E> {
                Ok(Choices::NotAList)
            }
            fn visit_unit<E>(self) -> Result<Choices, E> {
                Ok(Choices::NotAList)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Reading {
    /// `text` read, or nothing when it is not a JSON object.
    fn of(text: &[u8]) -> Reading {
        serde_json::from_slice(text).unwrap_or_default()
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.as_ref().and_then(Usage::of)
    }
}

/// The usage a plain (not streamed) answer reports.
pub fn usage_of_answer(body: &[u8]) -> Option<Usage> {
    Reading::of(body).usage()
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
        let mut lines = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim_start);
        // An event's data is its `data:` lines joined; nearly always one,
        // read where it lies.
        let joined;
        let data = match (lines.next(), lines.next()) {
            (None, _) => return true,
            (Some(one), None) => one,
            (Some(first), Some(second)) => {
                joined = [first, second]
                    .into_iter()
                    .chain(lines)
                    .collect::<Vec<_>>()
                    .join("\n");
                joined.as_str()
            }
        };
        if data.is_empty() || data == "[DONE]" {
            return true;
        }
        let Ok(chunk) = serde_json::from_str::<Reading>(data) else {
            return true;
        };
        if chunk.choices == Choices::Some {
            self.choice_events += 1;
        }
        if let Some(usage) = chunk.usage() {
            self.usage = Some(usage);
            if chunk.choices == Choices::Empty && !self.client_wants_usage {
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
    fn an_answers_usage_is_read_whatever_else_it_holds() {
        let answer = br#"{"id":"x","choices":[{"message":{"content":"a \"quoted\" text"}}],
            "usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}"#;
        assert_eq!(
            usage_of_answer(answer),
            Some(Usage {
                prompt_tokens: 7,
                completion_tokens: 2
            })
        );
        // Embeddings report no completion tokens.
        assert_eq!(
            usage_of_answer(br#"{"data":[],"usage":{"prompt_tokens":4,"total_tokens":4}}"#),
            Some(Usage {
                prompt_tokens: 4,
                completion_tokens: 0
            })
        );
        for no_usage in [
            &br#"{"choices":[]}"#[..],
            br#"{"usage":null}"#,
            br#"{"usage":{"prompt_tokens":-1}}"#,
            br#"{"usage":{"completion_tokens":3}}"#,
            br#"[1,2]"#,
            b"not json",
        ] {
            assert_eq!(usage_of_answer(no_usage), None, "{no_usage:?}");
        }
    }

    #[test]
    fn a_chunk_whose_choices_are_not_a_list_counts_no_token_and_is_kept() {
        let mut events = Events::new(false);
        let odd = "data: {\"choices\":{\"a\":[1]},\"usage\":{\"prompt_tokens\":5}}\n\n";
        assert_eq!(
            events.push(odd.as_bytes()),
            odd.as_bytes(),
            "not a usage-only chunk"
        );
        assert_eq!(events.choice_events, 0);
        assert_eq!(events.usage.map(|u| u.prompt_tokens), Some(5));
    }

    #[test]
    fn crlf_events_and_a_tail_without_a_blank_line_pass() {
        let mut events = Events::new(false);
        let out = events.push(b"data: {\"choices\":[]}\r\n\r\ndata: [DO");
        assert_eq!(out, &b"data: {\"choices\":[]}\r\n\r\n"[..]);
        assert_eq!(events.finish(), &b"data: [DO"[..]);
    }
}
