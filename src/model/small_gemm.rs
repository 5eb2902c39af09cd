//! Unpacked matrix kernels for minibatch-sized products, bit-identical to
//! the GEMM they replace.
//!
//! matrixmultiply (behind `ndarray::linalg::general_mat_mul`) copies ("packs")
//! both operands before every product, into buffers it allocates per call;
//! with a handful of rows, packing all of `W` costs about as much as the
//! product itself. These kernels read their operands in place, in register
//! tiles of up to 6 rows × 16 columns (the last columns of a row under a
//! lane mask, so any width works):
//!
//! * [`add_product`]: `Z += A · W` (the forward pass);
//! * [`a_bt`]: `G · Wᵀ` for a `G` of few rows (a layer's input delta),
//!   with the rows in vector lanes and the result transposed;
//! * [`at_b`]: rows `i0..i0+m` of `Aᵀ · G` for an `A` of few rows (a weight
//!   gradient), either stored or applied at once as a plain SGD step
//!   `W ← W − lr·(Aᵀ G)`, so the gradient of a large layer never leaves
//!   the registers.
//!
//! Bit-identity: matrixmultiply's FMA kernels compute each element as a
//! chain `acc = fma(a_k, w_k, acc)` from `acc = 0` over blocks of [`KC`] =
//! 256 consecutive `k`, then add each block's `acc` to `C` in block order
//! (`C = acc` for the first block when `β = 0`). These kernels do exactly
//! that, one lane per output element, so results are equal bit for bit
//! whatever the tile shape or lane mask (checked by the tests against
//! `general_mat_mul`). They run only where matrixmultiply uses such
//! kernels: x86-64 with AVX2 and FMA; elsewhere the functions return
//! `false` and the caller uses the GEMM.

/// matrixmultiply's f32 `k` blocking (`S_KC`, 256 unless it was built with
/// the `MATMUL_SGEMM_KC` variable set).
pub(crate) const KC: usize = 256;

/// Rows of a gathered [`Rows`] whose start pointers the kernels resolve at
/// once, into a table on the stack, before their loops (a minibatch of
/// `dense::SMALL_ROWS`): the inner loops then read a row's start from the
/// table instead of forming it from its index.
const PTR_TABLE: usize = 64;

/// True when the kernels can run on this CPU (x86-64 with AVX2 and FMA).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The left operand of [`add_product`] and [`at_b`], read in place: a
/// `rows × cols` matrix that is either contiguous and row-major, or a list
/// of rows of a larger row-major matrix (a minibatch read through its row
/// indices, so its rows are never copied). The kernels read the same
/// elements in the same order either way, so the results are the same bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rows<'a> {
    /// Row-major storage, `cols` floats a row.
    data: &'a [f32],
    /// Row width.
    cols: usize,
    /// Rows of `data` in order (`None`: rows `0..rows`).
    idx: Option<&'a [u32]>,
    /// Row count.
    rows: usize,
}

impl<'a> Rows<'a> {
    /// The first `rows` rows of the row-major `data`, `cols` wide.
    ///
    /// # Panics
    /// If `data` is shorter than `rows × cols`.
    pub(crate) fn dense(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "Rows::dense: data too short");
        Self {
            data,
            cols,
            idx: None,
            rows,
        }
    }

    /// Rows `idx[0], idx[1], …` of the row-major `data` (`cols` wide, at
    /// least 1).
    ///
    /// # Panics
    /// If `cols` is 0 or an index is out of range.
    pub(crate) fn gather(data: &'a [f32], cols: usize, idx: &'a [u32]) -> Self {
        assert!(cols > 0, "Rows::gather: zero-width rows");
        let have = data.len() / cols;
        assert!(
            idx.iter().all(|&r| (r as usize) < have),
            "Rows::gather: row index out of range ({have} rows)"
        );
        Self {
            data,
            cols,
            idx: Some(idx),
            rows: idx.len(),
        }
    }

    /// Number of rows.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }
}

/// `z (rows × n) += a (rows × k) · w (k × n)`, `w` and `z` row-major and
/// contiguous, `rows` and `k` those of `a`.
/// Returns `false`, without touching `z`, when the CPU lacks AVX2/FMA.
///
/// # Panics
/// If a slice is shorter than its shape.
pub(crate) fn add_product(a: Rows<'_>, w: &[f32], z: &mut [f32], n: usize) -> bool {
    let (rows, k) = (a.rows, a.cols);
    assert!(w.len() >= k * n && z.len() >= rows * n);
    if !available() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the features the function is compiled for were detected, the
    // slices were checked to be long enough, and `a`'s rows lie inside its
    // storage (checked when it was made).
    unsafe {
        match a.idx {
            None => x86::add_product(x86::Strided::of(&a), w, z, rows, k, n),
            // Rows are independent: a table of row pointers per chunk.
            Some(idx) => {
                let mut table = [std::ptr::null(); PTR_TABLE];
                for (c, idx) in idx.chunks(PTR_TABLE).enumerate() {
                    let src = x86::Ptrs::of(&a, idx, &mut table);
                    let z = &mut z[c * PTR_TABLE * n..];
                    x86::add_product(src, w, z, idx.len(), k, n);
                }
            }
        }
    };
    true
}

