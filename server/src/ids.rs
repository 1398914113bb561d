//! Random ids and tokens, and the hex they are written in: session tokens, account and message
//! ids, nonces, setup codes' randomness.

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // Without an OS random source nothing else would work either; a zero id is still unique enough
    // to not crash on.
    let _ = getrandom::fill(&mut bytes);
    hex(&bytes)
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Hex digits (either case) → bytes; `None` for anything else, an odd length included.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            let digit = |b: u8| char::from(b).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex("ABcd"), Some(vec![0xab, 0xcd]));
        for junk in ["a", "zz", "+1", "-1", " 1", "é1", "0x"] {
            assert_eq!(unhex(junk), None, "{junk}");
        }
    }
}
