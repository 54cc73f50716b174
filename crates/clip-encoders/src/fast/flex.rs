//! The kernels on burn-flex tensors: raw f32 slices, gemm with strides, rayon over rows.

use std::mem::MaybeUninit;

use burn::prelude::*;
use burn::tensor::{DType, TensorPrimitive};
use burn_flex::{Flex, FlexTensor, Layout};
use rayon::prelude::*;

use simd_math as math;

/// `x` as a tensor of backend `U`, or `x` back when `B` is not `U` (a type-id check).
pub(super) fn cast<T: 'static, U: 'static>(x: T) -> Result<U, T> {
    let mut slot = Some(x);
    match (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<U>>() {
        Some(u) => Ok(u.take().expect("filled above")),
        None => Err(slot.expect("not taken")),
    }
}

/// The flex primitive of an f32 tensor of backend `B`, or the tensor back.
pub(super) fn flex_f32<B: Backend, const D: usize>(
    x: Tensor<B, D>,
) -> Result<FlexTensor, Tensor<B, D>> {
    let flex: Tensor<Flex, D> = cast(x)?;
    let prim = flex.into_primitive().tensor();
    if prim.dtype() == DType::F32 {
        Ok(prim)
    } else {
        Err(
            cast(Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(
                prim,
            )))
            .expect("B is Flex"),
        )
    }
}

/// Wraps a flex primitive back into a tensor of `B` (which is `Flex`).
pub(super) fn wrap<B: Backend, const D: usize>(t: FlexTensor) -> Tensor<B, D> {
    cast(Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(t))).expect("B is Flex")
}

pub(super) fn from_vec(data: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::new(
        burn::tensor::Bytes::from_elems(data),
        Layout::contiguous(shape.into()),
        DType::F32,
    )
}

/// A contiguous, uniquely owned copy-or-move of `t` whose storage is exactly its elements.
pub(super) fn owned_contiguous(t: FlexTensor) -> FlexTensor {
    let out = rows_copied_in_parallel(&t).unwrap_or_else(|| t.to_contiguous());
    drop(t);
    out
}

/// A large f32 view whose rows (last dimension) are contiguous but not each other (e.g. a
/// `narrow` of the last dimension), copied row by row on every thread; `None` for any other
/// tensor (burn-flex copies those, on the calling thread).
fn rows_copied_in_parallel(t: &FlexTensor) -> Option<FlexTensor> {
    let layout = t.layout();
    let shape = layout.shape().to_vec();
    let strides = layout.strides();
    let len = layout.num_elements();
    let width = *shape.last()?;
    let rows_contiguous = strides.last() == Some(&1) && strides.iter().all(|&s| s >= 0);
    if t.dtype() != DType::F32 || len < CHUNK || width == 0 || t.is_contiguous() || !rows_contiguous
    {
        return None;
    }
    let src = t.storage::<f32>();
    let start = layout.start_offset();
    let outer = &shape[..shape.len() - 1];
    let row_start = |mut row: usize| {
        let mut at = start;
        for (&size, &stride) in outer.iter().zip(strides).rev() {
            at += (row % size) * stride as usize;
            row /= size;
        }
        at
    };
    let rows_per_task = (CHUNK / width).max(1);
    let copy_rows = |task: usize, block: &mut [MaybeUninit<f32>]| {
        for (i, dst) in block.chunks_exact_mut(width).enumerate() {
            let at = row_start(task * rows_per_task + i);
            for (d, &v) in dst.iter_mut().zip(&src[at..at + width]) {
                d.write(v);
            }
        }
    };
    // SAFETY: blocks are whole rows of `width`, and every row is copied.
    let out = unsafe { written_in_parallel(len, rows_per_task * width, copy_rows) };
    Some(from_vec(out, shape))
}

/// Elements per rayon task: large enough that splitting costs nothing measurable.
const CHUNK: usize = 1 << 14;

