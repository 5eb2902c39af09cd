//! Built-in synthetic data generators (no files needed).
//!
//! * [`fedprox_synthetic`]: the FedProx Synthetic(α, β) benchmark, one natural
//!   group of rows per device.
//! * [`gaussian_mixture`]: an isotropic Gaussian mixture with a tunable class
//!   separation, for quick experiments and tests.
//!
//! Invariants:
//! * Every generator is a pure function of its configuration and seed.
//! * Draws come from named streams ([`crate::rng::stream`] with
//!   [`Purpose::Data`]). Synthetic device `k` draws everything from the stream
//!   `(seed, Data, k, 0)`, so its data does not depend on how many devices are
//!   generated (devices can be generated on demand with
//!   [`fedprox_synthetic_device`]). The IID variant's shared model comes from
//!   `(seed, Data, 0, 1)`; the Gaussian mixture uses `(seed, Data, 0..=2, 2)`.
//! * Features are computed in `f64` and stored as `f32`; labels are computed
//!   from the stored (rounded) features, so a label is exactly the argmax of the
//!   generating model applied to the row the user sees.

use super::{DataSplit, Dataset};
use crate::rng::{self, Purpose, Rng};
use ndarray::Array2;
use rand::RngExt;
use rand_distr::StandardNormal;

/// Number of features of FedProx Synthetic(α, β) (fixed by the paper).
pub const SYNTHETIC_FEATURES: usize = 60;
/// Number of classes of FedProx Synthetic(α, β) (fixed by the paper).
pub const SYNTHETIC_CLASSES: usize = 10;

/// Stream coordinate `b` of the per-device streams `(seed, Data, device, 0)`.
const DEVICE_STREAM: u64 = 0;
/// Stream coordinate `b` of the IID variant's shared model `(seed, Data, 0, 1)`.
const SHARED_MODEL_STREAM: u64 = 1;
/// Stream coordinate `b` of the Gaussian mixture `(seed, Data, 0..=2, 2)`.
const MIXTURE_STREAM: u64 = 2;

/// Parameters of FedProx Synthetic(α, β).
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticConfig {
    /// Standard deviation of the per-device model mean `u_k ~ N(0, α)`.
    /// Default 1. (Since `u_k` shifts every logit of a sample equally, α
    /// changes the models but not, by itself, the labels.)
    pub alpha: f64,
    /// Standard deviation of the per-device feature shift `B_k ~ N(0, β)`.
    /// Default 1.
    pub beta: f64,
    /// Number of devices (natural groups). Default 30.
    pub devices: usize,
    /// Generate the IID variant: one model shared by all devices and
    /// features `x ~ N(0, Σ)` (α and β are then unused). Default false.
    pub iid: bool,
    /// Fraction of each device's samples held out for testing, in `[0, 1)`.
    /// Default 0.1 (the reference 90 % / 10 % split).
    pub test_fraction: f64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            alpha: 1.0,
            beta: 1.0,
            devices: 30,
            iid: false,
            test_fraction: 0.1,
        }
    }
}

/// The generating model of one synthetic device.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeviceModel {
    /// Number of samples on the device, `floor(lognormal(4, 2)) + 50`.
    pub n: usize,
    /// Model mean `u_k` (0 in the IID variant).
    pub u: f64,
    /// Feature shift `B_k` (0 in the IID variant).
    pub shift: f64,
    /// Feature means `v_k` (all 0 in the IID variant).
    pub v: [f64; SYNTHETIC_FEATURES],
    /// Weights `W_k`, `features × classes`.
    pub w: [[f64; SYNTHETIC_CLASSES]; SYNTHETIC_FEATURES],
    /// Biases `b_k`.
    pub b: [f64; SYNTHETIC_CLASSES],
}

/// Per-feature standard deviations `sqrt(j^-1.2)`, j = 1..=60.
fn feature_std() -> [f64; SYNTHETIC_FEATURES] {
    std::array::from_fn(|i| ((i + 1) as f64).powf(-1.2).sqrt())
}

#[inline]
fn normal(rng: &mut Rng) -> f64 {
    rng.sample(StandardNormal)
}

/// The IID variant's shared `W, b ~ N(0, 1)`, from stream `(seed, Data, 0, 1)`.
pub(crate) fn shared_iid_model(
    seed: u64,
) -> (
    [[f64; SYNTHETIC_CLASSES]; SYNTHETIC_FEATURES],
    [f64; SYNTHETIC_CLASSES],
) {
    let mut rng = rng::stream(seed, Purpose::Data, 0, SHARED_MODEL_STREAM);
    let mut w = [[0.0; SYNTHETIC_CLASSES]; SYNTHETIC_FEATURES];
    for row in &mut w {
        for wjc in row.iter_mut() {
            *wjc = normal(&mut rng);
        }
    }
    let b = std::array::from_fn(|_| normal(&mut rng));
    (w, b)
}

