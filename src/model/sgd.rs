//! The local optimiser step, element by element, so a model can apply it
//! to any part of its parameters as soon as that part's gradient is known
//! ([`Model::sgd_step`](super::Model::sgd_step)).
//!
//! Per coordinate, in this order (each term only when its coefficient or
//! vector is present): `g += wd·w`, `g += μ·(w − w₀)`, `g += c`, then with
//! momentum `v = m·v + g; w −= lr·v`, else `w −= lr·g`. Every coordinate is
//! computed on its own with the same operations in the same order, so
//! applying the step to the whole vector at once or part by part gives the
//! same bits.

/// One SGD step of local training (see the module docs for the formula).
#[derive(Debug, Clone, Copy)]
pub struct SgdStep<'a> {
    /// Learning rate `lr`.
    pub lr: f32,
    /// L2 coefficient `wd` (0: no term).
    pub weight_decay: f32,
    /// Proximal coefficient `μ` (0: no term).
    pub prox_mu: f32,
    /// Heavy-ball momentum `m` (0: plain SGD, the velocity is not used).
    pub momentum: f32,
    /// The proximal centre `w₀` (model length; only read when `prox_mu ≠ 0`).
    pub global: &'a [f32],
    /// A vector `c` added to every gradient (model length), e.g. SCAFFOLD's
    /// correction; `None` for no term.
    pub correction: Option<&'a [f32]>,
}