/// A new buffer of `len` values written on every thread, without zeroing it first: task `i`
/// gets the elements from `i · task_len` on (`task_len` of them, fewer for the last).
///
/// # Safety
/// `fill` must write every element of the block it is given.
unsafe fn written_in_parallel(
    len: usize,
    task_len: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync + Send,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(task_len.max(1))
        .enumerate()
        .for_each(|(task, block)| fill(task, block));
    // SAFETY: the caller's `fill` wrote every element.
    unsafe { out.set_len(len) };
    out
}

/// `len` zeros, written on every thread: the buffers of the kernels here are large (up to
/// 12 MB), and zeroed by `vec!` they were memset on the calling thread while the others waited.
pub(super) fn zeros(len: usize) -> Vec<f32> {
    // SAFETY: every block is filled whole.
    unsafe { written_in_parallel(len, CHUNK, |_, block| block.fill(MaybeUninit::new(0.0))) }
}

/// Applies `kernel` to every element of `x` in place (copying first only if shared).
pub(super) fn map_in_place<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    kernel: fn(&mut [f32]),
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    let mut t = owned_contiguous(flex_f32(x)?);
    t.storage_mut::<f32>()
        .par_chunks_mut(CHUNK)
        .for_each(kernel);
    Ok(wrap(t))
}

/// A strided f32 matrix view: base pointer (offset applied), row and column strides.
#[derive(Clone, Copy)]
pub(super) struct Mat {
    ptr: *const f32,
    row_stride: isize,
    col_stride: isize,
}

// SAFETY: the pointers are read-only views into tensors kept alive by the caller for the whole
// call; rayon tasks only read through them.
unsafe impl Send for Mat {}
unsafe impl Sync for Mat {}

impl Mat {
    /// The last two dimensions of `t` at batch offset `batch_offset` (in elements).
    pub(super) fn of(t: &FlexTensor, batch_offset: isize) -> Self {
        let strides = t.layout().strides();
        let rank = strides.len();
        let base = t.storage::<f32>().as_ptr();
        // SAFETY: offset and strides come from the tensor's own layout.
        let ptr = unsafe { base.offset(t.layout().start_offset() as isize + batch_offset) };
        Mat {
            ptr,
            row_stride: strides[rank - 2],
            col_stride: strides[rank - 1],
        }
    }

    fn offset(self, elements: isize) -> Self {
        // SAFETY: callers stay inside the tensor this view was made from.
        Mat {
            ptr: unsafe { self.ptr.offset(elements) },
            ..self
        }
    }

    /// The view from column `first` on (whatever the column stride).
    pub(super) fn skip_columns(self, first: usize) -> Self {
        self.offset(first as isize * self.col_stride)
    }

    /// A row-major buffer of rows of `row_len` elements.
    pub(super) fn contiguous(ptr: *const f32, row_len: usize) -> Self {
        Mat {
            ptr,
            row_stride: row_len as isize,
            col_stride: 1,
        }
    }

    /// The element at (`row`, `col`).
    ///
    /// # Safety
    /// The position must lie inside the view.
    unsafe fn get(&self, row: usize, col: usize) -> f32 {
        let at = row as isize * self.row_stride + col as isize * self.col_stride;
        // SAFETY: forwarded from the caller.
        unsafe { *self.ptr.offset(at) }
    }

    /// This `[rows, cols]` view copied into a row-major buffer, tile by tile on every thread.
    fn rows_copy(self, [rows, cols]: [usize; 2]) -> Vec<f32> {
        const TILE: usize = 64;
        let copy_tiles = |block: usize, dst: &mut [MaybeUninit<f32>]| {
            let first_row = block * TILE;
            let block_rows = dst.len() / cols;
            for col_start in (0..cols).step_by(TILE) {
                for col in col_start..(col_start + TILE).min(cols) {
                    for r in 0..block_rows {
                        // SAFETY: (row, col) lies inside the view, which the caller keeps alive.
                        dst[r * cols + col].write(unsafe { self.get(first_row + r, col) });
                    }
                }
            }
        };
        // SAFETY: blocks are whole rows, and every (row, col) of a block is written.
        unsafe { written_in_parallel(rows * cols, TILE * cols, copy_tiles) }
    }

