//! `Z += A · W` for minibatch-sized `A` without packing, bit-identical to
//! the GEMM it replaces.
//!
//! matrixmultiply (behind `ndarray::linalg::general_mat_mul`) copies ("packs")
//! both operands before every product; with a handful of rows, packing all
//! of `W` costs about as much as the product itself. This kernel reads `W` in
//! place (its rows are already contiguous) in register tiles of 4 rows × 16
//! columns.
//!
//! Bit-identity: matrixmultiply's FMA kernels compute each element as a
//! chain `acc = fma(a_k, w_k, acc)` from `acc = 0` over blocks of
//! [`KC`] = 256 consecutive `k`, then add each block's `acc` to `C` in block
//! order. This kernel does exactly that, so results are equal bit for bit
//! (checked by the tests against `general_mat_mul`). It is used only where
//! matrixmultiply uses such a kernel: x86-64 with AVX2 and FMA; elsewhere
//! [`add_product`] returns `false` and the caller uses the GEMM.

/// matrixmultiply's f32 `k` blocking (`S_KC`, 256 unless it was built with
/// the `MATMUL_SGEMM_KC` variable set).
const KC: usize = 256;

/// `z (rows × n) += a (rows × k) · w (k × n)`, all row-major and contiguous.
/// Returns `false`, without touching `z`, when the CPU lacks AVX2/FMA.
pub(crate) fn add_product(
    a: &[f32],
    w: &[f32],
    z: &mut [f32],
    rows: usize,
    k: usize,
    n: usize,
) -> bool {
    assert!(a.len() >= rows * k && w.len() >= k * n && z.len() >= rows * n);
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features the function is compiled for were
            // detected, and the slices were checked to be long enough.
            unsafe { x86::add_product(a, w, z, rows, k, n) };
            return true;
        }
    }
    let _ = (a, w, z, rows, k, n);
    false
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::KC;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn add_product(
        a: &[f32],
        w: &[f32],
        z: &mut [f32],
        rows: usize,
        k: usize,
        n: usize,
    ) {
        let mut kb = 0;
        while kb < k {
            let ke = (kb + KC).min(k);
            let mut r = 0;
            while r < rows {
                match rows - r {
                    1 => unsafe { block::<1>(a, w, z, r, kb, ke, k, n) },
                    2 => unsafe { block::<2>(a, w, z, r, kb, ke, k, n) },
                    3 => unsafe { block::<3>(a, w, z, r, kb, ke, k, n) },
                    _ => unsafe { block::<4>(a, w, z, r, kb, ke, k, n) },
                }
                r += 4;
            }
            kb = ke;
        }
    }

    /// Rows `r..r+R`, inner indices `kb..ke`, all columns.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block<const R: usize>(
        a: &[f32],
        w: &[f32],
        z: &mut [f32],
        r: usize,
        kb: usize,
        ke: usize,
        k: usize,
        n: usize,
    ) {
        let ap = a.as_ptr();
        let wp = w.as_ptr();
        let zp = z.as_mut_ptr();
        let mut j = 0;
        while j + 16 <= n {
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            for kk in kb..ke {
                // SAFETY (all pointer reads below): kk < k, j + 16 <= n and
                // r + R <= rows, within the lengths checked by the caller.
                let w0 = unsafe { _mm256_loadu_ps(wp.add(kk * n + j)) };
                let w1 = unsafe { _mm256_loadu_ps(wp.add(kk * n + j + 8)) };
                for (i, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_ps(unsafe { *ap.add((r + i) * k + kk) });
                    acc[0] = _mm256_fmadd_ps(x, w0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(x, w1, acc[1]);
                }
            }
            for (i, acc) in acc.iter().enumerate() {
                unsafe {
                    let c = zp.add((r + i) * n + j);
                    _mm256_storeu_ps(c, _mm256_add_ps(_mm256_loadu_ps(c), acc[0]));
                    _mm256_storeu_ps(c.add(8), _mm256_add_ps(_mm256_loadu_ps(c.add(8)), acc[1]));
                }
            }
            j += 16;
        }
        if j + 8 <= n {
            let mut acc = [_mm256_setzero_ps(); R];
            for kk in kb..ke {
                let w0 = unsafe { _mm256_loadu_ps(wp.add(kk * n + j)) };
                for (i, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_ps(unsafe { *ap.add((r + i) * k + kk) });
                    *acc = _mm256_fmadd_ps(x, w0, *acc);
                }
            }
            for (i, acc) in acc.iter().enumerate() {
                unsafe {
                    let c = zp.add((r + i) * n + j);
                    _mm256_storeu_ps(c, _mm256_add_ps(_mm256_loadu_ps(c), *acc));
                }
            }
            j += 8;
        }
        for jj in j..n {
            for i in 0..R {
                let mut acc = 0.0f32;
                for kk in kb..ke {
                    acc = a[(r + i) * k + kk].mul_add(w[kk * n + jj], acc);
                }
                z[(r + i) * n + jj] += acc;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use ndarray::linalg::general_mat_mul;
    use ndarray::{ArrayView2, ArrayViewMut2};
    use rand::{RngExt, SeedableRng};

    /// Equal bit for bit to `general_mat_mul(1, A, W, 1, Z)` over shapes
    /// with every row and column remainder and more than one `k` block.
    #[test]
    fn matches_matrixmultiply_bitwise() {
        let mut rng = Rng::seed_from_u64(5);
        for &(rows, k, n) in &[
            (1, 3, 1),
            (10, 60, 64),
            (7, 784, 200),
            (6, 784, 10),
            (20, 513, 37),
            (33, 256, 25),
            (5, 257, 8),
        ] {
            let mut v = |len: usize| -> Vec<f32> {
                (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
            };
            let (a, w, z0) = (v(rows * k), v(k * n), v(rows * n));
            let mut z = z0.clone();
            if !add_product(&a, &w, &mut z, rows, k, n) {
                return; // no AVX2/FMA: the GEMM is used instead
            }
            let mut r = z0.clone();
            let av = ArrayView2::from_shape((rows, k), &a[..]).unwrap();
            let wv = ArrayView2::from_shape((k, n), &w[..]).unwrap();
            let mut rv = ArrayViewMut2::from_shape((rows, n), &mut r[..]).unwrap();
            general_mat_mul(1.0, &av, &wv, 1.0, &mut rv);
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&z), bits(&r), "shape {rows}×{k}·{k}×{n}");
        }
    }
}
