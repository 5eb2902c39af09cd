//! SCAFFOLD: stochastic controlled averaging.

use std::collections::HashMap;

use rayon::prelude::*;

use super::{ClientUpdate, PARAM_CHUNK, RoundInfo, Strategy};

/// SCAFFOLD with option II control variates (Karimireddy, Kale, Mohri,
/// Reddi, Stich, Suresh, "SCAFFOLD: Stochastic Controlled Averaging for
/// Federated Learning", ICML 2020, Algorithm 1).
///
/// * Local step (client `i`, from `y = x`): `y ← y − η_l (g(y) − c_i + c)`.
///   The correction `c − c_i` reaches local training through
///   [`Strategy::client_correction`] and
///   [`LocalExtras::correction`](crate::client::LocalExtras).
/// * After `K` local steps: `c_i⁺ = c_i − c + (x − y_i) / (K η_l)`.
/// * Server: `x ← x + η_g · (1/|S|) Σ_{i∈S} Δ_i` (unweighted mean,
///   `Δ_i = y_i − x`) and `c ← c + (1/N) Σ_{i∈S} (c_i⁺ − c_i)` with `N`
///   the population size.
///
/// Details:
/// * `K` is the number of steps the client actually took
///   ([`ClientUpdate::steps`]), so stragglers' partial work (when
///   `partial_work` is on) gets a consistent `c_i⁺`. A client that took no
///   step keeps its `c_i` and contributes `Δ_i` (zero) to the mean.
/// * `c_i⁺` reads `(x − y_i)/(K η_l)` as the mean gradient along the local
///   path, which is exact for plain SGD. With client momentum or weight
///   decay it is the paper's approximation (momentum amplifies the path, so
///   the estimate is scaled by up to `1/(1 − momentum)`); the correction is
///   added to the gradient before momentum.
/// * Client control variates are stored only for clients that have taken
///   part (absent = zeros), as f32 vectors of the model's length: memory
///   grows with the clients seen, not with the population.
/// * Sums are accumulated in f64 in client-id order.
#[derive(Debug, Clone)]
pub struct Scaffold {
    /// Global (server) learning rate η_g > 0 (scenario default 1.0, the
    /// paper's experiments use 1).
    pub server_lr: f64,
    /// Local learning rate η_l of the clients' SGD (`client.lr`).
    pub local_lr: f64,
    /// Accept stragglers' partial work (scenario default false).
    pub partial_work: bool,
    /// Server control variate c (empty until the first aggregation).
    c: Vec<f32>,
    /// Client control variates c_i of clients that have taken part.
    client_c: HashMap<usize, Vec<f32>>,
}

impl Scaffold {
    /// SCAFFOLD with global learning rate `server_lr` for clients training
    /// with local learning rate `local_lr`.
    pub fn new(server_lr: f64, local_lr: f64, partial_work: bool) -> Self {
        Self {
            server_lr,
            local_lr,
            partial_work,
            c: Vec::new(),
            client_c: HashMap::new(),
        }
    }

    /// The server control variate `c` (empty before the first round).
    pub fn server_control(&self) -> &[f32] {
        &self.c
    }

    /// Client `i`'s control variate, if it has taken part.
    pub fn client_control(&self, client: usize) -> Option<&[f32]> {
        self.client_c.get(&client).map(Vec::as_slice)
    }

    /// How many clients have a stored control variate.
    pub fn stored_clients(&self) -> usize {
        self.client_c.len()
    }
}

impl Strategy for Scaffold {
    fn name(&self) -> String {
        "scaffold".into()
    }

    fn accepts_partial_work(&self) -> bool {
        self.partial_work
    }

    /// The model and the server control variate `c` go down; the update
    /// and `c_i⁺ − c_i` come back.
    fn vectors_per_transfer(&self) -> u64 {
        2
    }

    /// Every client that has trained keeps its control variate `c_i`.
    fn vectors_per_client(&self) -> u64 {
        1
    }

