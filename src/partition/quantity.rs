//! Quantity skew: drawing client sizes, and filling clients of given sizes
//! with IID, Dirichlet-label or `#C = k` data.
//!
//! Invariants: [`sizes`] returns `N` sizes summing exactly to `n`, each at
//! least `min_size` (the caller has checked `N · min_size ≤ n`). The fill
//! functions assign every row exactly once: client `i` receives exactly
//! `sizes[i]` rows.

use super::label::{class_pools, cut};
use super::sampling::{LogGamma, apportion, enforce_min, equal_split};
use super::{ClientIndices, PartitionError, QuantitySkew};
use crate::rng::Rng;
use rand::RngExt;
use rand::seq::SliceRandom;
use rand_distr::LogNormal;

/// Client sizes for `n` rows over `clients` clients.
///
/// * `Dirichlet { beta }` (NIID-Bench's `iid-diff-quantity`): `q ~ Dir(β·1_N)`,
///   sizes `q · n`.
/// * `LogNormal { sigma }` (FedLab's `unbalance_sgm`): sizes proportional to
///   independent `LogNormal(0, σ)` draws.
///
/// Sizes are rounded by largest remainder so they sum to `n`; clients below
/// `min_size` are then raised to it, taking the shortfall from the largest
/// clients (NIID-Bench redraws instead; this never loops).
pub(crate) fn sizes(
    q: &QuantitySkew,
    n: usize,
    clients: usize,
    min_size: usize,
    rng: &mut Rng,
) -> Result<Vec<usize>, PartitionError> {
    let mut w = vec![0.0; clients];
    match *q {
        QuantitySkew::Dirichlet { beta } => {
            let lg = LogGamma::new(beta).ok_or(PartitionError::InvalidParameter {
                name: "beta",
                value: beta,
            })?;
            lg.dirichlet(rng, &mut w);
        }
        QuantitySkew::LogNormal { sigma } => {
            let bad = PartitionError::InvalidParameter {
                name: "sigma",
                value: sigma,
            };
            if !(sigma.is_finite() && sigma > 0.0) {
                return Err(bad);
            }
            let ln = LogNormal::new(0.0, sigma).map_err(|_| bad)?;
            for x in w.iter_mut() {
                *x = rng.sample(ln);
            }
        }
    }
    let mut s = apportion(&w, n);
    enforce_min(&mut s, min_size);
    Ok(s)
}

/// IID with quantity skew: shuffle all rows and cut at `sizes`.
pub(crate) fn fill_iid(n: usize, sizes: &[usize], rng: &mut Rng) -> ClientIndices {
    let mut idx: Vec<u32> = (0..n as u32).collect();
    idx.shuffle(rng);
    cut(&idx, sizes)
}

/// Fills clients of the given sizes from per-class pools, in two phases.
///
/// 1. Each client `i` asks for `wants[i][c]` rows of class `c` (its wants sum
///    to `sizes[i]`). A class whose demand fits its supply grants every
///    request; an oversubscribed class is shared in proportion to the
///    requests (largest remainder), so no client is favoured by its id or by
///    a processing order.
/// 2. Clients, in a random order, make up their shortfall from the leftover
///    rows, trying classes in their own `fallback[i]` order.
///
/// Rows within a pool are shuffled, so which rows a client gets is random.
/// Since the sizes sum to the number of rows, every row is assigned.
fn fill_two_phase(
    labels: &[u32],
    num_classes: usize,
    sizes: &[usize],
    wants: &[Vec<usize>],
    fallback: &[Vec<usize>],
    rng: &mut Rng,
) -> ClientIndices {
    let clients = sizes.len();
    let mut pools = class_pools(labels, num_classes);
    for p in &mut pools {
        p.shuffle(rng);
    }
    let mut parts: ClientIndices = sizes.iter().map(|&s| Vec::with_capacity(s)).collect();
    let mut requests = vec![0.0; clients];
    for (c, pool) in pools.iter_mut().enumerate() {
        let demand: usize = wants.iter().map(|w| w[c]).sum();
        let grants: Vec<usize> = if demand <= pool.len() {
            wants.iter().map(|w| w[c]).collect()
        } else {
            for (r, w) in requests.iter_mut().zip(wants) {
                *r = w[c] as f64;
            }
            apportion(&requests, pool.len())
        };
        for (part, g) in parts.iter_mut().zip(grants) {
            part.extend(pool.drain(pool.len() - g..));
        }
    }
    let mut order: Vec<usize> = (0..clients).collect();
    order.shuffle(rng);
    for i in order {
        for &c in &fallback[i] {
            let short = sizes[i] - parts[i].len();
            if short == 0 {
                break;
            }
            let pool = &mut pools[c];
            let got = short.min(pool.len());
            parts[i].extend(pool.drain(pool.len() - got..));
        }
        debug_assert_eq!(parts[i].len(), sizes[i], "demand never exceeds supply");
    }
    parts
}

