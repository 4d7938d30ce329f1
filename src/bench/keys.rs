//! Key choice for the YCSB-style workloads: uniform, scrambled Zipfian (a
//! few hot keys spread over the key space) and latest (recent inserts are
//! hot).

use rand::RngExt;

/// How keys are chosen among the loaded records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Distribution {
    /// Every record equally likely.
    Uniform,
    /// YCSB's scrambled Zipfian (constant 0.99): a few hot records, spread
    /// over the key space by a hash.
    Zipfian,
}

/// YCSB's Zipfian constant.
const THETA: f64 = 0.99;

/// Draws ranks `0..n` with rank 0 the most popular (Gray et al., "Quickly
/// generating billion-record synthetic databases", as YCSB does).
#[derive(Clone, Debug)]
pub struct Zipfian {
    n: u64,
    zetan: f64,
    alpha: f64,
    eta: f64,
    half_pow_theta: f64,
}

impl Zipfian {
    /// Ranks `0..n`; `n` must be at least 1.
    pub fn new(n: u64) -> Zipfian {
        let n = n.max(1);
        let zeta = |count: u64| (1..=count).map(|i| 1.0 / (i as f64).powf(THETA)).sum::<f64>();
        let zetan = zeta(n);
        let zeta2 = zeta(2.min(n));
        let alpha = 1.0 / (1.0 - THETA);
        let eta = if n < 2 {
            0.0
        } else {
            (1.0 - (2.0 / n as f64).powf(1.0 - THETA)) / (1.0 - zeta2 / zetan)
        };
        Zipfian {
            n,
            zetan,
            alpha,
            eta,
            half_pow_theta: 0.5f64.powf(THETA),
        }
    }

    /// A rank in `0..n`.
    pub fn next(&self, rng: &mut impl rand::Rng) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + self.half_pow_theta {
            return 1.min(self.n - 1);
        }
        let rank = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.n - 1)
    }
}

/// Picks record numbers in `0..records`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum KeyChooser {
    /// Uniform over `0..records`.
    Uniform {
        /// How many records.
        records: u64,
    },
    /// Zipfian ranks scattered over `0..records` by a hash, so hot records
    /// are not neighbours.
    Zipfian(Zipfian),
}

impl KeyChooser {
    /// A chooser over `0..records`.
    pub fn new(distribution: Distribution, records: u64) -> KeyChooser {
        match distribution {
            Distribution::Uniform => KeyChooser::Uniform {
                records: records.max(1),
            },
            Distribution::Zipfian => KeyChooser::Zipfian(Zipfian::new(records)),
        }
    }

    /// A record number.
    pub fn next(&self, rng: &mut impl rand::Rng) -> u64 {
        match self {
            KeyChooser::Uniform { records } => rng.random_range(0..*records),
            KeyChooser::Zipfian(zipf) => scramble(zipf.next(rng)) % zipf.n,
        }
    }

    /// A record number skewed towards `latest` (the newest record):
    /// `latest - rank`, for workload D.
    pub fn next_latest(&self, latest: u64, rng: &mut impl rand::Rng) -> u64 {
        let rank = match self {
            KeyChooser::Uniform { records } => rng.random_range(0..*records),
            KeyChooser::Zipfian(zipf) => zipf.next(rng),
        };
        latest.saturating_sub(rank)
    }
}

/// FNV-1a over the rank's bytes, as YCSB scrambles its Zipfian ranks.
fn scramble(rank: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in rank.to_le_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The key of record `n`: `user` and the number zero-padded, so keys sort
/// by record and have the same length.
pub fn record_key(n: u64) -> String {
    format!("user{n:012}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn counts(chooser: &KeyChooser, records: usize, draws: usize) -> Vec<usize> {
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = vec![0; records];
        for _ in 0..draws {
            counts[chooser.next(&mut rng) as usize] += 1;
        }
        counts
    }

    #[test]
    fn zipfian_ranks_are_in_range_and_skewed() {
        let zipf = Zipfian::new(1000);
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = vec![0usize; 1000];
        for _ in 0..100_000 {
            counts[zipf.next(&mut rng) as usize] += 1;
        }
        // With theta 0.99 over 1000 ranks, rank 0 takes about 13%, and the
        // top 10 ranks about 39%, of the draws.
        assert!((11_000..15_000).contains(&counts[0]), "rank 0: {}", counts[0]);
        let top10: usize = counts[..10].iter().sum();
        assert!((35_000..43_000).contains(&top10), "top 10: {top10}");
        assert!(counts[0] > counts[1] && counts[1] > counts[10]);
    }

    #[test]
    fn scrambled_zipfian_spreads_hot_keys_but_stays_skewed() {
        let mut counts = counts(&KeyChooser::new(Distribution::Zipfian, 1000), 1000, 100_000);
        // The hottest record is not record 0: the hash moved it.
        let hottest = (0..1000).max_by_key(|&i| counts[i]).unwrap();
        assert_ne!(hottest, 0);
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top10: usize = counts[..10].iter().sum();
        assert!(top10 > 30_000, "top 10 of scrambled: {top10}");
    }

    #[test]
    fn uniform_covers_every_record_evenly() {
        let counts = counts(&KeyChooser::new(Distribution::Uniform, 100), 100, 100_000);
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
    }

    #[test]
    fn latest_prefers_the_newest_records() {
        let chooser = KeyChooser::new(Distribution::Zipfian, 1000);
        let mut rng = StdRng::seed_from_u64(3);
        let draws: Vec<u64> = (0..10_000).map(|_| chooser.next_latest(5000, &mut rng)).collect();
        assert!(draws.iter().all(|&d| d <= 5000 && d > 3999));
        let newest = draws.iter().filter(|&&d| d == 5000).count();
        assert!(newest > 1000, "newest drawn {newest} times");
    }

    #[test]
    fn keys_sort_by_record_number() {
        assert_eq!(record_key(42), "user000000000042");
        assert!(record_key(9) < record_key(10));
    }
}