/// Draws device `device`'s model from its stream and returns the stream,
/// positioned at the first sample.
///
/// Draw order (fixed): `n_k`; then, non-IID only, `u_k`, `B_k`, `v_k[0..60]`,
/// `W_k` row by row (feature-major), `b_k[0..10]`; then the samples.
fn device_stream(
    cfg: &SyntheticConfig,
    seed: u64,
    device: usize,
    shared: Option<&DeviceModel>,
) -> (DeviceModel, Rng) {
    let mut rng = rng::stream(seed, Purpose::Data, device as u64, DEVICE_STREAM);
    let n = draw_size(&mut rng);
    let model = match shared {
        Some(shared) => DeviceModel {
            n,
            ..shared.clone()
        },
        None => {
            let u = cfg.alpha * normal(&mut rng);
            let shift = cfg.beta * normal(&mut rng);
            let v = std::array::from_fn(|_| shift + normal(&mut rng));
            let mut w = [[0.0; SYNTHETIC_CLASSES]; SYNTHETIC_FEATURES];
            for row in &mut w {
                for wjc in row.iter_mut() {
                    *wjc = u + normal(&mut rng);
                }
            }
            let b = std::array::from_fn(|_| u + normal(&mut rng));
            DeviceModel {
                n,
                u,
                shift,
                v,
                w,
                b,
            }
        }
    };
    (model, rng)
}

/// A device's sample count `n_k = floor(lognormal(4, 2)) + 50`, the first
/// draw of its stream.
fn draw_size(rng: &mut Rng) -> usize {
    // Heavy tailed: `as` saturates, so an astronomically unlikely draw cannot
    // wrap around; it would simply ask for a huge allocation.
    (4.0 + 2.0 * normal(rng)).exp().floor() as usize + 50
}

/// The shared model of the IID variant, as a [`DeviceModel`] template.
fn iid_template(seed: u64) -> DeviceModel {
    let (w, b) = shared_iid_model(seed);
    DeviceModel {
        n: 0,
        u: 0.0,
        shift: 0.0,
        v: [0.0; SYNTHETIC_FEATURES],
        w,
        b,
    }
}

/// The generating model of device `device` (for tests).
#[cfg(test)]
pub(crate) fn device_model(cfg: &SyntheticConfig, seed: u64, device: usize) -> DeviceModel {
    let template = cfg.iid.then(|| iid_template(seed));
    device_stream(cfg, seed, device, template.as_ref()).0
}

/// Fills `y.len()` samples of `model` into `x` (row-major, 60 per row) and `y`.
///
/// Per sample: `x_j = v_j + sqrt(j^-1.2) z_j` for j = 1..=60 in order, stored
/// as `f32`; `y = argmax_c (x·W + b)_c` computed from the stored values (first
/// maximum on ties, as `numpy.argmax`).
fn fill_samples(
    model: &DeviceModel,
    std: &[f64; SYNTHETIC_FEATURES],
    rng: &mut Rng,
    x: &mut [f32],
    y: &mut [u32],
) {
    debug_assert_eq!(x.len(), y.len() * SYNTHETIC_FEATURES);
    for (row, label) in x.chunks_exact_mut(SYNTHETIC_FEATURES).zip(y.iter_mut()) {
        // The row first, then its logits: the same operations in the same
        // order as interleaving them, but the logits stay in registers
        // instead of being spilled around every (out-of-line) normal draw.
        for (j, xj) in row.iter_mut().enumerate() {
            *xj = (model.v[j] + std[j] * normal(rng)) as f32;
        }
        let mut logits = model.b;
        for (&xj, wj) in row.iter().zip(&model.w) {
            let xj = f64::from(xj);
            for (l, w) in logits.iter_mut().zip(wj) {
                *l += xj * w;
            }
        }
        *label = argmax(&logits) as u32;
    }
}

/// Index of the first maximum.
fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Number of training samples of a device with `n` samples:
/// `floor((1 - test_fraction) n)`, clamped to `1..=n`.
fn train_count(n: usize, test_fraction: f64) -> usize {
    let t = ((1.0 - test_fraction) * n as f64).floor();
    // `as` saturates (and maps NaN to 0); the clamp keeps at least one sample.
    (t as usize).clamp(1.min(n), n)
}

/// Human name of a synthetic configuration, e.g. `"synthetic(1,1)"`.
fn synthetic_name(cfg: &SyntheticConfig) -> String {
    if cfg.iid {
        "synthetic-iid".to_string()
    } else {
        format!("synthetic({},{})", cfg.alpha, cfg.beta)
    }
}

