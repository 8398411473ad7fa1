//! The simulated tokenizer and model: how many tokens a prompt is, and
//! what the model answers. Pure and deterministic: the same prompt gets
//! the same answer, on every replica and every run.
//!
//! - A text is one token per [`BYTES_PER_TOKEN`] bytes, rounded up, as
//!   BPE tokenizers average on English text.
//! - A completion prompt adds [`BOS_TOKENS`]; a list of token ids is as
//!   many tokens as ids.
//! - A chat adds what a chat template does (Llama 3's, in round numbers):
//!   [`BOS_TOKENS`], [`MESSAGE_TEMPLATE_TOKENS`] per message (its role
//!   header and end-of-turn), and [`GENERATION_PROMPT_TOKENS`] for the
//!   assistant header the answer follows.
//! - The answer is words picked by a hash of the prompt, one word per
//!   token, ending with a `.` token when the model stops on its own after
//!   [`MIN_NATURAL_TOKENS`]..=[`MAX_NATURAL_TOKENS`] tokens.

use crate::cluster::common::fnv64;

pub const BYTES_PER_TOKEN: u64 = 4;
pub const BOS_TOKENS: u64 = 1;
pub const MESSAGE_TEMPLATE_TOKENS: u64 = 4;
pub const GENERATION_PROMPT_TOKENS: u64 = 4;
pub const MIN_NATURAL_TOKENS: u32 = 16;
pub const MAX_NATURAL_TOKENS: u32 = 64;
/// Every simulated embedding has this many dimensions.
pub const EMBEDDING_DIMENSIONS: usize = 1024;

const WORDS: &[&str] = &[
    "the",
    "model",
    "serves",
    "tokens",
    "from",
    "a",
    "simulated",
    "engine",
    "on",
    "every",
    "replica",
    "cluster",
    "and",
    "cloud",
    "with",
    "its",
    "cache",
    "of",
    "keys",
    "values",
    "which",
    "grows",
    "as",
    "each",
    "request",
    "decodes",
    "one",
    "step",
    "at",
    "time",
    "while",
    "others",
    "wait",
    "in",
    "queue",
    "for",
    "slot",
    "so",
    "that",
    "memory",
    "bandwidth",
    "bounds",
    "how",
    "fast",
    "answer",
    "streams",
    "back",
    "to",
    "client",
    "through",
    "gateway",
    "metered",
    "billed",
    "per",
    "million",
    "input",
    "output",
    "quickly",
    "nodes",
    "pools",
    "devices",
    "plans",
    "weights",
    "layers",
];

/// Tokens of a piece of text, without special tokens.
pub fn text_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(BYTES_PER_TOKEN)
}

/// Tokens of a completion prompt given as text.
pub fn prompt_tokens(text: &str) -> u64 {
    BOS_TOKENS + text_tokens(text)
}

/// Tokens of a chat after its template: messages as (role, text).
pub fn chat_tokens<'a>(messages: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    BOS_TOKENS
        + messages
            .into_iter()
            .map(|(_, text)| MESSAGE_TEMPLATE_TOKENS + text_tokens(text))
            .sum::<u64>()
        + GENERATION_PROMPT_TOKENS
}

/// The seed of a chat's answer.
pub fn chat_seed<'a>(messages: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut bytes = Vec::new();
    for (role, text) in messages {
        bytes.extend_from_slice(role.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(0);
    }
    fnv64(&bytes)
}

/// The seed of a completion's answer.
pub fn text_seed(text: &str) -> u64 {
    fnv64(text.as_bytes())
}

/// The seed of a prompt given as token ids.
pub fn ids_seed(ids: &[u32]) -> u64 {
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
    fnv64(&bytes)
}

/// A well-mixed 64-bit value from `x` (splitmix64's finalizer).
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Why a sequence ended, in the API's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model stopped on its own.
    Stop,
    /// It reached `max_tokens` or the context length.
    Length,
}

impl Finish {
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }
}

/// One sequence's answer: its seed, length and why it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub seed: u64,
    pub tokens: u32,
    pub finish: Finish,
}

