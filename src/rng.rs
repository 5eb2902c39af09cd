//! Named random streams.
//!
//! Every random draw in fedsim comes from a generator seeded by
//! `(seed, purpose, a, b)` — typically `(seed, purpose, round, client)` — and
//! never from a shared generator whose consumption order could depend on
//! thread scheduling. This is what makes a run a pure function of its
//! scenario and seed, whatever the thread count.

use rand::SeedableRng;

/// The generator used everywhere: small, fast, and portable across platforms.
pub type Rng = rand::rngs::Xoshiro256PlusPlus;

/// What a random stream is used for. Distinct purposes give independent streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u64)]
pub enum Purpose {
    /// Generating synthetic datasets.
    Data = 1,
    /// Splitting a dataset into clients.
    Partition = 2,
    /// Initial model parameters.
    Init = 3,
    /// Drawing each client's device profile (once per client).
    Devices = 4,
    /// Client selection in a round.
    Select = 5,
    /// Dropout decisions and failure points.
    Dropout = 6,
    /// Per-round compute jitter.
    Jitter = 7,
    /// Local training (minibatch order).
    Train = 8,
    /// Evaluation subsets.
    Eval = 9,
    /// Anything a strategy draws.
    Strategy = 10,
    /// Drawing the set of Byzantine (malicious) clients (once per run).
    ByzantineSet = 11,
    /// Randomness of a malicious client's attack in a round.
    Attack = 12,
    /// Drawing each data-parallel worker's device profile (once per worker).
    Workers = 13,
    /// Minibatch order of the data-parallel baselines over the pooled
    /// training set (one stream per pass).
    Pooled = 14,
    /// A client's availability: its on/off sessions per epoch, its time
    /// zone, its online draw per hour slot.
    Availability = 15,
    /// Picking the client of an asynchronous dispatch.
    Dispatch = 16,
    /// Per-step compute jitter of a data-parallel worker.
    WorkerJitter = 17,
    /// Whether a data-parallel worker's gradient is lost in a step.
    WorkerFailure = 18,
}

/// SplitMix64 finaliser: a bijective mixer with good avalanche behaviour.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 256-bit seed of stream `(seed, purpose, a, b)`.
fn stream_seed(seed: u64, purpose: Purpose, a: u64, b: u64) -> [u8; 32] {
    let mut h = mix64(seed);
    h = mix64(h ^ (purpose as u64));
    h = mix64(h ^ a);
    h = mix64(h ^ b.rotate_left(17));
    let mut out = [0u8; 32];
    let mut s = h;
    for chunk in out.chunks_exact_mut(8) {
        s = mix64(s);
        chunk.copy_from_slice(&s.to_le_bytes());
    }
    out
}

/// A generator for the stream `(seed, purpose, a, b)`.
///
/// `a` and `b` are usually the round number and the client id; pass 0 where a
/// coordinate does not apply.
pub fn stream(seed: u64, purpose: Purpose, a: u64, b: u64) -> Rng {
    Rng::from_seed(stream_seed(seed, purpose, a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let draw = |r: &mut Rng| (0..4).map(|_| r.random::<u64>()).collect::<Vec<_>>();
        let a = draw(&mut stream(1, Purpose::Train, 3, 7));
        let b = draw(&mut stream(1, Purpose::Train, 3, 7));
        assert_eq!(a, b);
        for other in [
            stream(2, Purpose::Train, 3, 7),
            stream(1, Purpose::Select, 3, 7),
            stream(1, Purpose::Train, 4, 7),
            stream(1, Purpose::Train, 3, 8),
            stream(1, Purpose::Train, 7, 3),
        ] {
            let mut o = other;
            assert_ne!(a, draw(&mut o));
        }
    }
}
