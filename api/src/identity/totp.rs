//! Time-based one-time passwords (RFC 6238, as authenticator apps use
//! them): HMAC-SHA1 over 30-second steps, six digits, a 160-bit secret
//! shown once as base32. A code is accepted for the step before, the
//! current one and the one after (clock drift), and never twice: the
//! caller records the step a code was used for and passes it back.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Seconds per step.
pub const STEP_SECONDS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Bytes of a secret (RFC 4226 recommends 160 bits).
pub const SECRET_BYTES: usize = 20;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A fresh random secret.
pub fn generate() -> Result<[u8; SECRET_BYTES], getrandom::Error> {
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut secret)?;
    Ok(secret)
}

/// RFC 4648 base32 without padding: what authenticator apps take.
pub fn to_base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Base32 back to bytes; spaces, padding and lower case are accepted.
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.bytes().filter(|c| !matches!(c, b' ' | b'=')) {
        let value = BASE32.iter().position(|&b| b == c.to_ascii_uppercase())?;
        buffer = (buffer << 5) | value as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The HOTP value of `counter` with `digits` digits (RFC 4226 §5.3).
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[19] & 0x0f);
    let value = u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]);
    value % 10u32.pow(digits)
}

/// The step that `unix_seconds` falls in.
pub fn step_of(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// The six-digit code for `unix_seconds`, zero-padded.
pub fn code_at(secret: &[u8], unix_seconds: i64) -> String {
    let step = u64::try_from(step_of(unix_seconds)).unwrap_or(0);
    format!("{:06}", hotp(secret, step, DIGITS))
}

/// The step `code` is valid for at `unix_seconds` (the previous, current
/// or next step), if any and if it is later than `last_used`, the step of
/// the last code accepted: a code works once.
pub fn verify(secret: &[u8], code: &str, unix_seconds: i64, last_used: Option<i64>) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(unix_seconds);
    (now - 1..=now + 1)
        .filter(|step| last_used.is_none_or(|last| *step > last))
        .find(|&step| {
            let Ok(counter) = u64::try_from(step) else {
                return false;
            };
            let expected = format!("{:06}", hotp(secret, counter, DIGITS));
            // Same length, so comparing every byte leaks nothing useful.
            expected
                .bytes()
                .zip(code.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
        })
}

/// The `otpauth://` URI an authenticator app scans (as a QR code) or
/// takes pasted.
pub fn otpauth_uri(issuer: &str, account: &str, secret_base32: &str) -> String {
    let escape = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret_base32}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        escape(issuer),
        escape(account),
        escape(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1, eight digits.
    #[test]
    fn matches_the_rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59, 94_287_082),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            let step = u64::try_from(step_of(time)).unwrap();
            assert_eq!(hotp(secret, step, 8), code, "T = {time}");
        }
        assert_eq!(code_at(secret, 59), "287082");
    }

    #[test]
    fn codes_work_within_a_step_of_now_and_only_once() {
        let secret = b"12345678901234567890";
        let now = 1_234_567_890;
        let current = code_at(secret, now);
        let before = code_at(secret, now - STEP_SECONDS);
        let after = code_at(secret, now + STEP_SECONDS);
        let far = code_at(secret, now + 3 * STEP_SECONDS);
        let step = step_of(now);
        assert_eq!(verify(secret, &current, now, None), Some(step));
        assert_eq!(verify(secret, &before, now, None), Some(step - 1));
        assert_eq!(verify(secret, &after, now, None), Some(step + 1));
        assert_eq!(verify(secret, &far, now, None), None);
        assert_eq!(verify(secret, &current, now, Some(step)), None, "replayed");
        assert_eq!(verify(b"another secret......", &current, now, None), None);
        for bad in ["", "12345", "1234567", "12a456"] {
            assert_eq!(verify(secret, bad, now, None), None, "{bad:?}");
        }
    }

    #[test]
    fn base32_round_trips_and_the_uri_is_escaped() {
        assert_eq!(to_base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(from_base32("mzxw 6ytb oi======").unwrap(), b"foobar");
        assert!(from_base32("not base32!").is_none());
        let secret = generate().unwrap();
        assert_eq!(from_base32(&to_base32(&secret)).unwrap(), secret);
        let uri = otpauth_uri("modelfleet", "ann@example.com", "MZXW6YTBOI");
        assert_eq!(
            uri,
            "otpauth://totp/modelfleet:ann%40example.com?secret=MZXW6YTBOI&issuer=modelfleet\
             &algorithm=SHA1&digits=6&period=30"
        );
    }
}