/// FedProx Synthetic(α, β): `cfg.devices` devices with 60 features and 10
/// classes, each device with its own softmax-regression model.
///
/// From Li, Sahu, Zaheer, Sanjabi, Talwalkar and Smith, "Federated
/// Optimization in Heterogeneous Networks", MLSys 2020, §5.1 and App. C.1
/// (reference generator: the authors' `generate_synthetic.py`). For device k:
///
/// * `n_k = floor(lognormal(mean 4, sigma 2)) + 50` samples;
/// * `u_k ~ N(0, α²)`, `B_k ~ N(0, β²)` (α and β are standard deviations);
/// * `v_k[j] ~ N(B_k, 1)`, `W_k ~ N(u_k, 1)` (60 × 10), `b_k ~ N(u_k, 1)` (10);
/// * `x ~ N(v_k, Σ)` with `Σ = diag(j^-1.2)`, j = 1..=60;
/// * `y = argmax softmax(x·W_k + b_k)`.
///
/// The IID variant (`cfg.iid`) uses one `W, b ~ N(0, 1)` shared by all devices
/// and `x ~ N(0, Σ)`.
///
/// Each device's first `floor((1 - test_fraction) n_k)` samples (at least one)
/// go to the training set, the rest to the test set. Both sets carry
/// `groups = Some(..)`: one contiguous range per device, in device order (a
/// device's test range may be empty).
///
/// `n_k` is **not capped**, as in the paper: the log-normal is heavy tailed
/// (mean `e^6 + 50 ≈ 453` samples, median ≈ 104), so among 1000 devices the
/// largest usually holds some 10⁴ to 10⁵ samples (≈ 240 bytes each).
///
/// Device k's data depends only on `(seed, k, α, β, iid, test_fraction)`,
/// not on `cfg.devices`: see [`fedprox_synthetic_device`].
pub fn fedprox_synthetic(cfg: &SyntheticConfig, seed: u64) -> DataSplit {
    let template = cfg.iid.then(|| iid_template(seed));
    let devices: Vec<(DeviceModel, Rng)> = (0..cfg.devices)
        .map(|k| device_stream(cfg, seed, k, template.as_ref()))
        .collect();
    let mut train_groups = Vec::with_capacity(devices.len());
    let mut test_groups = Vec::with_capacity(devices.len());
    let (mut n_train, mut n_test) = (0, 0);
    for (model, _) in &devices {
        let t = train_count(model.n, cfg.test_fraction);
        train_groups.push(n_train..n_train + t);
        test_groups.push(n_test..n_test + (model.n - t));
        n_train += t;
        n_test += model.n - t;
    }

    let std = feature_std();
    let mut train_x = vec![0f32; n_train * SYNTHETIC_FEATURES];
    let mut train_y = vec![0u32; n_train];
    let mut test_x = vec![0f32; n_test * SYNTHETIC_FEATURES];
    let mut test_y = vec![0u32; n_test];
    for ((model, mut rng), (tr, te)) in devices
        .into_iter()
        .zip(train_groups.iter().zip(&test_groups))
    {
        let f = SYNTHETIC_FEATURES;
        fill_samples(
            &model,
            &std,
            &mut rng,
            &mut train_x[tr.start * f..tr.end * f],
            &mut train_y[tr.clone()],
        );
        fill_samples(
            &model,
            &std,
            &mut rng,
            &mut test_x[te.start * f..te.end * f],
            &mut test_y[te.clone()],
        );
    }

    DataSplit {
        name: synthetic_name(cfg),
        train: synthetic_dataset(train_x, train_y, train_groups),
        test: synthetic_dataset(test_x, test_y, test_groups),
    }
}

/// Device `device` of [`fedprox_synthetic`] alone, bit-identical to its group
/// in the full dataset (`cfg.devices` is ignored). Both sets have a single
/// group covering all their rows.
pub fn fedprox_synthetic_device(cfg: &SyntheticConfig, seed: u64, device: usize) -> DataSplit {
    let template = cfg.iid.then(|| iid_template(seed));
    let (model, mut rng) = device_stream(cfg, seed, device, template.as_ref());
    let std = feature_std();
    let t = train_count(model.n, cfg.test_fraction);
    let mut make = |count: usize| {
        let mut x = vec![0f32; count * SYNTHETIC_FEATURES];
        let mut y = vec![0u32; count];
        fill_samples(&model, &std, &mut rng, &mut x, &mut y);
        #[allow(clippy::single_range_in_vec_init)] // one group: the device
        let groups = vec![0..count];
        synthetic_dataset(x, y, groups)
    };
    let train = make(t);
    let test = make(model.n - t);
    DataSplit {
        name: format!("{} device {device}", synthetic_name(cfg)),
        train,
        test,
    }
}

/// FedProx Synthetic(α, β) devices generated one at a time, when needed:
/// the population behind `data.on_demand`, where no dataset is ever held
/// in memory as a whole.
///
/// Device `k` here is bit-identical to group `k` of [`fedprox_synthetic`]
/// with the same configuration and seed (its stream `(seed, Data, k, 0)`
/// does not depend on the device count); `cfg.devices` is the population
/// size. Looking up a device's size costs one draw; generating its
/// training rows costs those rows (its test rows, drawn after them, are
/// not generated).
#[derive(Debug, Clone)]
pub struct SyntheticDevices {
    cfg: SyntheticConfig,
    seed: u64,
    template: Option<DeviceModel>,
}

/// Stream coordinate `b` of the draw of the test devices of an on-demand
/// population, `(seed, Data, 0, 3)`.
const TEST_DEVICES_STREAM: u64 = 3;

impl SyntheticDevices {
    /// The devices of `cfg` (`cfg.devices` of them) for `seed`.
    pub fn new(cfg: &SyntheticConfig, seed: u64) -> Self {
        Self {
            cfg: cfg.clone(),
            seed,
            template: cfg.iid.then(|| iid_template(seed)),
        }
    }

    /// The configuration (its `devices` is the population size).
    pub fn config(&self) -> &SyntheticConfig {
        &self.cfg
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.cfg.devices
    }

    /// Whether there are no devices.
    pub fn is_empty(&self) -> bool {
        self.cfg.devices == 0
    }