    fn client_correction(&self, client: usize) -> Option<Vec<f32>> {
        let ci = self.client_c.get(&client);
        if self.c.is_empty() && ci.is_none() {
            return None; // first round: c = c_i = 0
        }
        Some(match ci {
            Some(ci) if self.c.is_empty() => ci.iter().map(|v| -v).collect(),
            Some(ci) => self.c.iter().zip(ci).map(|(c, ci)| c - ci).collect(),
            None => self.c.clone(),
        })
    }

    fn aggregate(&mut self, global: &mut [f32], updates: &[ClientUpdate], info: &RoundInfo) {
        let p = global.len();
        if self.c.len() != p {
            self.c = vec![0.0; p];
        }
        debug_assert!(
            updates.windows(2).all(|w| w[0].client < w[1].client),
            "updates come sorted by client id, each client once"
        );
        // The control variates of the clients that took a step (absent =
        // zero), taken out of the map for the round, in update order.
        let mut cis: Vec<Option<Vec<f32>>> = updates
            .iter()
            .map(|u| {
                (u.steps > 0).then(|| {
                    self.client_c
                        .remove(&u.client)
                        .unwrap_or_else(|| vec![0.0; p])
                })
            })
            .collect();
        let invs: Vec<f64> = updates
            .iter()
            .map(|u| 1.0 / (u.steps as f64 * self.local_lr))
            .collect();
        // The control variates cut into the same chunks as the model.
        let chunks = p.div_ceil(PARAM_CHUNK);
        let mut per_chunk: Vec<Vec<Option<&mut [f32]>>> = (0..chunks)
            .map(|_| Vec::with_capacity(updates.len()))
            .collect();
        for ci in cis.iter_mut() {
            match ci {
                Some(ci) => {
                    for (k, part) in ci.chunks_mut(PARAM_CHUNK).enumerate() {
                        per_chunk[k].push(Some(part));
                    }
                }
                None => per_chunk.iter_mut().for_each(|v| v.push(None)),
            }
        }
        let scale = self.server_lr / updates.len() as f64;
        let inv_n = 1.0 / info.population as f64;
        // Per coordinate, exactly the serial loop's operations in update
        // order; the coordinates in parallel chunks.
        global
            .par_chunks_mut(PARAM_CHUNK)
            .zip(self.c.par_chunks_mut(PARAM_CHUNK))
            .zip(per_chunk.into_par_iter())
            .enumerate()
            .for_each(|(k, ((xs, cs), mut cis))| {
                let lo = k * PARAM_CHUNK;
                let n = xs.len();
                let mut dx = vec![0f64; n];
                let mut dc = vec![0f64; n];
                for ((u, ci), &inv) in updates.iter().zip(cis.iter_mut()).zip(&invs) {
                    let ys = &u.params[lo..lo + n];
                    for ((a, &y), &x) in dx.iter_mut().zip(ys).zip(xs.iter()) {
                        *a += f64::from(y) - f64::from(x);
                    }
                    let Some(ci) = ci else { continue };
                    for j in 0..n {
                        // c_i⁺ − c_i = −c + (x − y_i)/(K η_l)
                        let change =
                            -f64::from(cs[j]) + (f64::from(xs[j]) - f64::from(ys[j])) * inv;
                        dc[j] += change;
                        ci[j] = (f64::from(ci[j]) + change) as f32;
                    }
                }
                for (x, d) in xs.iter_mut().zip(dx) {
                    *x = (f64::from(*x) + scale * d) as f32;
                }
                for (c, d) in cs.iter_mut().zip(dc) {
                    *c = (f64::from(*c) + inv_n * d) as f32;
                }
            });
        for (u, ci) in updates.iter().zip(cis) {
            if let Some(ci) = ci {
                self.client_c.insert(u.client, ci);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::testutil::{Federation, distance};
    use crate::strategy::{FedAvg, info, update_steps};
    use approx::assert_relative_eq;

    /// The serial reference: the update rule coordinate by coordinate, in
    /// update order, with plain loops.
    fn serial(
        s: &mut (Vec<f32>, HashMap<usize, Vec<f32>>),
        global: &mut [f32],
        updates: &[ClientUpdate],
        lr: f64,
        n: usize,
    ) {
        let p = global.len();
        if s.0.len() != p {
            s.0 = vec![0.0; p];
        }
        let (mut dx, mut dc) = (vec![0f64; p], vec![0f64; p]);
        for u in updates {
            for j in 0..p {
                dx[j] += f64::from(u.params[j]) - f64::from(global[j]);
            }
            if u.steps == 0 {
                continue;
            }
            let inv = 1.0 / (u.steps as f64 * lr);
            let ci = s.1.entry(u.client).or_insert_with(|| vec![0.0; p]);
            for j in 0..p {
                let change =
                    -f64::from(s.0[j]) + (f64::from(global[j]) - f64::from(u.params[j])) * inv;
                dc[j] += change;
                ci[j] = (f64::from(ci[j]) + change) as f32;
            }
        }
        let scale = 1.0 / updates.len() as f64;
        for j in 0..p {
            global[j] = (f64::from(global[j]) + scale * dx[j]) as f32;
            s.0[j] = (f64::from(s.0[j]) + (1.0 / n as f64) * dc[j]) as f32;
        }
    }

    #[test]
    fn chunked_rounds_equal_the_serial_rule_bit_for_bit() {
        use rand::{RngExt, SeedableRng};
        let p = 2 * crate::strategy::PARAM_CHUNK + 5;
        let mut rng = crate::rng::Rng::seed_from_u64(3);
        let mut params = |scale: f32| -> Vec<f32> {
            (0..p)
                .map(|_| scale * (rng.random::<f32>() - 0.5))
                .collect()
        };
        let mut x = params(1.0);
        let mut y = x.clone();
        let mut s = Scaffold::new(1.0, 0.05, true);
        let mut reference = (Vec::new(), HashMap::new());
        for round in 1..=3 {
            // Clients 3k + round: some return, one takes no step.
            let ups: Vec<ClientUpdate> = (0..5)
                .map(|k| {
                    let steps = if k == 2 { 0 } else { k + round };
                    update_steps(k * 3 + round % 2, 10, steps, params(0.3))
                })
                .collect();
            s.aggregate(&mut x, &ups, &info(round, 40));
            serial(&mut reference, &mut y, &ups, 0.05, 40);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&x), bits(&y), "round {round}");
            assert_eq!(
                bits(s.server_control()),
                bits(&reference.0),
                "round {round}"
            );
            for (c, ci) in &reference.1 {
                assert_eq!(bits(s.client_control(*c).unwrap()), bits(ci), "client {c}");
            }
            assert_eq!(s.stored_clients(), reference.1.len());
        }
    }

    #[test]
    fn one_round_by_hand() {
        let mut s = Scaffold::new(1.0, 0.1, false);
        assert_eq!(s.client_correction(0), None);
        let mut x = vec![0.0f32];
        // Client 0: 2 steps to −0.4; client 1: 5 steps to 0.5 (N = 4).
        let ups = [
            update_steps(0, 10, 2, vec![-0.4]),
            update_steps(1, 30, 5, vec![0.5]),
        ];
        s.aggregate(&mut x, &ups, &info(1, 4));
        // x = 0 + mean(−0.4, 0.5) (unweighted).
        assert_relative_eq!(x[0], 0.05, epsilon = 1e-7);
        // c_0⁺ = 0.4/(2·0.1) = 2; c_1⁺ = −0.5/(5·0.1) = −1; c = (2 − 1)/4.
        assert_relative_eq!(s.client_control(0).unwrap()[0], 2.0, epsilon = 1e-6);
        assert_relative_eq!(s.client_control(1).unwrap()[0], -1.0, epsilon = 1e-6);
        assert_relative_eq!(s.server_control()[0], 0.25, epsilon = 1e-7);
        // Corrections c − c_i; a newcomer gets c.
        assert_relative_eq!(s.client_correction(0).unwrap()[0], -1.75, epsilon = 1e-6);
        assert_relative_eq!(s.client_correction(1).unwrap()[0], 1.25, epsilon = 1e-6);
        assert_relative_eq!(s.client_correction(3).unwrap()[0], 0.25, epsilon = 1e-7);

        // Round 2: client 1 again, 4 steps from x = 0.05 to 0.45, η_g = 1.
        // c_1⁺ = −1 − 0.25 + (0.05 − 0.45)/(4·0.1) = −2.25;
        // c = 0.25 + (−2.25 + 1)/4 = −0.0625.
        s.aggregate(&mut x, &[update_steps(1, 30, 4, vec![0.45])], &info(2, 4));
        assert_relative_eq!(x[0], 0.45, epsilon = 1e-6);
        assert_relative_eq!(s.client_control(1).unwrap()[0], -2.25, epsilon = 1e-5);
        assert_relative_eq!(s.server_control()[0], -0.0625, epsilon = 1e-6);
        // Client 0 did not take part: its c_0 is unchanged.
        assert_relative_eq!(s.client_control(0).unwrap()[0], 2.0, epsilon = 1e-6);
    }

    #[test]
    fn stores_control_variates_only_for_clients_that_took_part() {
        let mut s = Scaffold::new(1.0, 0.01, true);
        let mut x = vec![0.0f32; 8];
        for r in 1..=5 {
            let ups: Vec<ClientUpdate> = (0..3)
                .map(|k| update_steps(r * 1000 + k * 7, 5, 3, vec![0.1; 8]))
                .chain([update_steps(r * 1000 + 99, 5, 0, vec![0.0; 8])])
                .collect();
            s.aggregate(&mut x, &ups, &info(r, 100_000));
        }
        // 3 trained clients per round; the zero-step ones store nothing.
        assert_eq!(s.stored_clients(), 15);
        assert!(s.client_control(1099).is_none());
        assert!(s.accepts_partial_work());
    }

    /// Clients with different minimisers and curvatures, many local steps:
    /// FedAvg's fixed point is a curvature-blind average of the clients'
    /// minimisers, SCAFFOLD's control variates remove the drift.
    #[test]
    fn reaches_the_global_minimiser_where_fedavg_drifts() {
        let b = vec![
            vec![1.0, -2.0, 3.0],
            vec![-1.0, 2.0, 0.5],
            vec![2.0, 1.0, -1.0],
            vec![0.0, -1.0, 2.0],
        ];
        let a = vec![
            vec![0.2, 1.5, 0.5],
            vec![2.0, 0.3, 1.0],
            vec![0.5, 0.5, 3.0],
            vec![1.0, 2.0, 0.2],
        ];
        let fed = Federation::new(&b, &a, &[5, 5, 5, 5]);
        let opt = fed.optimum();
        let steps = [30; 4];
        let lr = 0.1;
        let avg = fed.run(&mut FedAvg, lr, &steps, 100);
        let mut sc = Scaffold::new(1.0, f64::from(lr), false);
        let scaf = fed.run(&mut sc, lr, &steps, 100);
        let (e_avg, e_scaf) = (distance(&avg, &opt), distance(&scaf, &opt));
        assert!(e_avg > 0.5, "FedAvg should drift: error {e_avg}");
        assert!(e_scaf < 1e-3, "SCAFFOLD error {e_scaf} (FedAvg {e_avg})");
        // At the optimum, c_i = ∇F_i(x*) and c = mean_i c_i = 0.
        for j in 0..3 {
            assert!(sc.server_control()[j].abs() < 1e-3);
            let g0 = f64::from(a[0][j]) * (opt[j] - f64::from(b[0][j]));
            assert_relative_eq!(
                f64::from(sc.client_control(0).unwrap()[j]),
                g0,
                epsilon = 1e-2
            );
        }
    }
}