/// What [`at_b`] does with each computed element `g` of `Aᵀ·G`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Epilogue<'a> {
    /// `out = g`.
    Store,
    /// `out = out − lr·g` (the multiply and the subtraction rounded
    /// separately, as `w - lr * g` in Rust): a plain SGD step on `out`.
    Sgd(f32),
    /// `out = from − lr·g`, `from` laid out as `out` (`m × n`): the plain
    /// SGD step from parameters held elsewhere (the contents of `out` are
    /// ignored).
    SgdFrom(f32, &'a [f32]),
}

/// Rows `i0..i0 + m` of `Aᵀ · G` (`din × n`), where `a` is `rows × din` and
/// `g` is `rows × n` (row-major and contiguous); `out` (`m × n`,
/// row-major) receives them as `epilogue` says. Each element is the chain
/// `fma(a[r][i], g[r][j], ·)` over `r = 0..rows` from 0, as the GEMM
/// computes `general_mat_mul(1, Aᵀ, G, 0, ·)` when `rows ≤ KC`.
/// Returns `false`, without touching `out`, when the CPU lacks AVX2/FMA.
///
/// # Panics
/// If `rows > KC` (the GEMM would split the chain) or a slice is shorter
/// than its shape, or `i0 + m > din`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn at_b(
    a: Rows<'_>,
    g: &[f32],
    out: &mut [f32],
    n: usize,
    i0: usize,
    m: usize,
    epilogue: Epilogue<'_>,
) -> bool {
    let (rows, din) = (a.rows, a.cols);
    assert!(rows <= KC, "at_b: {rows} rows would be split into k blocks");
    assert!(i0 + m <= din && g.len() >= rows * n);
    assert!(out.len() >= m * n);
    if let Epilogue::SgdFrom(_, from) = epilogue {
        assert!(from.len() >= m * n, "at_b: source parameters too short");
    }
    if !available() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `add_product`; the asserts bound every index the kernel
    // forms.
    unsafe {
        match a.idx {
            None => x86::at_b(x86::Strided::of(&a), g, out, rows, n, i0, m, epilogue),
            Some(idx) if idx.len() <= PTR_TABLE => {
                let mut table = [std::ptr::null(); PTR_TABLE];
                let src = x86::Ptrs::of(&a, idx, &mut table);
                x86::at_b(src, g, out, rows, n, i0, m, epilogue)
            }
            Some(idx) => {
                let mut table = vec![std::ptr::null(); idx.len()];
                let src = x86::Ptrs::of(&a, idx, &mut table);
                x86::at_b(src, g, out, rows, n, i0, m, epilogue)
            }
        }
    };
    true
}