    pub(super) fn transposed(self) -> Self {
        Mat {
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// `dst [m, n] (row stride dst_rs) = keep·dst + scale·(a [m, k] × b [k, n])`.
///
/// # Safety
/// `dst` must be valid for the writes and not aliased by another running task; `a`/`b` valid.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: isize,
    keep: bool,
    a: Mat,
    b: Mat,
    scale: f32,
    parallel: bool,
) {
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // gemm computes a row-major product as its transpose, with `b` on the left; a left operand
    // whose rows are not contiguous it packs on the calling thread while the others wait (the
    // backward `dY · Wᵀ` of every linear layer: ~4 % of a training step on one core). Copied
    // into rows on every thread first, it is packed in parallel.
    let b_rows = (parallel && b.col_stride != 1 && n >= ROW_COPY_MIN).then(|| b.rows_copy([k, n]));
    let b = b_rows
        .as_ref()
        .map_or(b, |rows| Mat::contiguous(rows.as_ptr(), n));
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs,
            keep,
            a.ptr,
            a.col_stride,
            a.row_stride,
            b.ptr,
            b.col_stride,
            b.row_stride,
            if keep { 1.0 } else { 0.0 },
            scale,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// Narrower right operands are left to gemm's own packing (the copy would not pay).
const ROW_COPY_MIN: usize = 16;

/// One head's block of a merged `[.., D]` output: `dst [rows, cols]` with row stride `dim`,
/// `= scale · a [rows, inner] × b [inner, cols]`, on the calling thread.
///
/// # Safety
/// As [`gemm`].
pub(super) unsafe fn head_gemm(
    dst: *mut f32,
    dim: usize,
    [rows, cols, inner]: [usize; 3],
    a: Mat,
    b: Mat,
    scale: f32,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm(
            rows,
            cols,
            inner,
            dst,
            dim as isize,
            false,
            a,
            b,
            scale,
            false,
        )
    }
}

/// The attention scores of one head, `scores [tq, tk] = keep·scores + scale · q kᵀ`.
///
/// # Safety
/// As [`gemm`]; `scores` holds `tq·tk` elements.
pub(super) unsafe fn scores_gemm(
    scores: &mut [f32],
    [tq, tk, head_dim]: [usize; 3],
    keep: bool,
    q: Mat,
    k: Mat,
    scale: f32,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm(
            tq,
            tk,
            head_dim,
            scores.as_mut_ptr(),
            tk as isize,
            keep,
            q,
            k.transposed(),
            scale,
            false,
        )
    }
}

/// Products smaller than this many multiply-adds run on one thread (gemm's own split costs more).
const PARALLEL_GEMM: usize = 1 << 21;

/// `a [m, k] × b [k, n]` into a new row-major `[m, n]` buffer, on every thread when large.
pub(super) fn matmul(a: Mat, b: Mat, [m, k, n]: [usize; 3]) -> Vec<f32> {
    // Not zeroed first: gemm writes every element without reading (`keep` false).
    let mut out = Vec::with_capacity(m * n);
    // SAFETY: `out` has room for m·n elements, all written by gemm before `set_len`; the views
    // are valid for the call (caller's tensors).
    unsafe {
        gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            n as isize,
            false,
            a,
            b,
            1.0,
            m * n * k >= PARALLEL_GEMM,
        );
        out.set_len(m * n);
    }
    out
}

/// `rows` copies of `row`, written on every thread.
fn repeated_rows(row: &[f32], rows: usize) -> Vec<f32> {
    let width = row.len();
    let copy_row = |_: usize, block: &mut [MaybeUninit<f32>]| {
        for (dst, src) in block.iter_mut().zip(row.iter().cycle()) {
            dst.write(*src);
        }
    };
    // SAFETY: blocks are whole rows (`width` divides the task length), each written whole.
    unsafe { written_in_parallel(rows * width, width.max(1) * ROWS_PER_TASK, copy_row) }
}