    /// Number of training samples of `device` (one draw, no data made).
    pub fn train_size(&self, device: usize) -> usize {
        let mut rng = rng::stream(self.seed, Purpose::Data, device as u64, DEVICE_STREAM);
        train_count(draw_size(&mut rng), self.cfg.test_fraction)
    }

    /// The training rows of `device` (one group), bit-identical to its
    /// training group in [`fedprox_synthetic`].
    pub fn train_data(&self, device: usize) -> Dataset {
        let (model, mut rng) = device_stream(&self.cfg, self.seed, device, self.template.as_ref());
        let t = train_count(model.n, self.cfg.test_fraction);
        let mut x = vec![0f32; t * SYNTHETIC_FEATURES];
        let mut y = vec![0u32; t];
        fill_samples(&model, &feature_std(), &mut rng, &mut x, &mut y);
        #[allow(clippy::single_range_in_vec_init)] // one group: the device
        synthetic_dataset(x, y, vec![0..t])
    }

    /// The devices whose held-out rows form the test set of an on-demand
    /// population: `count` distinct devices drawn uniformly from stream
    /// `(seed, Data, 0, 3)`, ascending (all devices when `count` ≥ their
    /// number).
    pub fn test_devices(&self, count: usize) -> Vec<usize> {
        let n = self.len();
        if count >= n {
            return (0..n).collect();
        }
        let mut rng = rng::stream(self.seed, Purpose::Data, 0, TEST_DEVICES_STREAM);
        let mut v = rand::seq::index::sample(&mut rng, n, count).into_vec();
        v.sort_unstable();
        v
    }

    /// The held-out rows of `devices`, concatenated in the given order with
    /// one group per device: the same rows [`fedprox_synthetic`] puts in its
    /// test set for those devices. Generated in parallel; the result does not
    /// depend on the thread count.
    pub fn test_data(&self, devices: &[usize]) -> Dataset {
        use rayon::prelude::*;
        let parts: Vec<(Vec<f32>, Vec<u32>)> = devices
            .par_iter()
            .map(|&k| {
                let (model, mut rng) =
                    device_stream(&self.cfg, self.seed, k, self.template.as_ref());
                let t = train_count(model.n, self.cfg.test_fraction);
                let std = feature_std();
                // The training rows come first in the stream: draw and drop them.
                let mut x = vec![0f32; t * SYNTHETIC_FEATURES];
                let mut y = vec![0u32; t];
                fill_samples(&model, &std, &mut rng, &mut x, &mut y);
                let m = model.n - t;
                let mut x = vec![0f32; m * SYNTHETIC_FEATURES];
                let mut y = vec![0u32; m];
                fill_samples(&model, &std, &mut rng, &mut x, &mut y);
                (x, y)
            })
            .collect();
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut groups = Vec::with_capacity(parts.len());
        for (px, py) in parts {
            groups.push(y.len()..y.len() + py.len());
            x.extend_from_slice(&px);
            y.extend_from_slice(&py);
        }
        synthetic_dataset(x, y, groups)
    }

    /// The on-demand population as a [`DataSplit`]: an empty training set
    /// (with the shape of the data; clients generate their rows when they
    /// train) and the test rows of [`SyntheticDevices::test_devices`]`(test_devices)`.
    pub fn split(&self, test_devices: usize) -> DataSplit {
        DataSplit {
            name: format!("{} on demand", synthetic_name(&self.cfg)),
            train: synthetic_dataset(Vec::new(), Vec::new(), Vec::new()),
            test: self.test_data(&self.test_devices(test_devices)),
        }
    }
}

fn synthetic_dataset(x: Vec<f32>, y: Vec<u32>, groups: Vec<std::ops::Range<usize>>) -> Dataset {
    let n = y.len();
    Dataset {
        x: Array2::from_shape_vec((n, SYNTHETIC_FEATURES), x)
            .expect("buffer length is n * SYNTHETIC_FEATURES by construction"),
        y,
        num_classes: SYNTHETIC_CLASSES,
        groups: Some(groups),
    }
}

/// Parameters of [`gaussian_mixture`].
#[derive(Debug, Clone, PartialEq)]
pub struct MixtureConfig {
    /// Number of training samples. Default 10 000.
    pub samples: usize,
    /// Number of test samples. Default 2 000.
    pub test_samples: usize,
    /// Number of features (dimension of the space). Default 20.
    pub features: usize,
    /// Number of classes (mixture components); must be at least 1. Default 10.
    pub classes: usize,
    /// Root-mean-square Euclidean distance between two class means. Default 4.
    pub separation: f64,
    /// Standard deviation of the isotropic noise around each mean. Default 1.
    pub noise: f64,
}

impl Default for MixtureConfig {
    fn default() -> Self {
        Self {
            samples: 10_000,
            test_samples: 2_000,
            features: 20,
            classes: 10,
            separation: 4.0,
            noise: 1.0,
        }
    }
}