/// Dirichlet label skew with given sizes, in the client-side formulation of
/// Hsu, Qi & Brown (2019): client `i` draws `q_i ~ Dir(α·1_C)` and asks for
/// `n_i · q_i[c]` rows of class `c` (largest-remainder rounding, so exactly
/// `n_i` in total), drawn without replacement. Oversubscribed classes are
/// shared in proportion to the requests; the remaining shortfall comes from
/// leftover rows of the client's classes in decreasing `q_i` order (ties by
/// class id). Since the sizes sum to `n`, every row is used.
pub(crate) fn fill_dirichlet(
    labels: &[u32],
    num_classes: usize,
    sizes: &[usize],
    alpha: f64,
    rng: &mut Rng,
) -> Result<ClientIndices, PartitionError> {
    let lg = LogGamma::new(alpha).ok_or(PartitionError::InvalidParameter {
        name: "alpha",
        value: alpha,
    })?;
    let mut q = vec![0.0; num_classes];
    let mut wants = Vec::with_capacity(sizes.len());
    let mut fallback = Vec::with_capacity(sizes.len());
    for &n_i in sizes {
        lg.dirichlet(rng, &mut q);
        wants.push(apportion(&q, n_i));
        let mut order: Vec<usize> = (0..num_classes).collect();
        order.sort_by(|&a, &b| q[b].total_cmp(&q[a]).then(a.cmp(&b)));
        fallback.push(order);
    }
    Ok(fill_two_phase(
        labels,
        num_classes,
        sizes,
        &wants,
        &fallback,
        rng,
    ))
}

/// `#C = k` with given sizes: client `i` (owning `owned[i]`, see
/// [`super::label::assign_classes`]) asks for `n_i` rows split as equally as
/// possible among its `k` classes (the first classes in its list get the
/// extra rows). Oversubscribed classes are shared in proportion to the
/// requests; the remaining shortfall comes first from its own classes, then
/// from the other classes in cyclic order starting after `i mod C`. Because
/// the sizes sum to `n`, rows of unowned or undersubscribed classes end up
/// with clients that fell short, so some clients hold more than `k` classes.
pub(crate) fn fill_classes(
    labels: &[u32],
    num_classes: usize,
    sizes: &[usize],
    owned: &[Vec<usize>],
    rng: &mut Rng,
) -> ClientIndices {
    let mut wants = Vec::with_capacity(sizes.len());
    let mut fallback = Vec::with_capacity(sizes.len());
    for (i, (&n_i, mine)) in sizes.iter().zip(owned).enumerate() {
        let mut w = vec![0; num_classes];
        for (&c, share) in mine.iter().zip(equal_split(n_i, mine.len())) {
            w[c] = share;
        }
        wants.push(w);
        let start = i % num_classes;
        let mut order = mine.clone();
        order.extend(
            (1..num_classes)
                .map(|d| (start + d) % num_classes)
                .filter(|c| !mine.contains(c)),
        );
        fallback.push(order);
    }
    fill_two_phase(labels, num_classes, sizes, &wants, &fallback, rng)
}