impl SgdStep<'_> {
    /// True when the step is `w −= lr·g` alone (no weight decay, proximal
    /// term, correction or momentum).
    pub fn is_plain(&self) -> bool {
        self.weight_decay == 0.0
            && self.prox_mu == 0.0
            && self.momentum == 0.0
            && self.correction.is_none()
    }

    /// Applies the step to the whole parameter vector: updates `params`
    /// (and `vel`, which then has the model's length, with momentum) from
    /// the loss gradient `grad`; `grad` is left holding the gradient of the
    /// local objective (with the correction).
    pub fn apply(&self, params: &mut [f32], grad: &mut [f32], vel: &mut [f32]) {
        self.apply_at(0, params, grad, vel);
    }

    /// [`SgdStep::apply`] on the coordinates `offset..offset + params.len()`
    /// of the model: `params` and `grad` are that part, `global`,
    /// `correction` and `vel` are read at those coordinates (`vel` holds the
    /// whole model's velocity).
    ///
    /// # Panics
    /// If `grad` is shorter than `params` or a vector the step reads is
    /// shorter than `offset + params.len()`.
    pub fn apply_at(&self, offset: usize, params: &mut [f32], grad: &mut [f32], vel: &mut [f32]) {
        self.apply_impl::<false>(offset, &[], params, grad, vel);
    }

    /// [`SgdStep::apply_at`] taking the parameters before the step from
    /// `from` (`params.len()` long) instead of `params`, whose contents are
    /// ignored and overwritten: the same bits as copying `from` into
    /// `params`, then `apply_at`.
    ///
    /// # Panics
    /// As [`SgdStep::apply_at`]; also if `from` is shorter than `params`.
    pub fn apply_at_from(
        &self,
        offset: usize,
        from: &[f32],
        params: &mut [f32],
        grad: &mut [f32],
        vel: &mut [f32],
    ) {
        self.apply_impl::<true>(offset, from, params, grad, vel);
    }

    fn apply_impl<const FROM: bool>(
        &self,
        offset: usize,
        from: &[f32],
        params: &mut [f32],
        grad: &mut [f32],
        vel: &mut [f32],
    ) {
        let n = params.len();
        let from = if FROM { &from[..n] } else { &[][..] };
        let r = offset..offset + n;
        let wd = self.weight_decay != 0.0;
        let prox = self.prox_mu != 0.0;
        let mom = self.momentum != 0.0;
        let global = if prox {
            &self.global[r.clone()]
        } else {
            &[][..]
        };
        let vel = if mom {
            &mut vel[r.clone()]
        } else {
            &mut [][..]
        };
        let grad = &mut grad[..n];
        // One monomorphised loop per combination, so each vectorises
        // without per-element branches.
        macro_rules! go {
            ($wd:literal, $prox:literal, $mom:literal) => {
                match self.correction {
                    Some(c) => self.run::<$wd, $prox, true, $mom, FROM>(
                        from, params, grad, global, &c[r], vel,
                    ),
                    None => self.run::<$wd, $prox, false, $mom, FROM>(
                        from,
                        params,
                        grad,
                        global,
                        &[],
                        vel,
                    ),
                }
            };
        }
        match (wd, prox, mom) {
            (false, false, false) => go!(false, false, false),
            (false, false, true) => go!(false, false, true),
            (false, true, false) => go!(false, true, false),
            (false, true, true) => go!(false, true, true),
            (true, false, false) => go!(true, false, false),
            (true, false, true) => go!(true, false, true),
            (true, true, false) => go!(true, true, false),
            (true, true, true) => go!(true, true, true),
        }
    }

    #[inline(always)]
    fn run<
        const WD: bool,
        const PROX: bool,
        const CORR: bool,
        const MOM: bool,
        const FROM: bool,
    >(
        &self,
        from: &[f32],
        params: &mut [f32],
        grad: &mut [f32],
        global: &[f32],
        correction: &[f32],
        vel: &mut [f32],
    ) {
        let n = params.len();
        let grad = &mut grad[..n];
        let global = if PROX { &global[..n] } else { &[][..] };
        let correction = if CORR { &correction[..n] } else { &[][..] };
        let vel = if MOM { &mut vel[..n] } else { &mut [][..] };
        let from = if FROM { &from[..n] } else { &[][..] };
        let (lr, wd, mu, m) = (self.lr, self.weight_decay, self.prox_mu, self.momentum);
        for i in 0..n {
            let w = if FROM { from[i] } else { params[i] };
            let mut g = grad[i];
            if WD {
                g += wd * w;
            }
            if PROX {
                g += mu * (w - global[i]);
            }
            if CORR {
                g += correction[i];
            }
            grad[i] = g;
            if MOM {
                let v = m * vel[i] + g;
                vel[i] = v;
                params[i] = w - lr * v;
            } else {
                params[i] = w - lr * g;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use rand::{RngExt, SeedableRng};

    fn bits(x: &[f32]) -> Vec<u32> {
        x.iter().map(|v| v.to_bits()).collect()
    }

    /// The fused optimiser step against the separate passes it replaced
    /// (weight decay, prox, correction, then plain or momentum SGD), bit
    /// for bit, for every combination of terms; applied in two parts
    /// (`apply_at`) and from a separate source (`apply_at_from`) against
    /// applied in place at once.
    #[test]
    fn fused_sgd_step_equals_separate_passes_bitwise() {
        let mut rng = Rng::seed_from_u64(77);
        let n = 37;
        let mut vec =
            |s: f32| -> Vec<f32> { (0..n).map(|_| s * rng.random_range(-1.0f32..1.0)).collect() };
        let (w0, g0, global, corr, v0) = (vec(1.0), vec(3.0), vec(1.0), vec(0.5), vec(2.0));
        for mask in 0..16u32 {
            let step = SgdStep {
                lr: 0.037,
                weight_decay: if mask & 1 != 0 { 0.013 } else { 0.0 },
                prox_mu: if mask & 2 != 0 { 0.31 } else { 0.0 },
                momentum: if mask & 8 != 0 { 0.9 } else { 0.0 },
                global: &global,
                correction: (mask & 4 != 0).then_some(&corr[..]),
            };
            assert_eq!(step.is_plain(), mask == 0);
            // Separate passes, as local training did them before.
            let (mut w, mut g, mut v) = (w0.clone(), g0.clone(), v0.clone());
            if step.weight_decay != 0.0 {
                for (g, w) in g.iter_mut().zip(&w) {
                    *g += step.weight_decay * w;
                }
            }
            if step.prox_mu != 0.0 {
                for ((g, w), w0) in g.iter_mut().zip(&w).zip(&global) {
                    *g += step.prox_mu * (w - w0);
                }
            }
            if let Some(c) = step.correction {
                for (g, c) in g.iter_mut().zip(c) {
                    *g += c;
                }
            }
            if step.momentum != 0.0 {
                for ((w, g), v) in w.iter_mut().zip(&g).zip(&mut v) {
                    *v = step.momentum * *v + g;
                    *w -= step.lr * *v;
                }
            } else {
                for (w, g) in w.iter_mut().zip(&g) {
                    *w -= step.lr * g;
                }
            }
            let (mut fw, mut fg, mut fv) = (w0.clone(), g0.clone(), v0.clone());
            step.apply(&mut fw, &mut fg, &mut fv);
            assert_eq!(bits(&fw), bits(&w), "parameters, mask {mask}");
            assert_eq!(bits(&fg), bits(&g), "gradient, mask {mask}");
            assert_eq!(bits(&fv), bits(&v), "velocity, mask {mask}");
            assert_ne!(bits(&fw), bits(&w0), "the step moved nothing, mask {mask}");

            let (mut qw, mut qg, mut qv) = (vec![f32::NAN; n], g0.clone(), v0.clone());
            step.apply_at_from(0, &w0, &mut qw, &mut qg, &mut qv);
            assert_eq!(bits(&qw), bits(&w), "parameters from w0, mask {mask}");
            assert_eq!(bits(&qg), bits(&g), "gradient from w0, mask {mask}");
            assert_eq!(bits(&qv), bits(&v), "velocity from w0, mask {mask}");

            let (mut pw, mut pg, mut pv) = (w0.clone(), g0.clone(), v0.clone());
            let (w_lo, w_hi) = pw.split_at_mut(11);
            let (g_lo, g_hi) = pg.split_at_mut(11);
            step.apply_at(11, w_hi, g_hi, &mut pv);
            step.apply_at(0, w_lo, g_lo, &mut pv);
            assert_eq!(bits(&pw), bits(&w), "parameters in parts, mask {mask}");
            assert_eq!(bits(&pv), bits(&v), "velocity in parts, mask {mask}");
        }
    }
}