/// An isotropic Gaussian mixture with `cfg.classes` equally likely classes.
///
/// Definition: class means `m_c = separation / sqrt(2 d) · z_c` with
/// `z_c ~ N(0, I_d)` drawn once (stream `(seed, Data, 0, 2)`), so that
/// `E‖m_a − m_b‖² = separation²` for any two classes (for large `d` the
/// distance itself concentrates at `separation`). Each sample draws a label
/// `y` uniformly from `0..classes`, then `x = m_y + noise · N(0, I_d)`.
/// Training samples come from stream `(seed, Data, 1, 2)`, test samples from
/// `(seed, Data, 2, 2)`, so the test set does not depend on `cfg.samples`.
/// Both sets have `groups = None`.
///
/// # Panics
///
/// If `cfg.classes == 0` (configuration validation rejects it earlier).
pub fn gaussian_mixture(cfg: &MixtureConfig, seed: u64) -> DataSplit {
    assert!(cfg.classes > 0, "gaussian_mixture needs at least one class");
    let d = cfg.features;
    let scale = if d == 0 {
        0.0
    } else {
        cfg.separation / (2.0 * d as f64).sqrt()
    };
    let mut rng = rng::stream(seed, Purpose::Data, 0, MIXTURE_STREAM);
    let means = Array2::from_shape_simple_fn((cfg.classes, d), || scale * normal(&mut rng));

    let draw = |count: usize, a: u64| {
        let mut rng = rng::stream(seed, Purpose::Data, a, MIXTURE_STREAM);
        let mut x = Vec::with_capacity(count * d);
        let mut y = Vec::with_capacity(count);
        for _ in 0..count {
            let label = rng.random_range(0..cfg.classes);
            y.push(label as u32);
            for &m in means.row(label) {
                x.push((m + cfg.noise * normal(&mut rng)) as f32);
            }
        }
        Dataset {
            x: Array2::from_shape_vec((count, d), x)
                .expect("buffer length is count * features by construction"),
            y,
            num_classes: cfg.classes,
            groups: None,
        }
    };
    DataSplit {
        name: format!(
            "mixture({} classes, {d} features, separation {})",
            cfg.classes, cfg.separation
        ),
        train: draw(cfg.samples, 1),
        test: draw(cfg.test_samples, 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(alpha: f64, beta: f64, devices: usize) -> SyntheticConfig {
        SyntheticConfig {
            alpha,
            beta,
            devices,
            ..SyntheticConfig::default()
        }
    }

    /// Per-device normalised label histograms of a dataset with groups.
    fn label_histograms(d: &Dataset) -> Vec<[f64; SYNTHETIC_CLASSES]> {
        let groups = d.groups.as_ref().expect("synthetic data has groups");
        groups
            .iter()
            .map(|g| {
                let mut h = [0.0; SYNTHETIC_CLASSES];
                for &y in &d.y[g.clone()] {
                    h[y as usize] += 1.0;
                }
                h.map(|c| c / g.len() as f64)
            })
            .collect()
    }

    /// Mean total-variation distance between pairs of device label histograms.
    fn mean_tv(d: &Dataset) -> f64 {
        let h = label_histograms(d);
        let (mut sum, mut pairs) = (0.0, 0);
        for i in 0..h.len() {
            for j in i + 1..h.len() {
                sum += 0.5
                    * h[i]
                        .iter()
                        .zip(&h[j])
                        .map(|(a, b)| (a - b).abs())
                        .sum::<f64>();
                pairs += 1;
            }
        }
        sum / pairs as f64
    }

    /// Mean over devices of the share of the device's most common label.
    fn mean_majority_share(d: &Dataset) -> f64 {
        let h = label_histograms(d);
        h.iter()
            .map(|h| h.iter().copied().fold(0.0, f64::max))
            .sum::<f64>()
            / h.len() as f64
    }

    fn logits(model: &DeviceModel, row: &[f32]) -> [f64; SYNTHETIC_CLASSES] {
        std::array::from_fn(|c| {
            model.b[c]
                + row
                    .iter()
                    .zip(&model.w)
                    .map(|(&x, w)| f64::from(x) * w[c])
                    .sum::<f64>()
        })
    }

    /// Checks that every row of `group` is labelled by the argmax of `model`.
    fn assert_labels_follow(model: &DeviceModel, d: &Dataset, group: std::ops::Range<usize>) {
        for i in group {
            let row = d.x.row(i);
            let row = row.as_slice().expect("rows are contiguous");
            let l = logits(model, row);
            let max = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let y = d.y[i] as usize;
            // Summation order may differ from the generator's: allow rounding.
            assert!(
                l[y] >= max - 1e-9 * (1.0 + max.abs()),
                "row {i}: label {y} has logit {} but the max is {max}",
                l[y]
            );
        }
    }

    #[test]
    fn sizes_follow_lognormal_rule_and_split_rule() {
        for tf in [0.1, 0.25, 0.0, 0.999] {
            let c = SyntheticConfig {
                test_fraction: tf,
                ..cfg(1.0, 1.0, 200)
            };
            let s = fedprox_synthetic(&c, 11);
            let (tr, te) = (&s.train, &s.test);
            let (gtr, gte) = (tr.groups.as_ref().unwrap(), te.groups.as_ref().unwrap());
            assert_eq!((gtr.len(), gte.len()), (200, 200));
            let (mut next_tr, mut next_te) = (0, 0);
            for k in 0..200 {
                let n = device_model(&c, 11, k).n;
                assert!(n >= 50, "device {k} has {n} samples");
                assert_eq!(gtr[k].start, next_tr, "train groups contiguous, in order");
                assert_eq!(gte[k].start, next_te, "test groups contiguous, in order");
                assert_eq!(gtr[k].len() + gte[k].len(), n);
                let expected = (((1.0 - tf) * n as f64).floor() as usize).max(1);
                assert_eq!(gtr[k].len(), expected, "device {k}, n {n}, tf {tf}");
                next_tr = gtr[k].end;
                next_te = gte[k].end;
            }
            assert_eq!((next_tr, next_te), (tr.len(), te.len()));
            for d in [tr, te] {
                assert_eq!(d.x.dim(), (d.len(), SYNTHETIC_FEATURES));
                assert_eq!(d.num_classes, SYNTHETIC_CLASSES);
                assert!(d.y.iter().all(|&y| (y as usize) < SYNTHETIC_CLASSES));
            }
        }
    }

    #[test]
    fn reference_split_is_90_10() {
        // n = 50 -> 45/5, n = 123 -> 110/13 (Python's int(0.9 * n)).
        assert_eq!(train_count(50, 0.1), 45);
        assert_eq!(train_count(123, 0.1), 110);
        assert_eq!(train_count(50, 0.999), 1);
        assert_eq!(train_count(50, 0.0), 50);
    }

    #[test]
    fn device_parameters_have_the_paper_distributions() {
        let c = cfg(2.0, 3.0, 0);
        let k = 4000;
        let models: Vec<_> = (0..k).map(|d| device_model(&c, 5, d)).collect();
        let share = |f: &dyn Fn(&DeviceModel) -> bool| {
            models.iter().filter(|m| f(m)).count() as f64 / k as f64
        };
        // n - 50 = floor(exp(Y)), Y ~ N(4, 2): P(Y >= ln 55) = 0.4986,
        // P(Y >= ln 404) = 0.1583; binomial std <= 0.008.
        assert!((share(&|m| m.n - 50 >= 55) - 0.4986).abs() < 0.03);
        assert!((share(&|m| m.n - 50 >= 404) - 0.1583).abs() < 0.025);

        let sd = |v: Vec<f64>| {
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            (
                mean,
                (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt(),
            )
        };
        let (mu, su) = sd(models.iter().map(|m| m.u).collect());
        let (mb, sb) = sd(models.iter().map(|m| m.shift).collect());
        assert!(mu.abs() < 0.15 && (su - 2.0).abs() < 0.1, "u: {mu} ± {su}");
        assert!(mb.abs() < 0.2 && (sb - 3.0).abs() < 0.15, "B: {mb} ± {sb}");
        // v_k[j] - B_k, W_k - u_k and b_k - u_k are standard normal.
        let (m, s) = sd(models
            .iter()
            .flat_map(|m| m.v.map(|v| v - m.shift))
            .collect());
        assert!(m.abs() < 0.01 && (s - 1.0).abs() < 0.01, "v - B: {m} ± {s}");
        let (m, s) = sd(models
            .iter()
            .flat_map(|m| m.w.concat().into_iter().map(|w| w - m.u))
            .collect());
        assert!(m.abs() < 0.01 && (s - 1.0).abs() < 0.01, "W - u: {m} ± {s}");
        let (m, s) = sd(models.iter().flat_map(|m| m.b.map(|b| b - m.u)).collect());
        assert!(m.abs() < 0.02 && (s - 1.0).abs() < 0.02, "b - u: {m} ± {s}");
    }

    #[test]
    fn labels_are_the_argmax_of_each_devices_own_model() {
        let c = cfg(1.0, 1.0, 25);
        let s = fedprox_synthetic(&c, 2);
        for k in 0..25 {
            let model = device_model(&c, 2, k);
            assert_labels_follow(
                &model,
                &s.train,
                s.train.groups.as_ref().unwrap()[k].clone(),
            );
            assert_labels_follow(&model, &s.test, s.test.groups.as_ref().unwrap()[k].clone());
        }
        // ... and not of another device's model.
        let other = device_model(&c, 2, 1);
        let g = s.train.groups.as_ref().unwrap()[0].clone();
        let agree = g
            .clone()
            .filter(|&i| {
                let row = s.train.x.row(i);
                argmax(&logits(&other, row.as_slice().unwrap())) == s.train.y[i] as usize
            })
            .count();
        assert!(agree < g.len(), "device 0 labelled by device 1's model");
    }

    #[test]
    fn features_have_mean_v_and_variance_j_pow_minus_1_2() {
        let c = cfg(1.0, 1.0, 0);
        let (model, mut rng) = device_stream(&c, 9, 7, None);
        let n = 200_000;
        let mut x = vec![0f32; n * SYNTHETIC_FEATURES];
        let mut y = vec![0u32; n];
        fill_samples(&model, &feature_std(), &mut rng, &mut x, &mut y);
        for j in 0..SYNTHETIC_FEATURES {
            let col = x
                .iter()
                .skip(j)
                .step_by(SYNTHETIC_FEATURES)
                .map(|&v| f64::from(v));
            let (mut s1, mut s2) = (0.0, 0.0);
            for v in col {
                s1 += v;
                s2 += v * v;
            }
            let mean = s1 / n as f64;
            let var = s2 / n as f64 - mean * mean;
            let sigma2 = ((j + 1) as f64).powf(-1.2);
            assert!(
                (mean - model.v[j]).abs() < 5.0 * (sigma2 / n as f64).sqrt() + 1e-6,
                "feature {j}: mean {mean} vs v {}",
                model.v[j]
            );
            // Relative std of the variance estimate: sqrt(2/n) = 0.3 %.
            assert!(
                (var / sigma2 - 1.0).abs() < 0.02,
                "feature {j}: var {var} vs {sigma2}"
            );
        }
    }

    #[test]
    fn device_data_does_not_depend_on_the_device_count() {
        let small = fedprox_synthetic(&cfg(0.5, 0.5, 5), 42);
        let large = fedprox_synthetic(&cfg(0.5, 0.5, 50), 42);
        for k in 0..5 {
            let alone = fedprox_synthetic_device(&cfg(0.5, 0.5, 0), 42, k);
            for (a, b, single) in [
                (&small.train, &large.train, &alone.train),
                (&small.test, &large.test, &alone.test),
            ] {
                let (ga, gb) = (
                    a.groups.as_ref().unwrap()[k].clone(),
                    b.groups.as_ref().unwrap()[k].clone(),
                );
                assert_eq!(ga.len(), gb.len());
                assert_eq!(&a.y[ga.clone()], &b.y[gb.clone()]);
                assert_eq!(
                    a.x.slice(ndarray::s![ga.clone(), ..]),
                    b.x.slice(ndarray::s![gb, ..])
                );
                assert_eq!(&a.y[ga.clone()], &single.y[..]);
                assert_eq!(a.x.slice(ndarray::s![ga, ..]), single.x);
                let groups = single.groups.as_deref().unwrap();
                assert_eq!((groups.len(), groups[0].clone()), (1, 0..single.len()));
            }
        }
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let c = cfg(1.0, 1.0, 10);
        let (a, b, other) = (
            fedprox_synthetic(&c, 1),
            fedprox_synthetic(&c, 1),
            fedprox_synthetic(&c, 2),
        );
        assert_eq!(a.train.x, b.train.x);
        assert_eq!(a.train.y, b.train.y);
        assert_eq!(a.test.x, b.test.x);
        assert_eq!(a.train.groups, b.train.groups);
        assert_ne!(a.train.groups, other.train.groups);
        let m = a.train.len().min(other.train.len());
        assert_ne!(
            a.train.x.slice(ndarray::s![..m, ..]),
            other.train.x.slice(ndarray::s![..m, ..])
        );
    }

    #[test]
    fn iid_variant_uses_one_shared_model_and_centred_features() {
        let c = SyntheticConfig {
            iid: true,
            ..cfg(3.0, 3.0, 40)
        };
        let s = fedprox_synthetic(&c, 8);
        let (w, b) = shared_iid_model(8);
        for k in 0..40 {
            let model = device_model(&c, 8, k);
            assert_eq!(
                (model.w, model.b, model.v),
                (w, b, [0.0; SYNTHETIC_FEATURES])
            );
            assert_labels_follow(
                &model,
                &s.train,
                s.train.groups.as_ref().unwrap()[k].clone(),
            );
            assert_labels_follow(&model, &s.test, s.test.groups.as_ref().unwrap()[k].clone());
        }
        // x ~ N(0, Σ): feature 1 (variance 1) has mean ≈ 0 over all samples.
        let n = s.train.len() as f64;
        let mean = s
            .train
            .x
            .column(0)
            .iter()
            .map(|&v| f64::from(v))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 5.0 / n.sqrt(), "mean of feature 1: {mean}");
        // Devices share one label distribution: far less skew than non-IID.
        let non_iid = fedprox_synthetic(&cfg(0.0, 0.0, 40), 8);
        assert!(mean_tv(&s.train) < 0.4, "iid tv {}", mean_tv(&s.train));
        assert!(mean_tv(&s.train) + 0.3 < mean_tv(&non_iid.train));
    }

    #[test]
    fn larger_alpha_beta_give_more_label_heterogeneity() {
        // Even Synthetic(0,0) is strongly non-IID (each device has its own
        // model); larger β concentrates each device on fewer labels.
        let low = fedprox_synthetic(&cfg(0.0, 0.0, 300), 1);
        let high = fedprox_synthetic(&cfg(10.0, 10.0, 300), 1);
        let (tl, th) = (mean_tv(&low.train), mean_tv(&high.train));
        let (ml, mh) = (
            mean_majority_share(&low.train),
            mean_majority_share(&high.train),
        );
        assert!(th > tl + 0.01, "mean TV: (0,0) {tl}, (10,10) {th}");
        assert!(mh > ml + 0.08, "majority share: (0,0) {ml}, (10,10) {mh}");
    }

    #[test]
    fn alpha_alone_does_not_change_features_or_labels() {
        // u_k shifts every logit of a sample by u_k (Σ x_j + 1): the argmax is
        // unchanged (up to rounding on near ties).
        let a = fedprox_synthetic(&cfg(0.0, 1.0, 30), 4);
        let b = fedprox_synthetic(&cfg(5.0, 1.0, 30), 4);
        assert_eq!(a.train.x, b.train.x);
        let same = a
            .train
            .y
            .iter()
            .zip(&b.train.y)
            .filter(|(p, q)| p == q)
            .count();
        assert!(same as f64 >= 0.999 * a.train.len() as f64);
    }

    #[test]
    fn mixture_shapes_labels_and_determinism() {
        let c = MixtureConfig {
            samples: 3000,
            test_samples: 700,
            features: 7,
            classes: 4,
            separation: 3.0,
            noise: 0.5,
        };
        let s = gaussian_mixture(&c, 1);
        assert_eq!(s.train.x.dim(), (3000, 7));
        assert_eq!(s.test.x.dim(), (700, 7));
        for d in [&s.train, &s.test] {
            assert_eq!(d.num_classes, 4);
            assert!(d.groups.is_none());
            assert!(d.y.iter().all(|&y| y < 4));
        }
        // Labels uniform: each class ≈ 750 ± 5σ (σ ≈ 24).
        for c in 0..4 {
            let count = s.train.y.iter().filter(|&&y| y == c).count();
            assert!((count as f64 - 750.0).abs() < 120.0, "class {c}: {count}");
        }
        let again = gaussian_mixture(&c, 1);
        assert_eq!((&s.train.x, &s.train.y), (&again.train.x, &again.train.y));
        assert_ne!(s.train.x, gaussian_mixture(&c, 2).train.x);
        // The test set does not depend on the training-set size.
        let fewer = gaussian_mixture(
            &MixtureConfig {
                samples: 10,
                ..c.clone()
            },
            1,
        );
        assert_eq!((&s.test.x, &s.test.y), (&fewer.test.x, &fewer.test.y));
    }

    /// Class means estimated on `d`.
    fn class_means(d: &Dataset) -> Array2<f64> {
        let mut m = Array2::<f64>::zeros((d.num_classes, d.dim()));
        let mut n = vec![0.0; d.num_classes];
        for (row, &y) in d.x.rows().into_iter().zip(&d.y) {
            n[y as usize] += 1.0;
            for (a, &b) in m.row_mut(y as usize).iter_mut().zip(row) {
                *a += f64::from(b);
            }
        }
        for (mut row, n) in m.rows_mut().into_iter().zip(n) {
            row /= n;
        }
        m
    }

    fn nearest_mean_accuracy(s: &DataSplit) -> f64 {
        let means = class_means(&s.train);
        let correct = s
            .test
            .x
            .rows()
            .into_iter()
            .zip(&s.test.y)
            .filter(|(row, y)| {
                let d2: Vec<f64> = means
                    .rows()
                    .into_iter()
                    .map(|m| {
                        -m.iter()
                            .zip(row)
                            .map(|(a, &b)| (a - f64::from(b)).powi(2))
                            .sum::<f64>()
                    })
                    .collect();
                argmax(&d2) == **y as usize
            })
            .count();
        correct as f64 / s.test.len() as f64
    }

    #[test]
    fn mixture_separation_controls_accuracy_and_mean_distance() {
        let base = MixtureConfig::default(); // 10 classes, 20 features, noise 1
        let far = gaussian_mixture(
            &MixtureConfig {
                separation: 10.0,
                ..base.clone()
            },
            3,
        );
        let none = gaussian_mixture(
            &MixtureConfig {
                separation: 0.0,
                ..base.clone()
            },
            3,
        );
        let (acc_far, acc_none) = (nearest_mean_accuracy(&far), nearest_mean_accuracy(&none));
        assert!(acc_far > 0.95, "separation 10: accuracy {acc_far}");
        assert!(
            acc_none < 0.16,
            "separation 0: accuracy {acc_none} (chance 0.1)"
        );

        // RMS distance between estimated means ≈ separation; noise ≈ 1.
        let c = MixtureConfig {
            features: 400,
            separation: 6.0,
            samples: 20_000,
            ..base
        };
        let s = gaussian_mixture(&c, 5);
        let m = class_means(&s.train);
        let (mut sum, mut pairs) = (0.0, 0.0);
        for a in 0..10 {
            for b in a + 1..10 {
                sum += (&m.row(a) - &m.row(b)).mapv(|v| v * v).sum();
                pairs += 1.0;
            }
        }
        let rms = (sum / pairs).sqrt();
        assert!((rms - 6.0).abs() < 0.6, "rms distance between means {rms}");
        let resid: f64 = s
            .train
            .x
            .rows()
            .into_iter()
            .zip(&s.train.y)
            .map(|(row, &y)| {
                m.row(y as usize)
                    .iter()
                    .zip(row)
                    .map(|(a, &b)| (a - f64::from(b)).powi(2))
                    .sum::<f64>()
            })
            .sum();
        let noise = (resid / (s.train.len() * 400) as f64).sqrt();
        assert!((noise - 1.0).abs() < 0.02, "noise std {noise}");
    }

    #[test]
    fn thousand_devices_are_fast() {
        let t = std::time::Instant::now();
        let s = fedprox_synthetic(&cfg(1.0, 1.0, 1000), 3);
        let elapsed = t.elapsed();
        assert_eq!(s.train.groups.as_ref().unwrap().len(), 1000);
        // ≈ 0.25 s in release on the 2-core machines; generous for debug/CI.
        assert!(
            elapsed.as_secs_f64() < 5.0,
            "{} samples took {elapsed:?}",
            s.train.len() + s.test.len()
        );
    }
}