/// `Tᵀ` for `T = G · Wᵀ` (the delta carried back through a layer's
/// weights) for a `G` of few rows, with rows in vector lanes: `gt` is `Gᵀ`
/// (`dout × rp`, row-major, `rp` a multiple of 8 at least the row count;
/// padding lanes may hold anything), `w` is `din × dout` row-major, and
/// `tt` (`din × rp`) receives `tt[i·rp + r] = Σ_j g[r][j]·w[i][j]` (lanes
/// past the row count are left holding unspecified values). Each element is
/// the GEMM's chain for `general_mat_mul(1, G, Wᵀ, 0, ·)`: `fma` over `j`
/// ascending from 0 in blocks of [`KC`], the blocks' sums added in order.
/// Returns `false`, without touching `tt`, when the CPU lacks AVX2/FMA.
///
/// # Panics
/// If `rp` is not a positive multiple of 8 or a slice is shorter than its
/// shape.
pub(crate) fn a_bt(
    gt: &[f32],
    w: &[f32],
    tt: &mut [f32],
    rp: usize,
    din: usize,
    dout: usize,
) -> bool {
    assert!(
        rp > 0 && rp.is_multiple_of(8),
        "a_bt: lane count {rp} is not a multiple of 8"
    );
    assert!(gt.len() >= dout * rp && w.len() >= din * dout && tt.len() >= din * rp);
    if !available() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `add_product`.
    unsafe {
        x86::a_bt(gt, w, tt, rp, din, dout)
    };
    true
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Epilogue, KC, Rows};
    use std::arch::x86_64::*;

    /// Where the rows of a kernel's left operand start.
    pub(super) trait RowSrc: Copy {
        /// Rows `r..r + R` from column `kb` on, as a tile's left operand.
        type Tile<const R: usize>: TileSrc;

        /// Pointer to the first element of row `r`.
        ///
        /// # Safety
        /// `r` must be less than the operand's row count.
        unsafe fn row(self, r: usize) -> *const f32;

        /// The tile source for rows `r..r + R`, columns `kb..`.
        ///
        /// # Safety
        /// Rows `r..r + R` must exist.
        unsafe fn tile<const R: usize>(self, r: usize, kb: usize) -> Self::Tile<R>;
    }

    /// Contiguous rows, `stride` floats apart.
    #[derive(Clone, Copy)]
    pub(super) struct Strided {
        base: *const f32,
        stride: usize,
    }

    impl Strided {
        /// The rows of a contiguous [`Rows`].
        pub(super) fn of(a: &Rows<'_>) -> Self {
            Self {
                base: a.data.as_ptr(),
                stride: a.cols,
            }
        }
    }

    impl RowSrc for Strided {
        type Tile<const R: usize> = StridedTile;

        #[inline(always)]
        unsafe fn row(self, r: usize) -> *const f32 {
            // SAFETY: r < rows, and rows·cols floats lie inside the data
            // (`Rows::dense` checked).
            unsafe { self.base.add(r * self.stride) }
        }

        #[inline(always)]
        unsafe fn tile<const R: usize>(self, r: usize, kb: usize) -> StridedTile {
            StridedTile {
                // SAFETY: as `row`.
                x: unsafe { self.row(r).add(kb) },
                stride: self.stride,
            }
        }
    }

    /// Rows `stride` floats apart from `x` (for `A · W` on a contiguous
    /// `A`): element `(i, kk)` is `x[i·stride + kk]`.
    #[derive(Clone, Copy)]
    pub(super) struct StridedTile {
        x: *const f32,
        stride: usize,
    }

    impl TileSrc for StridedTile {
        #[inline(always)]
        unsafe fn at(self, i: usize, kk: usize) -> *const f32 {
            // SAFETY: inside the tile, by the caller's contract.
            unsafe { self.x.add(i * self.stride + kk) }
        }
    }

    /// Rows through a table of their start pointers, resolved once per
    /// kernel call.
    #[derive(Clone, Copy)]
    pub(super) struct Ptrs {
        table: *const *const f32,
    }

    impl Ptrs {
        /// Fills `table[..idx.len()]` with the starts of the rows `idx` of
        /// the gathered `a`; the result reads them from `table`, which must
        /// outlive its use.
        ///
        /// # Panics
        /// If `table` is shorter than `idx`.
        pub(super) fn of(a: &Rows<'_>, idx: &[u32], table: &mut [*const f32]) -> Self {
            assert!(table.len() >= idx.len(), "row pointer table too short");
            let base = a.data.as_ptr();
            for (t, &r) in table.iter_mut().zip(idx) {
                // SAFETY: every index names a row inside the data
                // (`Rows::gather` checked).
                *t = unsafe { base.add(r as usize * a.cols) };
            }
            Self {
                table: table.as_ptr(),
            }
        }
    }

    impl RowSrc for Ptrs {
        type Tile<const R: usize> = RowPtrs<R>;

        #[inline(always)]
        unsafe fn row(self, r: usize) -> *const f32 {
            // SAFETY: r < rows, whose pointers the table holds.
            unsafe { *self.table.add(r) }
        }

        #[inline(always)]
        unsafe fn tile<const R: usize>(self, r: usize, kb: usize) -> RowPtrs<R> {
            // SAFETY: rows r..r+R exist, by the caller's contract.
            RowPtrs(std::array::from_fn(|i| unsafe { self.row(r + i).add(kb) }))
        }
    }

    /// Element `(i, kk)` of the left operand of a tile's product (`i` the
    /// tile row, `kk` the position along the chain).
    pub(super) trait TileSrc: Copy {
        /// # Safety
        /// `i` and `kk` must be inside the tile the source was made for.
        unsafe fn at(self, i: usize, kk: usize) -> *const f32;
    }

    /// `R` rows of `A` (for `A · W`): element `(i, kk)` is `rows[i][kk]`.
    #[derive(Clone, Copy)]
    pub(super) struct RowPtrs<const R: usize>([*const f32; R]);

    impl<const R: usize> TileSrc for RowPtrs<R> {
        #[inline(always)]
        unsafe fn at(self, i: usize, kk: usize) -> *const f32 {
            // SAFETY: inside the tile, by the caller's contract.
            unsafe { self.0[i].add(kk) }
        }
    }

    /// Columns `col..` of `A` (for `Aᵀ · G`): element `(i, kk)` is
    /// `A[kk][col + i]`.
    #[derive(Clone, Copy)]
    struct ColsOf<S> {
        src: S,
        col: usize,
    }

    impl<S: RowSrc> TileSrc for ColsOf<S> {
        #[inline(always)]
        unsafe fn at(self, i: usize, kk: usize) -> *const f32 {
            // SAFETY: inside the tile, by the caller's contract.
            unsafe { self.src.row(kk).add(self.col + i) }
        }
    }

    /// Rows of a register tile (12 accumulators in two-vector tiles) for
    /// rows of width `n`: 5 when the row ends in a two-vector tile under a
    /// lane mask, whose mask needs one of the 16 vector registers.
    fn max_rows(n: usize) -> usize {
        if n % 16 > 8 { 5 } else { 6 }
    }

    /// A lane mask with the first `len` (1..=8) lanes set.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn lane_mask(len: usize) -> __m256i {
        const M: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
        // SAFETY: 8 - len ∈ 0..8, so the 8 loaded lanes lie inside M.
        unsafe { _mm256_loadu_si256(M.as_ptr().add(8 - len).cast()) }
    }

    /// The inner product of a tile: for `i < R` and `V` vectors of 8
    /// columns (the last one under `mask` when `MASKED`),
    /// `acc[i][v] = chain over kk < kn of fma(*x.at(i, kk), y[kk·ys + 8v + lane])`
    /// starting from 0.
    ///
    /// # Safety
    /// AVX2 and FMA must be available, and every `x` and `y` element named
    /// above (for unmasked lanes) must be readable.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tile<const R: usize, const V: usize, const MASKED: bool, X: TileSrc>(
        x: X,
        y: *const f32,
        ys: usize,
        kn: usize,
        mask: __m256i,
    ) -> [[__m256; V]; R] {
        let mut acc = [[_mm256_setzero_ps(); V]; R];
        for kk in 0..kn {
            let mut yv = [_mm256_setzero_ps(); V];
            for (v, yv) in yv.iter_mut().enumerate() {
                // SAFETY: readable by the caller's contract.
                let p = unsafe { y.add(kk * ys + 8 * v) };
                *yv = if MASKED && v == V - 1 {
                    unsafe { _mm256_maskload_ps(p, mask) }
                } else {
                    unsafe { _mm256_loadu_ps(p) }
                };
            }
            for (i, acc) in acc.iter_mut().enumerate() {
                // SAFETY: readable by the caller's contract.
                let xv = _mm256_set1_ps(unsafe { *x.at(i, kk) });
                for (a, yv) in acc.iter_mut().zip(&yv) {
                    *a = _mm256_fmadd_ps(xv, *yv, *a);
                }
            }
        }
        acc
    }

    /// Loads 8 floats at `p` (the first `mask` lanes when `masked`).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn load(p: *const f32, masked: bool, mask: __m256i) -> __m256 {
        // SAFETY: the caller guarantees the (unmasked) lanes are readable.
        unsafe {
            if masked {
                _mm256_maskload_ps(p, mask)
            } else {
                _mm256_loadu_ps(p)
            }
        }
    }

    /// Stores 8 floats at `p` (the first `mask` lanes when `masked`).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn store(p: *mut f32, v: __m256, masked: bool, mask: __m256i) {
        // SAFETY: the caller guarantees the (unmasked) lanes are writable.
        unsafe {
            if masked {
                _mm256_maskstore_ps(p, mask, v)
            } else {
                _mm256_storeu_ps(p, v)
            }
        }
    }

    /// Calls `$body` with the column tiles of a row of width `$n`:
    /// `($j, V, MASKED, mask)` for 16-column tiles, then one tile for the
    /// last `n % 16` columns: two vectors (the second under the mask) when
    /// more than 8 are left, else one (masked unless exactly 8). Keeping
    /// the tail in one tile shares each broadcast of the other operand
    /// between its two vectors (a 10-class head is one tile).
    macro_rules! column_tiles {
        ($n:expr, |$j:ident, $v:ident, $masked:ident, $mask:ident| $body:block) => {{
            let n = $n;
            let mut $j = 0;
            while $j + 16 <= n {
                const $v: usize = 2;
                const $masked: bool = false;
                let $mask = lane_mask(8);
                $body
                $j += 16;
            }
            let rem = n - $j;
            if rem > 8 {
                const $v: usize = 2;
                const $masked: bool = true;
                let $mask = lane_mask(rem - 8);
                $body
            } else if rem == 8 {
                const $v: usize = 1;
                const $masked: bool = false;
                let $mask = lane_mask(8);
                $body
            } else if rem > 0 {
                const $v: usize = 1;
                const $masked: bool = true;
                let $mask = lane_mask(rem);
                $body
            }
        }};
    }

    /// Calls `$body` with `($r, R)` for row tiles of `$max` (≤ 6) rows,
    /// then the remainder.
    macro_rules! row_tiles {
        ($rows:expr, $max:expr, |$r:ident, $R:ident| $body:block) => {{
            let (rows, max) = ($rows, $max);
            let mut $r = 0;
            while $r < rows {
                let left = (rows - $r).min(max);
                match left {
                    1 => {
                        const $R: usize = 1;
                        $body
                    }
                    2 => {
                        const $R: usize = 2;
                        $body
                    }
                    3 => {
                        const $R: usize = 3;
                        $body
                    }
                    4 => {
                        const $R: usize = 4;
                        $body
                    }
                    5 => {
                        const $R: usize = 5;
                        $body
                    }
                    _ => {
                        const $R: usize = 6;
                        $body
                    }
                }
                $r += left;
            }
        }};
    }

    /// See [`super::add_product`].
    ///
    /// # Safety
    /// AVX2 and FMA available; `a` has `rows` rows of `k` readable floats;
    /// `w`, `z` at least `k·n`, `rows·n` long.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn add_product<S: RowSrc>(
        a: S,
        w: &[f32],
        z: &mut [f32],
        rows: usize,
        k: usize,
        n: usize,
    ) {
        let (wp, zp) = (w.as_ptr(), z.as_mut_ptr());
        let mut kb = 0;
        while kb < k {
            let ke = (kb + KC).min(k);
            row_tiles!(rows, max_rows(n), |r, R| {
                // SAFETY: rows r..r+R, k indices kb..ke and the columns of
                // each tile lie inside the operands (checked by the
                // caller); masked lanes are not accessed.
                unsafe {
                    let x = a.tile::<R>(r, kb);
                    add_rows::<R, _>(x, wp.add(kb * n), zp.add(r * n), ke - kb, n)
                };
            });
            kb = ke;
        }
    }

    /// `z[i][·] += Σ_kk x[i][kk] · y[kk][·]` for `i < R`, all columns.
    ///
    /// # Safety
    /// As [`add_product`] for the sub-blocks the pointers start.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn add_rows<const R: usize, X: TileSrc>(
        x: X,
        y: *const f32,
        z: *mut f32,
        kn: usize,
        n: usize,
    ) {
        column_tiles!(n, |j, V, MASKED, mask| {
            // SAFETY: inside the blocks described by the caller.
            unsafe {
                let acc = tile::<R, V, MASKED, _>(x, y.add(j), n, kn, mask);
                for (i, acc) in acc.iter().enumerate() {
                    for (v, acc) in acc.iter().enumerate() {
                        let m = MASKED && v == V - 1;
                        let c = z.add(i * n + j + 8 * v);
                        store(c, _mm256_add_ps(load(c, m, mask), *acc), m, mask);
                    }
                }
            }
        });
    }

    /// See [`super::at_b`].
    ///
    /// # Safety
    /// AVX2 and FMA available; the shape conditions asserted by
    /// [`super::at_b`] hold.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn at_b<S: RowSrc>(
        a: S,
        g: &[f32],
        out: &mut [f32],
        rows: usize,
        n: usize,
        i0: usize,
        m: usize,
        epilogue: Epilogue<'_>,
    ) {
        let (gp, op) = (g.as_ptr(), out.as_mut_ptr());
        row_tiles!(m, max_rows(n), |r, R| {
            // SAFETY: output rows r..r+R < m, A columns i0+r..i0+r+R < din,
            // all rows < `rows` of A and G, and `from` as long as `out`
            // (checked by the caller).
            unsafe {
                let x = ColsOf {
                    src: a,
                    col: i0 + r,
                };
                let o = op.add(r * n);
                // One call of each instance, so that it is inlined.
                let (sgd, f, lr) = match epilogue {
                    Epilogue::Store => (false, o.cast_const(), 0.0),
                    Epilogue::Sgd(lr) => (true, o.cast_const(), lr),
                    Epilogue::SgdFrom(lr, from) => (true, from.as_ptr().add(r * n), lr),
                };
                if sgd {
                    at_b_rows::<R, true, _>(x, gp, f, o, rows, n, lr)
                } else {
                    at_b_rows::<R, false, _>(x, gp, f, o, rows, n, lr)
                }
            }
        });
    }

    /// `R` rows of `Aᵀ·G` starting at column `x.col` of `A`, written to `o`
    /// (row stride `n`): stored, or with `SGD` applied as `o = f − lr·g`
    /// (`f` laid out as `o`, and may be `o`).
    ///
    /// # Safety
    /// As [`at_b`] for the sub-block the pointers start.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn at_b_rows<const R: usize, const SGD: bool, S: RowSrc>(
        x: ColsOf<S>,
        g: *const f32,
        f: *const f32,
        o: *mut f32,
        rows: usize,
        n: usize,
        lr: f32,
    ) {
        let lrv = _mm256_set1_ps(lr);
        column_tiles!(n, |j, V, MASKED, mask| {
            // SAFETY: inside the blocks described by the caller.
            unsafe {
                let acc = tile::<R, V, MASKED, _>(x, g.add(j), n, rows, mask);
                for (i, acc) in acc.iter().enumerate() {
                    for (v, acc) in acc.iter().enumerate() {
                        let m = MASKED && v == V - 1;
                        let c = o.add(i * n + j + 8 * v);
                        let val = if SGD {
                            let w = load(f.add(i * n + j + 8 * v), m, mask);
                            _mm256_sub_ps(w, _mm256_mul_ps(lrv, *acc))
                        } else {
                            *acc
                        };
                        store(c, val, m, mask);
                    }
                }
            }
        });
    }
    /// See [`super::a_bt`].
    ///
    /// # Safety
    /// AVX2 and FMA available; the shape conditions asserted by
    /// [`super::a_bt`] hold.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn a_bt(
        gt: &[f32],
        w: &[f32],
        tt: &mut [f32],
        rp: usize,
        din: usize,
        dout: usize,
    ) {
        let (gp, wp, tp) = (gt.as_ptr(), w.as_ptr(), tt.as_mut_ptr());
        for lane0 in (0..rp).step_by(8) {
            let mut i = 0;
            while i < din {
                let left = (din - i).min(8);
                // SAFETY: W rows i..i+Q < din, lanes lane0..lane0+8 <= rp,
                // columns < dout (lengths checked by the caller).
                unsafe {
                    let (g, wr, t) = (gp.add(lane0), wp.add(i * dout), tp.add(i * rp + lane0));
                    match left {
                        1 => a_bt_tile::<1>(g, wr, t, rp, dout),
                        2 => a_bt_tile::<2>(g, wr, t, rp, dout),
                        3 => a_bt_tile::<3>(g, wr, t, rp, dout),
                        4 => a_bt_tile::<4>(g, wr, t, rp, dout),
                        5 => a_bt_tile::<5>(g, wr, t, rp, dout),
                        6 => a_bt_tile::<6>(g, wr, t, rp, dout),
                        7 => a_bt_tile::<7>(g, wr, t, rp, dout),
                        _ => a_bt_tile::<8>(g, wr, t, rp, dout),
                    }
                }
                i += left;
            }
        }
    }

    /// `Q` rows of `W` (from `w`, row stride `dout`) against 8 lanes of
    /// `Gᵀ` (from `g`, row stride `rp`), into `t` (row stride `rp`).
    ///
    /// # Safety
    /// As [`a_bt`] for the sub-block the pointers start.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn a_bt_tile<const Q: usize>(
        g: *const f32,
        w: *const f32,
        t: *mut f32,
        rp: usize,
        dout: usize,
    ) {
        let mut kb = 0;
        while kb < dout {
            let ke = (kb + KC).min(dout);
            let mut acc = [_mm256_setzero_ps(); Q];
            for j in kb..ke {
                // SAFETY: j < dout, inside the block described by the caller.
                let gv = unsafe { _mm256_loadu_ps(g.add(j * rp)) };
                for (q, acc) in acc.iter_mut().enumerate() {
                    let wv = _mm256_set1_ps(unsafe { *w.add(q * dout + j) });
                    *acc = _mm256_fmadd_ps(gv, wv, *acc);
                }
            }
            for (q, acc) in acc.iter().enumerate() {
                // SAFETY: row q < Q of the block described by the caller.
                unsafe {
                    let c = t.add(q * rp);
                    let v = if kb == 0 {
                        *acc
                    } else {
                        _mm256_add_ps(_mm256_loadu_ps(c), *acc)
                    };
                    _mm256_storeu_ps(c, v);
                }
            }
            kb = ke;
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

    fn bits(x: &[f32]) -> Vec<u32> {
        x.iter().map(|v| v.to_bits()).collect()
    }

    fn random(rng: &mut Rng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// Equal bit for bit to `general_mat_mul(1, A, W, 1, Z)` over shapes
    /// with every row and column remainder and more than one `k` block.
    #[test]
    fn add_product_matches_matrixmultiply_bitwise() {
        let mut rng = Rng::seed_from_u64(5);
        let mut shapes = vec![
            (1, 3, 1),
            (10, 60, 64),
            (7, 784, 200),
            (6, 784, 200),
            (6, 784, 10),
            (20, 784, 10),
            (20, 513, 37),
            (33, 256, 25),
            (5, 257, 8),
        ];
        for rows in 1..=13 {
            for n in [1, 3, 7, 8, 9, 15, 16, 17, 23, 24, 31, 33] {
                shapes.push((rows, 5 + rows, n));
            }
        }
        for (rows, k, n) in shapes {
            let (a, w, z0) = (
                random(&mut rng, rows * k),
                random(&mut rng, k * n),
                random(&mut rng, rows * n),
            );
            let mut z = z0.clone();
            if !add_product(Rows::dense(&a, rows, k), &w, &mut z, n) {
                return; // no AVX2/FMA: the GEMM is used instead
            }
            let mut r = z0.clone();
            let av = ArrayView2::from_shape((rows, k), &a[..]).unwrap();
            let wv = ArrayView2::from_shape((k, n), &w[..]).unwrap();
            let mut rv = ArrayViewMut2::from_shape((rows, n), &mut r[..]).unwrap();
            general_mat_mul(1.0, &av, &wv, 1.0, &mut rv);
            assert_eq!(bits(&z), bits(&r), "shape {rows}×{k}·{k}×{n}");
        }
    }

    /// The same chain written as plain scalar code: `add_product` equals it
    /// bit for bit, also in a shape whose `k` spans three blocks.
    #[test]
    fn add_product_matches_a_scalar_reference() {
        let mut rng = Rng::seed_from_u64(6);
        let (rows, k, n) = (7, 600, 19);
        let (a, w, z0) = (
            random(&mut rng, rows * k),
            random(&mut rng, k * n),
            random(&mut rng, rows * n),
        );
        let mut z = z0.clone();
        if !add_product(Rows::dense(&a, rows, k), &w, &mut z, n) {
            return;
        }
        let mut r = z0;
        for i in 0..rows {
            for j in 0..n {
                for kb in (0..k).step_by(KC) {
                    let mut acc = 0.0f32;
                    for kk in kb..(kb + KC).min(k) {
                        acc = a[i * k + kk].mul_add(w[kk * n + j], acc);
                    }
                    r[i * n + j] += acc;
                }
            }
        }
        assert_eq!(bits(&z), bits(&r));
    }

    /// `at_b` against `general_mat_mul(1, Aᵀ, G, 0, ·)` bit for bit, for
    /// every row count 1..=9 and more, widths around the vector widths and
    /// row ranges that start and end off the tile boundaries; the SGD
    /// epilogues (in place and from a separate source) against
    /// `w - lr * g` on the GEMM's gradient.
    #[test]
    fn at_b_matches_matrixmultiply_bitwise() {
        let mut rng = Rng::seed_from_u64(9);
        let mut shapes = vec![(6, 784, 200), (6, 200, 10), (20, 784, 10), (64, 50, 33)];
        for rows in 1..=9 {
            for n in [1, 5, 8, 10, 16, 17, 25, 40] {
                shapes.push((rows, 13, n));
            }
        }
        for (rows, din, n) in shapes {
            let (a, g, w0) = (
                random(&mut rng, rows * din),
                random(&mut rng, rows * n),
                random(&mut rng, din * n),
            );
            let mut full = vec![0.0f32; din * n];
            let av = ArrayView2::from_shape((rows, din), &a[..]).unwrap();
            let gv = ArrayView2::from_shape((rows, n), &g[..]).unwrap();
            let mut fv = ArrayViewMut2::from_shape((din, n), &mut full[..]).unwrap();
            general_mat_mul(1.0, &av.t(), &gv, 0.0, &mut fv);
            let lr = 0.037f32;
            for (i0, m) in [(0, din), (1, din - 1), (din / 3, din / 2), (din - 1, 1)] {
                let mut out = vec![f32::NAN; m * n];
                if !at_b(
                    Rows::dense(&a, rows, din),
                    &g,
                    &mut out,
                    n,
                    i0,
                    m,
                    Epilogue::Store,
                ) {
                    return;
                }
                assert_eq!(
                    bits(&out),
                    bits(&full[i0 * n..(i0 + m) * n]),
                    "store {rows}×{din}, n {n}, rows {i0}..{}",
                    i0 + m
                );
                let mut w = w0[i0 * n..(i0 + m) * n].to_vec();
                assert!(at_b(
                    Rows::dense(&a, rows, din),
                    &g,
                    &mut w,
                    n,
                    i0,
                    m,
                    Epilogue::Sgd(lr)
                ));
                let want: Vec<f32> = w0[i0 * n..(i0 + m) * n]
                    .iter()
                    .zip(&full[i0 * n..(i0 + m) * n])
                    .map(|(w, g)| w - lr * g)
                    .collect();
                assert_eq!(bits(&w), bits(&want), "sgd {rows}×{din}, n {n}");
                let from = &w0[i0 * n..(i0 + m) * n];
                let mut o = vec![f32::NAN; m * n];
                let e = Epilogue::SgdFrom(lr, from);
                assert!(at_b(Rows::dense(&a, rows, din), &g, &mut o, n, i0, m, e));
                assert_eq!(bits(&o), bits(&want), "sgd from {rows}×{din}, n {n}");
            }
        }
    }

    /// `a_bt` against `general_mat_mul(1, G, Wᵀ, 0, ·)` bit for bit, for
    /// row counts 1..=9 and more (one and several lane groups), widths not a
    /// multiple of the tile, and an inner dimension spanning two `k` blocks.
    #[test]
    fn a_bt_matches_matrixmultiply_bitwise() {
        let mut rng = Rng::seed_from_u64(12);
        let mut shapes = vec![(6, 200, 10), (6, 200, 200), (17, 30, 300), (64, 9, 5)];
        for rows in 1..=9 {
            for din in [1, 7, 8, 9, 23] {
                shapes.push((rows, din, 3 + rows));
            }
        }
        for (rows, din, dout) in shapes {
            let (g, w) = (random(&mut rng, rows * dout), random(&mut rng, din * dout));
            let mut t = vec![0.0f32; rows * din];
            let gv = ArrayView2::from_shape((rows, dout), &g[..]).unwrap();
            let wv = ArrayView2::from_shape((din, dout), &w[..]).unwrap();
            let mut tv = ArrayViewMut2::from_shape((rows, din), &mut t[..]).unwrap();
            general_mat_mul(1.0, &gv, &wv.t(), 0.0, &mut tv);
            let rp = rows.next_multiple_of(8);
            let mut gt = vec![f32::NAN; dout * rp];
            for r in 0..rows {
                for j in 0..dout {
                    gt[j * rp + r] = g[r * dout + j];
                }
            }
            let mut tt = vec![0.0f32; din * rp];
            if !a_bt(&gt, &w, &mut tt, rp, din, dout) {
                return;
            }
            let got: Vec<f32> = (0..rows)
                .flat_map(|r| (0..din).map(move |i| (r, i)))
                .map(|(r, i)| tt[i * rp + r])
                .collect();
            assert_eq!(bits(&got), bits(&t), "{rows}×{dout} · ({din}×{dout})ᵀ");
        }
    }

    /// Reading the rows through their indices gives the same bits as
    /// reading a gathered copy, in both kernels and both epilogues: row
    /// counts 1..=13 and around the tile heights, widths with every lane
    /// tail, odd inner dimensions (one beyond a `k` block too), more rows
    /// than a pointer table, indices unsorted and repeated.
    #[test]
    fn gathered_rows_match_a_gathered_copy_bitwise() {
        let mut rng = Rng::seed_from_u64(14);
        // More rows than a pointer table holds: `add_product` in chunks,
        // `at_b` with a table on the heap.
        let mut shapes = vec![(20, 784, 10), (6, 784, 200), (10, 60, 64), (7, 257, 9)];
        shapes.extend([(70, 33, 17), (130, 9, 10), (64, 20, 23), (65, 20, 23)]);
        for rows in 1..=13 {
            for n in [1, 5, 8, 10, 17, 23, 33] {
                shapes.push((rows, 3 + 2 * rows, n));
            }
        }
        for (rows, k, n) in shapes {
            let total = 2 * rows + 3;
            let data = random(&mut rng, total * k);
            let mut idx: Vec<u32> = (0..rows)
                .map(|_| rng.random_range(0..total as u32))
                .collect();
            idx[rows - 1] = (total - 1) as u32; // the storage's last row
            let mut copy = Vec::with_capacity(rows * k);
            for &r in &idx {
                copy.extend_from_slice(&data[r as usize * k..(r as usize + 1) * k]);
            }
            let (gathered, dense) = (Rows::gather(&data, k, &idx), Rows::dense(&copy, rows, k));
            let what = format!("{rows} rows × {k}, n {n}");

            let (w, z0) = (random(&mut rng, k * n), random(&mut rng, rows * n));
            let (mut za, mut zb) = (z0.clone(), z0);
            if !add_product(gathered, &w, &mut za, n) {
                return;
            }
            assert!(add_product(dense, &w, &mut zb, n));
            assert_eq!(bits(&za), bits(&zb), "add_product, {what}");

            let g = random(&mut rng, rows * n);
            for (i0, m) in [(0, k), (1, k - 1), (k / 2, k - k / 2)] {
                let (mut oa, mut ob) = (vec![f32::NAN; m * n], vec![0.0f32; m * n]);
                assert!(at_b(gathered, &g, &mut oa, n, i0, m, Epilogue::Store));
                assert!(at_b(dense, &g, &mut ob, n, i0, m, Epilogue::Store));
                assert_eq!(bits(&oa), bits(&ob), "at_b store, {what}, from {i0}");
                let w0 = random(&mut rng, m * n);
                let (mut wa, mut wb) = (w0.clone(), w0);
                assert!(at_b(gathered, &g, &mut wa, n, i0, m, Epilogue::Sgd(0.03)));
                assert!(at_b(dense, &g, &mut wb, n, i0, m, Epilogue::Sgd(0.03)));
                assert_eq!(bits(&wa), bits(&wb), "at_b sgd, {what}, from {i0}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "row index out of range")]
    fn gathered_rows_check_their_indices() {
        let data = vec![0.0f32; 3 * 4];
        Rows::gather(&data, 4, &[0, 3]);
    }

    /// Elements outside the requested rows and past each row's width are
    /// never written.
    #[test]
    fn kernels_write_only_their_block() {
        let mut rng = Rng::seed_from_u64(10);
        let (rows, k, n) = (3, 9, 11);
        let (a, w) = (random(&mut rng, rows * k), random(&mut rng, k * n));
        let mut z = vec![7.0f32; rows * n + 5];
        if !add_product(Rows::dense(&a, rows, k), &w, &mut z, n) {
            return;
        }
        assert!(z[rows * n..].iter().all(|&v| v == 7.0));
        let g = random(&mut rng, rows * n);
        let mut out = vec![7.0f32; 4 * n + 5];
        assert!(at_b(
            Rows::dense(&a, rows, k),
            &g,
            &mut out,
            n,
            2,
            4,
            Epilogue::Store
        ));
        assert!(out[4 * n..].iter().all(|&v| v == 7.0));
    }
}