impl Answer {
    /// Choice `choice` of a prompt with `seed`: as long as the model
    /// would go on its own (at least `min_tokens`; forever with
    /// `ignore_eos`), cut at `limit` (`max_tokens`, or what is left of
    /// the context).
    pub fn plan(seed: u64, choice: u32, limit: u32, min_tokens: u32, ignore_eos: bool) -> Answer {
        let seed = mix(seed ^ u64::from(choice).wrapping_mul(0x1000_0000_01b3));
        let span = u64::from(MAX_NATURAL_TOKENS - MIN_NATURAL_TOKENS + 1);
        let natural = if ignore_eos {
            u32::MAX
        } else {
            (MIN_NATURAL_TOKENS + (seed % span) as u32).max(min_tokens)
        };
        if natural <= limit {
            Answer {
                seed,
                tokens: natural,
                finish: Finish::Stop,
            }
        } else {
            Answer {
                seed,
                tokens: limit,
                finish: Finish::Length,
            }
        }
    }

    /// The text of output token `index`.
    pub fn token(&self, index: u32) -> String {
        if self.finish == Finish::Stop && index + 1 == self.tokens {
            return ".".to_owned();
        }
        let word = WORDS[(mix(self.seed ^ u64::from(index)) % WORDS.len() as u64) as usize];
        if index == 0 {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        } else {
            format!(" {word}")
        }
    }

    /// The whole text.
    pub fn text(&self) -> String {
        (0..self.tokens).map(|i| self.token(i)).collect()
    }
}

/// A deterministic unit vector for an input with `seed`.
pub fn embedding(seed: u64) -> Vec<f32> {
    let raw: Vec<f64> = (0..EMBEDDING_DIMENSIONS as u64)
        .map(|i| (mix(seed ^ i.wrapping_mul(0x9e37_79b9)) >> 11) as f64 / (1u64 << 53) as f64 - 0.5)
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    raw.iter().map(|x| (x / norm) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_follow_the_prompts_length() {
        assert_eq!(text_tokens(""), 0);
        assert_eq!(text_tokens("abcd"), 1);
        assert_eq!(text_tokens("abcde"), 2);
        assert_eq!(prompt_tokens(""), 1, "at least the BOS token");
        assert_eq!(prompt_tokens(&"x".repeat(400)), 101);
        // One message of 12 bytes: BOS + (4 + 3) + 4.
        assert_eq!(chat_tokens([("user", "Hello there!")]), 12);
        let two = chat_tokens([("system", "Be brief."), ("user", "Hello there!")]);
        assert_eq!(two, 12 + 4 + 3);
        // Longer prompts, more tokens: about one per four bytes.
        let long = chat_tokens([("user", &*"word ".repeat(1000))]);
        assert_eq!(long, 1 + 4 + 1250 + 4);
    }

    #[test]
    fn answers_are_deterministic_and_honour_their_limits() {
        let seed = chat_seed([("user", "Hello")]);
        assert_eq!(seed, chat_seed([("user", "Hello")]));
        assert_ne!(seed, chat_seed([("user", "Hello!")]));
        assert_ne!(seed, chat_seed([("system", "Hello")]), "roles count");
        let free = Answer::plan(seed, 0, u32::MAX, 0, false);
        assert_eq!(free.finish, Finish::Stop);
        assert!((MIN_NATURAL_TOKENS..=MAX_NATURAL_TOKENS).contains(&free.tokens));
        assert_eq!(free, Answer::plan(seed, 0, u32::MAX, 0, false));
        assert!(free.text().ends_with('.'));
        assert!(free.text().starts_with(char::is_uppercase));
        let text: String = (0..free.tokens).map(|i| free.token(i)).collect();
        assert_eq!(text, free.text());

        let cut = Answer::plan(seed, 0, 5, 0, false);
        assert_eq!((cut.tokens, cut.finish), (5, Finish::Length));
        assert!(!cut.text().ends_with('.'));
        assert!(free.text().starts_with(&cut.text()), "the same words, cut");
        let long = Answer::plan(seed, 0, 500, 200, false);
        assert_eq!((long.tokens, long.finish), (200, Finish::Stop));
        let forever = Answer::plan(seed, 0, 300, 0, true);
        assert_eq!((forever.tokens, forever.finish), (300, Finish::Length));
        assert_ne!(
            Answer::plan(seed, 1, u32::MAX, 0, false).text(),
            free.text(),
            "another choice, another answer"
        );
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embedding(text_seed("a cat"));
        assert_eq!(a.len(), EMBEDDING_DIMENSIONS);
        let norm: f64 = a.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        assert_eq!(a, embedding(text_seed("a cat")));
        assert_ne!(a, embedding(text_seed("a dog")));
    }
}