/// Rows per rayon task of [`repeated_rows`].
const ROWS_PER_TASK: usize = 32;

/// `x [M, K] · w [K, N] + bias [N]` on flex primitives, as one gemm onto the bias rows.
pub(super) fn linear_primitive(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
) -> FlexTensor {
    let [m, k] = x.layout().shape().dims();
    let n = weight.layout().shape()[1];
    let (x, weight) = (Mat::of(x, 0), Mat::of(weight, 0));
    let Some(bias) = bias else {
        return from_vec(matmul(x, weight, [m, k, n]), vec![m, n]);
    };
    let mut out = repeated_rows(owned_contiguous(bias.clone()).storage::<f32>(), m);
    // SAFETY: `out` holds m·n elements; x and weight outlive the call.
    unsafe {
        gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            n as isize,
            true,
            x,
            weight,
            1.0,
            m * n * k >= PARALLEL_GEMM,
        )
    };
    from_vec(out, vec![m, n])
}

/// `x [M, K] · w [K, N] + bias [N]` as one gemm that accumulates onto the bias rows; `None`
/// when `B` is not flex or a tensor is not f32.
pub(super) fn linear<B: Backend>(
    x: &Tensor<B, 2>,
    weight: &Tensor<B, 2>,
    bias: Option<&Tensor<B, 1>>,
) -> Option<Tensor<B, 2>> {
    let x = flex_f32(x.clone()).ok()?;
    let weight = flex_f32(weight.clone()).ok()?;
    let bias = match bias {
        Some(b) => Some(flex_f32(b.clone()).ok()?),
        None => None,
    };
    Some(wrap(linear_primitive(&x, &weight, bias.as_ref())))
}

/// A raw output pointer shared by tasks writing disjoint parts.
#[derive(Clone, Copy)]
pub(super) struct OutPtr(pub(super) *mut f32);
// SAFETY: every task writes a disjoint set of elements (one head's columns of one entry).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so that closures capture the `Sync` wrapper, not the field).
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}

/// Writes the additive bias of batch entry `b` into `scores [Tq, tk]` (a contiguous `bias` of
/// shape `[B or 1, 1, Tq or 1, tk]`); true, so that the scores gemm accumulates onto it.
pub(super) fn fill_bias(scores: &mut [f32], bias: &FlexTensor, b: usize, tk: usize) -> bool {
    let [entries, _, rows, _] = bias.layout().shape().dims::<4>();
    let data = bias.storage::<f32>();
    let entry = &data[(if entries == 1 { 0 } else { b }) * rows * tk..][..rows * tk];
    for (r, dst) in scores.chunks_exact_mut(tk).enumerate() {
        let src = if rows == 1 { 0 } else { r };
        dst.copy_from_slice(&entry[src * tk..(src + 1) * tk]);
    }
    true
}

