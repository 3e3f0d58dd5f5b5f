//! Chance: a fast per-thread random draw for decisions by share (a
//! fault's percentage), seeded once per thread from the crypto provider's
//! random source. No lock and no system call per draw.
//!
//! It must never be used for anything secret (ids, keys, tokens): it is
//! a statistical generator, not a cryptographic one.

use std::cell::Cell;

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

/// A seed from the crypto provider; should that ever fail, the clock and
/// the thread's stack address (a draw is a statistical choice, so a weak
/// seed only makes it predictable, never unsafe).
fn seed() -> u64 {
    let seeded = crate::crypto::random_bytes::<8>().map(u64::from_le_bytes);
    let s = seeded.unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let local = 0u8;
        #[allow(clippy::cast_possible_truncation)] // any bits will do
        let mixed = (nanos as u64) ^ (std::ptr::from_ref(&local) as usize as u64);
        mixed
    });
    // xorshift must not start at zero.
    s | 1
}

/// The next 64 bits of this thread's xorshift64* sequence.
fn next() -> u64 {
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// A draw uniform in `0..1_000_000` (the bias of the modulo is below
/// one part in 10^13).
pub fn per_million() -> u32 {
    // Below 1_000_000: fits.
    #[allow(clippy::cast_possible_truncation)]
    let d = (next() % 1_000_000) as u32;
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_spread_over_the_range() {
        let n = 200_000;
        let mut below_quarter = 0u32;
        for _ in 0..n {
            let d = per_million();
            assert!(d < 1_000_000);
            if d < 250_000 {
                below_quarter += 1;
            }
        }
        // 25% of 200,000 is 50,000, sd ~194: six sd either side.
        assert!(
            (48_800..=51_200).contains(&below_quarter),
            "{below_quarter}"
        );
    }
}
