//! Deterministic identifiers in AWS's shapes (`[a-z0-9]`, 10 characters for APIs and root
//! resources, 6 for everything else), derived from stable inputs so that ids survive restarts.
//!
//! The hash is FNV-1a (64 bit) followed by a SplitMix64 finaliser: simple, specified here, and
//! therefore stable across Rust releases (unlike `std`'s `DefaultHasher`).

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn hash64(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    // SplitMix64 finaliser for better avalanche in the low digits.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// `len` base-36 characters derived from `parts`.
pub fn id_from(parts: &[&str], len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut h = hash64(parts);
    let mut round = 0u32;
    while out.len() < len {
        if h == 0 {
            round += 1;
            let r = round.to_string();
            let mut more: Vec<&str> = parts.to_vec();
            more.push(&r);
            h = hash64(&more);
        }
        out.push(ALPHABET[(h % 36) as usize] as char);
        h /= 36;
        // 64 bits give 12 full base-36 digits; refill after that.
        if out.len().is_multiple_of(12) {
            h = 0;
        }
    }
    out
}

/// RestApi id: 10 characters from the API name.
pub fn rest_api_id(name: &str) -> String {
    id_from(&["restapi", name], 10)
}

/// True for a valid 10-character API id (`[a-z0-9]{10}`).
pub fn is_valid_api_id(id: &str) -> bool {
    id.len() == 10
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_shaped() {
        let a = rest_api_id("PetStore");
        assert_eq!(a, rest_api_id("PetStore"));
        assert_ne!(a, rest_api_id("PetStore2"));
        assert!(is_valid_api_id(&a));
        let r = id_from(&["x", "/pets"], 6);
        assert_eq!(r.len(), 6);
        assert!(r
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_eq!(id_from(&["x"], 30).len(), 30);
    }
}