/// Multi-head attention `softmax(q kᵀ/√d + bias) v` head by head, one (entry, head) per task,
/// reading q/k/v through their strides and writing the merged `[B, Tq, D]` output directly.
///
/// `bias` is `[B or 1, 1, Tq or 1, Tk]`.
pub(super) fn attention<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    heads: usize,
    bias: Option<Tensor<B, 4>>,
) -> Result<Tensor<B, 3>, super::AttentionInputs<B>> {
    let parts = (flex_f32(q), flex_f32(k), flex_f32(v), bias.map(flex_f32));
    let (q, k, v, bias) = match parts {
        (Ok(q), Ok(k), Ok(v), None) => (q, k, v, None),
        (Ok(q), Ok(k), Ok(v), Some(Ok(b))) => (q, k, v, Some(b)),
        (q, k, v, b) => {
            let back3 = |t: Result<FlexTensor, Tensor<B, 3>>| t.map(wrap).unwrap_or_else(|t| t);
            let b = b.map(|b| b.map(wrap).unwrap_or_else(|t| t));
            return Err(super::AttentionInputs {
                q: back3(q),
                k: back3(k),
                v: back3(v),
                bias: b,
            });
        }
    };
    let [batch, tq, dim] = q.layout().shape().dims();
    let tk = k.layout().shape()[1];
    let head_dim = dim / heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let bias = bias.map(owned_contiguous);
    let mut out = zeros(batch * tq * dim);
    let out_ptr = OutPtr(out.as_mut_ptr());
    let batch_stride = |t: &FlexTensor| t.layout().strides()[0];
    let (qs, ks, vs) = (batch_stride(&q), batch_stride(&k), batch_stride(&v));

    (0..batch * heads).into_par_iter().for_each_init(
        || vec![0.0f32; tq * tk],
        |scores, task| {
            let (b, h) = (task / heads, task % heads);
            let col = h * head_dim;
            let q_bh = Mat::of(&q, b as isize * qs).skip_columns(col);
            let k_bh = Mat::of(&k, b as isize * ks).skip_columns(col);
            let v_bh = Mat::of(&v, b as isize * vs).skip_columns(col);
            let keep = bias
                .as_ref()
                .is_some_and(|bias| fill_bias(scores, bias, b, tk));
            // SAFETY: `scores` is this task's buffer of tq·tk; q/k/v views stay in their
            // tensors; the output block (entry b, columns of head h) belongs to this task only.
            unsafe {
                scores_gemm(scores, [tq, tk, head_dim], keep, q_bh, k_bh, scale);
                math::softmax_rows_in_place(scores, tk);
                let probs = Mat {
                    ptr: scores.as_ptr(),
                    row_stride: tk as isize,
                    col_stride: 1,
                };
                let dst = out_ptr.get().add(b * tq * dim + h * head_dim);
                head_gemm(dst, dim, [tq, head_dim, tk], probs, v_bh, 1.0);
            }
        },
    );
    Ok(wrap(from_vec(out, vec![batch, tq, dim])))
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;
    use burn::tensor::Distribution;

    use super::*;

    #[test]
    fn kernels_run_on_flex_and_hand_other_backends_back() {
        let device = Default::default();
        let x = Tensor::<Flex, 2>::ones([2, 3], &device);
        assert!(map_in_place(x.clone(), math::gelu_in_place).is_ok());
        assert!(linear(&x, &x.clone().transpose(), None).is_some());
        let ad = Tensor::<Autodiff<Flex>, 2>::ones([2, 3], &device);
        assert!(map_in_place(ad.clone(), math::gelu_in_place).is_err());
        assert!(linear(&ad, &ad.clone().transpose(), None).is_none());
        let half = Tensor::<Flex, 2>::ones([2, 3], &device).cast(DType::F16);
        assert!(
            map_in_place(half, math::gelu_in_place).is_err(),
            "only f32 has kernels"
        );
    }

    fn primitive(t: Tensor<Flex, 3>) -> FlexTensor {
        t.into_primitive().tensor()
    }

    #[test]
    fn strided_rows_copied_in_parallel_equal_burn_flexs_copy() {
        let device = Default::default();
        let x = Tensor::<Flex, 3>::random([3, 50, 400], Distribution::Default, &device);
        // A narrow of the last dimension, and outer dimensions swapped: rows stay contiguous.
        for view in [x.clone().narrow(2, 100, 200), x.clone().swap_dims(0, 1)] {
            let expected = primitive(view.clone()).to_contiguous();
            let copied = rows_copied_in_parallel(&primitive(view)).expect("rows are contiguous");
            assert_eq!(copied.layout().shape(), expected.layout().shape());
            assert_eq!(copied.storage::<f32>(), expected.storage::<f32>());
        }
        // Columns (last stride ≠ 1) and small or contiguous tensors are left to burn-flex.
        assert!(rows_copied_in_parallel(&primitive(x.clone().swap_dims(1, 2))).is_none());
        assert!(rows_copied_in_parallel(&primitive(x.clone())).is_none());
        let small = x.narrow(0, 0, 1).narrow(1, 0, 2).narrow(2, 0, 10);
        assert!(rows_copied_in_parallel(&primitive(small)).is_none());
    }
}
