//! Label-skew schemes with data-determined client sizes: IID, NIID-Bench's
//! Dirichlet label skew, `#C = k` classes per client, McMahan's shards and
//! the natural split.
//!
//! Every function assumes validated input (see [`super::partition`]) and
//! returns disjoint index lists; sorting and the `min_size` post-check are done
//! by the caller.

use super::sampling::{LogGamma, equal_split, normalise_log, pick_one};
use super::{ClientIndices, PartitionError};
use crate::rng::Rng;
use rand::seq::SliceRandom;
use std::ops::Range;

/// Row indices of each class, in ascending order.
pub(crate) fn class_pools(labels: &[u32], num_classes: usize) -> Vec<Vec<u32>> {
    let mut pools = vec![Vec::new(); num_classes];
    for (i, &y) in labels.iter().enumerate() {
        pools[y as usize].push(i as u32);
    }
    pools
}

/// Cuts `idx` into consecutive pieces of the given sizes (which sum to at
/// most `idx.len()`).
pub(crate) fn cut(idx: &[u32], sizes: &[usize]) -> ClientIndices {
    let mut start = 0;
    sizes
        .iter()
        .map(|&s| {
            let piece = idx[start..start + s].to_vec();
            start += s;
            piece
        })
        .collect()
}

/// IID: shuffle all rows and cut them into `clients` parts whose sizes differ
/// by at most one.
pub(crate) fn iid(n: usize, clients: usize, rng: &mut Rng) -> ClientIndices {
    let mut idx: Vec<u32> = (0..n as u32).collect();
    idx.shuffle(rng);
    cut(&idx, &equal_split(n, clients))
}

/// Dirichlet label skew exactly as NIID-Bench's `noniid-labeldir`.
///
/// For each class `c` (in order): shuffle its rows, draw `p ~ Dir(α·1_N)`,
/// zero the share of every client already holding ≥ `n/N` rows, renormalise,
/// and cut the rows at `floor(cumsum(p) · n_c)`. The whole draw is repeated
/// until every client holds at least `min_size` rows, at most
/// `1 + max_redraws` times.
pub(crate) fn dirichlet(
    labels: &[u32],
    num_classes: usize,
    clients: usize,
    alpha: f64,
    min_size: usize,
    max_redraws: usize,
    rng: &mut Rng,
) -> Result<ClientIndices, PartitionError> {
    let n = labels.len();
    let lg = LogGamma::new(alpha).ok_or(PartitionError::InvalidParameter {
        name: "alpha",
        value: alpha,
    })?;
    let pools = class_pools(labels, num_classes);
    let cap = n as f64 / clients as f64;
    let mut w = vec![0.0; clients];
    let mut best_smallest = 0;
    for _attempt in 0..=max_redraws {
        let mut parts: ClientIndices = vec![Vec::new(); clients];
        for pool in &pools {
            if pool.is_empty() {
                continue;
            }
            let mut idx = pool.clone();
            idx.shuffle(rng);
            for (wj, part) in w.iter_mut().zip(&parts) {
                let draw = lg.sample(rng);
                *wj = if (part.len() as f64) < cap {
                    draw
                } else {
                    f64::NEG_INFINITY
                };
            }
            if !normalise_log(&mut w) {
                // Every eligible draw underflowed (subnormal alpha only).
                pick_one(rng, &mut w, |j| (parts[j].len() as f64) < cap);
            }
            let nk = idx.len();
            let (mut cum, mut start) = (0.0, 0);
            for (j, (wj, part)) in w.iter().zip(parts.iter_mut()).enumerate() {
                cum += wj;
                let end = if j + 1 == clients {
                    nk
                } else {
                    ((cum * nk as f64) as usize).clamp(start, nk)
                };
                part.extend_from_slice(&idx[start..end]);
                start = end;
            }
        }
        let smallest = parts.iter().map(Vec::len).min().unwrap_or(0);
        if smallest >= min_size {
            return Ok(parts);
        }
        best_smallest = best_smallest.max(smallest);
    }
    Err(PartitionError::DirichletRedrawsExhausted {
        alpha,
        clients,
        min_size,
        attempts: max_redraws.saturating_add(1),
        smallest: best_smallest,
    })
}

/// The classes of each client under `#C = k`: client `i` holds class
/// `i mod C` first, then `k − 1` other distinct classes drawn uniformly.
pub(crate) fn assign_classes(
    clients: usize,
    num_classes: usize,
    k: usize,
    rng: &mut Rng,
) -> Vec<Vec<usize>> {
    (0..clients)
        .map(|i| {
            let own = i % num_classes;
            let mut others: Vec<usize> = (0..num_classes).filter(|&c| c != own).collect();
            let (picked, _) = others.partial_shuffle(rng, k - 1);
            let mut classes = Vec::with_capacity(k);
            classes.push(own);
            classes.extend_from_slice(picked);
            classes
        })
        .collect()
}

/// `#C = k` (NIID-Bench's `noniid-#label k`): each class's shuffled rows are
/// split as equally as possible among the clients that own it (lower client
/// ids get the extra row). Classes owned by nobody are left unused.
pub(crate) fn classes(
    labels: &[u32],
    num_classes: usize,
    clients: usize,
    k: usize,
    rng: &mut Rng,
) -> ClientIndices {
    let owned = assign_classes(clients, num_classes, k, rng);
    let mut owners = vec![Vec::new(); num_classes];
    for (i, cs) in owned.iter().enumerate() {
        for &c in cs {
            owners[c].push(i);
        }
    }
    let mut parts: ClientIndices = vec![Vec::new(); clients];
    for (mut pool, owners) in class_pools(labels, num_classes).into_iter().zip(owners) {
        if owners.is_empty() {
            continue;
        }
        pool.shuffle(rng);
        let pieces = cut(&pool, &equal_split(pool.len(), owners.len()));
        for (owner, piece) in owners.into_iter().zip(pieces) {
            parts[owner].extend(piece);
        }
    }
    parts
}

/// Shards (McMahan et al. 2017): shuffle, keep a random `clients · s · m`
/// rows with `m = ⌊n / (clients · s)⌋` (the remainder is dropped uniformly at
/// random, not from one class), stable-sort them by label (ties stay in
/// random order), cut into `clients · s` shards of `m` rows and give each
/// client `s` random shards.
pub(crate) fn shards(labels: &[u32], clients: usize, s: usize, rng: &mut Rng) -> ClientIndices {
    let n = labels.len();
    let num_shards = clients * s;
    let m = n / num_shards;
    let mut idx: Vec<u32> = (0..n as u32).collect();
    idx.shuffle(rng);
    idx.truncate(num_shards * m);
    idx.sort_by_key(|&i| labels[i as usize]);
    let mut order: Vec<usize> = (0..num_shards).collect();
    order.shuffle(rng);
    order
        .chunks_exact(s)
        .map(|mine| {
            mine.iter()
                .flat_map(|&sh| idx[sh * m..(sh + 1) * m].iter().copied())
                .collect()
        })
        .collect()
}

/// Natural split: client `i` holds exactly the rows of `groups[i]`.
pub(crate) fn natural(groups: &[Range<usize>]) -> ClientIndices {
    groups
        .iter()
        .map(|g| (g.start as u32..g.end as u32).collect())
        .collect()
}
