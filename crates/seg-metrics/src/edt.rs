//! Exact Euclidean distance transforms in linear time, with anisotropic spacing in array order.
//!
//! Separable algorithm of Felzenszwalb & Huttenlocher (*Distance Transforms of Sampled Functions*,
//! Theory of Computing 2012):
//! 1. along axis 0, the index distance to the nearest feature of the same column, by one forward
//!    and one backward sweep over whole rows (contiguous, vectorisable);
//! 2. along every further axis, the lower envelope of the parabolas `g(p) + (s·(x − p))²`.
//!
//! The surface metrics need distances only at the surface elements of the other mask. For those,
//! the last axis is not transformed in full: each query scans outwards from its own column and
//! stops as soon as `(s·k)²` reaches the best value found (exact, and O(distance) per query). A
//! line whose queries scan more than a few times its length switches to the envelope, so the cost
//! stays linear in the worst case. In 2-D, sparse features (contours) skip the dense axis-0 pass:
//! per-column sorted feature lists are read with cursors that only move down, so nothing costs
//! O(grid).
//!
//! Squared distances are summed axis by axis in array order, `((Δ0·s0)² + (Δ1·s1)²) + (Δ2·s2)²`,
//! the order in which `scipy.ndimage.distance_transform_edt` sums them, so ties at a tolerance
//! (frequent with integer shifts) come out exactly as in the reference.

use rayon::prelude::*;

use crate::error::Result;
use crate::mask::{BinaryMask, Mask2d, Mask3d, check_spacing};

/// Grids with at least this many elements are transformed with rayon.
const PAR_MIN_ELEMENTS: usize = 1 << 16;
/// Query sets at least this large are answered with rayon.
const PAR_MIN_QUERIES: usize = 1 << 13;

/// Euclidean distance from every pixel to the nearest foreground pixel of `mask`, in spacing units.
///
/// `spacing` is (row, col). Foreground pixels get 0; every pixel gets `+inf` when the mask is empty.
/// (scipy's `distance_transform_edt(~mask, sampling=spacing)` computes the same map.)
pub fn edt_2d(mask: &Mask2d, spacing: [f64; 2]) -> Result<Vec<f64>> {
    let mut d = squared_edt_2d(mask, spacing)?;
    d.iter_mut().for_each(|v| *v = v.sqrt());
    Ok(d)
}

/// Squared distances of [`edt_2d`].
pub fn squared_edt_2d(mask: &Mask2d, spacing: [f64; 2]) -> Result<Vec<f64>> {
    check_spacing(&spacing)?;
    let (rows, cols) = (mask.rows(), mask.cols());
    let mut out = vec![0.0; rows * cols];
    if cols == 0 {
        return Ok(out);
    }
    let runs = AxisRuns::new(mask.data(), rows, cols, spacing[0]);
    transform_lines_full(&mut out, cols, spacing[1], |r, g| runs.fill(r * cols, g));
    Ok(out)
}

/// Euclidean distance from every voxel to the nearest foreground voxel of `mask`.
///
/// `spacing` is (z, row, col); `+inf` everywhere when the volume is empty.
pub fn edt_3d(mask: &Mask3d, spacing: [f64; 3]) -> Result<Vec<f64>> {
    let mut d = squared_edt_3d(mask, spacing)?;
    d.iter_mut().for_each(|v| *v = v.sqrt());
    Ok(d)
}

/// Squared distances of [`edt_3d`].
pub fn squared_edt_3d(mask: &Mask3d, spacing: [f64; 3]) -> Result<Vec<f64>> {
    check_spacing(&spacing)?;
    let shape = [mask.depth(), mask.rows(), mask.cols()];
    let cols = shape[2];
    let mut out = vec![0.0; shape.iter().product()];
    if out.is_empty() {
        return Ok(out);
    }
    let planes = plane_transform(mask.data(), shape, spacing);
    let fill =
        |line: usize, g: &mut [f64]| g.copy_from_slice(&planes[line * cols..(line + 1) * cols]);
    transform_lines_full(&mut out, cols, spacing[2], fill);
    Ok(out)
}

/// Squared distances from the grid elements `queries` to the nearest of `features` on a 2-D
/// grid (both flat indices, ascending). `+inf` for all when there is no feature.
pub(crate) fn squared_distances_at_2d(
    features: &[usize],
    shape: [usize; 2],
    spacing: [f64; 2],
    queries: &[usize],
) -> Vec<f64> {
    let [rows, cols] = shape;
    if features.len() * SPARSE_FACTOR <= rows * cols {
        let source = SparseColumns::new(features, rows, cols, spacing[0]);
        return answer_queries(queries, cols, spacing[1], &source);
    }
    let member = membership(features, rows * cols);
    let source = DenseRuns {
        runs: AxisRuns::new(&member, rows, cols, spacing[0]),
        cols,
    };
    answer_queries(queries, cols, spacing[1], &source)
}

/// Below one feature per this many grid elements, 2-D queries read per-column feature lists
/// instead of dense axis-0 runs (contours are sparse; the slab's surfaces are not).
const SPARSE_FACTOR: usize = 8;

/// 3-D version of [`squared_distances_at_2d`]; `shape` and `spacing` are (z, row, col).
pub(crate) fn squared_distances_at_3d(
    features: &[usize],
    shape: [usize; 3],
    spacing: [f64; 3],
    queries: &[usize],
) -> Vec<f64> {
    let member = membership(features, shape.iter().product());
    let source = Planes {
        values: plane_transform(&member, shape, spacing),
        cols: shape[2],
    };
    answer_queries(queries, shape[2], spacing[2], &source)
}

fn membership(features: &[usize], len: usize) -> Vec<bool> {
    let mut member = vec![false; len];
    for &f in features {
        member[f] = true;
    }
    member
}

/// Squared distances of the previous axes, per line (the last axis) and position on the line.
///
/// Lines are read in ascending order by each cursor, which lets a source keep per-column
/// positions instead of searching.
trait LineSource: Sync {
    /// Reading state of one thread, for ascending lines from `first_line` on.
    type Cursor;
    fn cursor(&self, first_line: usize) -> Self::Cursor;
    /// Value at position `x` of `line`.
    fn at(&self, cursor: &mut Self::Cursor, line: usize, x: usize) -> f64;
    /// The whole line.
    fn fill(&self, cursor: &mut Self::Cursor, line: usize, g: &mut [f64]) {
        for (x, v) in g.iter_mut().enumerate() {
            *v = self.at(cursor, line, x);
        }
    }
}

/// Axis-0 runs of a 2-D grid, read along its rows.
struct DenseRuns {
    runs: AxisRuns,
    cols: usize,
}

impl LineSource for DenseRuns {
    type Cursor = ();
    fn cursor(&self, _: usize) {}
    fn at(&self, _: &mut (), line: usize, x: usize) -> f64 {
        self.runs.at(line * self.cols + x)
    }
    fn fill(&self, _: &mut (), line: usize, g: &mut [f64]) {
        self.runs.fill(line * self.cols, g);
    }
}

/// Sorted feature rows per column of a sparse 2-D grid; a cursor keeps, per column, the first
/// feature at or below the current line, so reading ascending lines costs O(features) in total
/// and nothing is proportional to the grid size.
struct SparseColumns {
    /// Column c's feature rows are `rows[starts[c]..starts[c + 1]]`, ascending.
    starts: Vec<usize>,
    rows: Vec<usize>,
    /// `squared[k] = (k·spacing)²` for every possible row distance k.
    squared: Vec<f64>,
}

impl SparseColumns {
    /// `features` must be ascending flat indices, so each column's rows come out ascending.
    fn new(features: &[usize], grid_rows: usize, cols: usize, spacing: f64) -> Self {
        let mut starts = vec![0usize; cols + 1];
        for &f in features {
            starts[f % cols + 1] += 1;
        }
        for c in 0..cols {
            starts[c + 1] += starts[c];
        }
        let mut next = starts.clone();
        let mut rows = vec![0usize; features.len()];
        for &f in features {
            let c = f % cols;
            rows[next[c]] = f / cols;
            next[c] += 1;
        }
        let squared = (0..grid_rows)
            .map(|k| {
                let d = k as f64 * spacing;
                d * d
            })
            .collect();
        Self {
            starts,
            rows,
            squared,
        }
    }
}

impl LineSource for SparseColumns {
    type Cursor = Vec<usize>;
    fn cursor(&self, first_line: usize) -> Vec<usize> {
        (0..self.starts.len() - 1)
            .map(|c| {
                let (lo, hi) = (self.starts[c], self.starts[c + 1]);
                lo + self.rows[lo..hi].partition_point(|&r| r < first_line)
            })
            .collect()
    }
    fn at(&self, cursor: &mut Vec<usize>, line: usize, x: usize) -> f64 {
        let (lo, hi) = (self.starts[x], self.starts[x + 1]);
        let mut p = cursor[x];
        while p < hi && self.rows[p] < line {
            p += 1;
        }
        cursor[x] = p;
        let below = (p < hi).then(|| self.rows[p] - line);
        let above = (p > lo).then(|| line - self.rows[p - 1]);
        match (below, above) {
            (Some(a), Some(b)) => self.squared[a.min(b)],
            (Some(d), None) | (None, Some(d)) => self.squared[d],
            (None, None) => f64::INFINITY,
        }
    }
}

/// Per-plane transforms of a 3-D grid (squared distances over the z and row axes).
struct Planes {
    values: Vec<f64>,
    cols: usize,
}

impl LineSource for Planes {
    type Cursor = ();
    fn cursor(&self, _: usize) {}
    fn at(&self, _: &mut (), line: usize, x: usize) -> f64 {
        self.values[line * self.cols + x]
    }
    fn fill(&self, _: &mut (), line: usize, g: &mut [f64]) {
        g.copy_from_slice(&self.values[line * self.cols..(line + 1) * self.cols]);
    }
}

/// Axis-0 pass: per element, the index distance along axis 0 to the nearest feature of the same
/// column, by a forward and a backward sweep over whole slabs (contiguous, vectorisable).
struct AxisRuns {
    /// Index distance; `len0` (longer than any real run) where the column has no feature.
    runs: Vec<u32>,
    /// `squared[k] = (k·spacing)²` and `squared[len0] = +inf`: a lookup instead of a branch.
    squared: Vec<f64>,
}

impl AxisRuns {
    /// `features` holds `len0` slabs of `stride` elements.
    fn new(features: &[bool], len0: usize, stride: usize, spacing: f64) -> Self {
        let none = u32::try_from(len0).unwrap_or(u32::MAX);
        let mut runs = vec![none; len0 * stride];
        let mut squared: Vec<f64> = (0..=none)
            .map(|k| {
                let d = f64::from(k) * spacing;
                d * d
            })
            .collect();
        if let Some(last) = squared.last_mut() {
            *last = f64::INFINITY;
        }
        if stride == 0 {
            return Self { runs, squared };
        }
        let step = |run: &mut u32, feature: bool| {
            *run = if feature {
                0
            } else {
                run.saturating_add(1).min(none)
            };
        };
        let mut run = vec![none; stride];
        for (feat, dst) in features
            .chunks_exact(stride)
            .zip(runs.chunks_exact_mut(stride))
        {
            for ((r, &f), d) in run.iter_mut().zip(feat).zip(dst.iter_mut()) {
                step(r, f);
                *d = *r;
            }
        }
        run.fill(none);
        for (feat, dst) in features
            .chunks_exact(stride)
            .zip(runs.chunks_exact_mut(stride))
            .rev()
        {
            for ((r, &f), d) in run.iter_mut().zip(feat).zip(dst.iter_mut()) {
                step(r, f);
                *d = (*d).min(*r);
            }
        }
        Self { runs, squared }
    }

    /// Squared physical axis-0 distance at flat index `i`.
    fn at(&self, i: usize) -> f64 {
        self.squared[self.runs[i] as usize]
    }

    /// Squared distances of `g.len()` consecutive elements from flat index `start`.
    fn fill(&self, start: usize, g: &mut [f64]) {
        for (v, &run) in g.iter_mut().zip(&self.runs[start..]) {
            *v = self.squared[run as usize];
        }
    }
}

/// Axis-0 runs, then the exact transform along axis 1 of every plane: squared distances within
/// the (z, row) directions, one value per voxel.
fn plane_transform(features: &[bool], shape: [usize; 3], spacing: [f64; 3]) -> Vec<f64> {
    let [depth, rows, cols] = shape;
    let plane = rows * cols;
    let mut out = vec![0.0; depth * plane];
    if plane == 0 {
        return out;
    }
    let runs = AxisRuns::new(features, depth, plane, spacing[0]);
    let one_plane = |scratch: &mut ColumnScratch, (z, dst): (usize, &mut [f64])| {
        scratch.resize(rows);
        for c in 0..cols {
            for (r, g) in scratch.g.iter_mut().enumerate() {
                *g = runs.at(z * plane + r * cols + c);
            }
            scratch
                .env
                .transform_line(&scratch.g, spacing[1], &mut scratch.line);
            for (r, &v) in scratch.line.iter().enumerate() {
                dst[r * cols + c] = v;
            }
        }
    };
    if depth * plane >= PAR_MIN_ELEMENTS && depth > 1 {
        out.par_chunks_exact_mut(plane)
            .enumerate()
            .for_each_init(ColumnScratch::default, one_plane);
    } else {
        let mut scratch = ColumnScratch::default();
        out.chunks_exact_mut(plane)
            .enumerate()
            .for_each(|t| one_plane(&mut scratch, t));
    }
    out
}

/// Per-thread buffers for transforming strided columns.
#[derive(Default)]
struct ColumnScratch {
    g: Vec<f64>,
    line: Vec<f64>,
    env: Envelope,
}

impl ColumnScratch {
    fn resize(&mut self, len: usize) {
        self.g.resize(len, 0.0);
        self.line.resize(len, 0.0);
    }
}

/// Per-thread buffers for one contiguous line.
#[derive(Default)]
struct LineScratch {
    g: Vec<f64>,
    env: Envelope,
}

/// Transforms every contiguous line of `out` (length `line_len`) in full; `fill` writes the
/// squared distances of the previous axes for a line.
fn transform_lines_full(
    out: &mut [f64],
    line_len: usize,
    spacing: f64,
    fill: impl Fn(usize, &mut [f64]) + Sync,
) {
    let one_line = |scratch: &mut LineScratch, (line, dst): (usize, &mut [f64])| {
        scratch.g.resize(line_len, 0.0);
        fill(line, &mut scratch.g);
        scratch.env.transform_line(&scratch.g, spacing, dst);
    };
    if out.len() >= PAR_MIN_ELEMENTS {
        out.par_chunks_mut(line_len)
            .enumerate()
            .for_each_init(LineScratch::default, one_line);
    } else {
        let mut scratch = LineScratch::default();
        out.chunks_mut(line_len)
            .enumerate()
            .for_each(|t| one_line(&mut scratch, t));
    }
}

/// Squared distances at `queries` (flat, ascending); lines are contiguous runs of `line_len`.
/// Lines are handed out in contiguous groups, one cursor and one scratch per group.
fn answer_queries<S: LineSource>(
    queries: &[usize],
    line_len: usize,
    spacing: f64,
    source: &S,
) -> Vec<f64> {
    let mut out = vec![0.0; queries.len()];
    if line_len == 0 {
        return out;
    }
    let mut tasks = split_by_line(queries, &mut out, line_len);
    let run_group = |group: &mut [LineTask]| {
        let Some(&(first_line, _, _)) = group.first() else {
            return;
        };
        let mut cursor = source.cursor(first_line);
        let mut scratch = LineScratch::default();
        for (line, qs, dst) in group.iter_mut() {
            answer_line(
                source,
                &mut cursor,
                *line,
                line_len,
                spacing,
                qs,
                dst,
                &mut scratch,
            );
        }
    };
    if queries.len() >= PAR_MIN_QUERIES {
        let group_len = tasks
            .len()
            .div_ceil(4 * rayon::current_num_threads())
            .max(1);
        tasks.par_chunks_mut(group_len).for_each(run_group);
    } else {
        run_group(&mut tasks);
    }
    out
}

type LineTask<'q, 'o> = (usize, &'q [usize], &'o mut [f64]);

/// Splits ascending flat queries (and their output slots) into one task per line.
fn split_by_line<'q, 'o>(
    mut queries: &'q [usize],
    mut out: &'o mut [f64],
    line_len: usize,
) -> Vec<LineTask<'q, 'o>> {
    let mut tasks = Vec::new();
    while let Some(&first) = queries.first() {
        let line = first / line_len;
        let end = (line + 1) * line_len;
        let n = queries.partition_point(|&q| q < end);
        let (q, q_rest) = queries.split_at(n);
        let (o, o_rest) = std::mem::take(&mut out).split_at_mut(n);
        tasks.push((line, q, o));
        queries = q_rest;
        out = o_rest;
    }
    tasks
}

/// Answers the queries of one line: outward scans while they are cheap, then the envelope.
#[allow(clippy::too_many_arguments)]
fn answer_line<S: LineSource>(
    source: &S,
    cursor: &mut S::Cursor,
    line: usize,
    line_len: usize,
    spacing: f64,
    queries: &[usize],
    out: &mut [f64],
    scratch: &mut LineScratch,
) {
    let base = line * line_len;
    let mut budget = 4 * line_len + 32;
    for (i, &q) in queries.iter().enumerate() {
        let g = |x: usize| source.at(cursor, line, x);
        match scan_outwards(g, line_len, spacing, q - base, &mut budget) {
            Some(v) => out[i] = v,
            None => {
                scratch.g.resize(line_len, 0.0);
                source.fill(cursor, line, &mut scratch.g);
                scratch.env.build(&scratch.g, spacing);
                let mut segment = 0;
                for (slot, &q) in out[i..].iter_mut().zip(&queries[i..]) {
                    *slot = scratch
                        .env
                        .value_at(&scratch.g, spacing, q - base, &mut segment);
                }
                return;
            }
        }
    }
}

/// min over p of `g(p) + (s·(x − p))²` for p in `0..n`, scanning p outwards from x; `None` when
/// the budget runs out.
fn scan_outwards(
    mut g: impl FnMut(usize) -> f64,
    n: usize,
    spacing: f64,
    x: usize,
    budget: &mut usize,
) -> Option<f64> {
    let mut best = g(x);
    let mut k = 1;
    loop {
        let step = k as f64 * spacing;
        let t = step * step;
        let has_left = k <= x;
        let has_right = x + k < n;
        if t >= best || !(has_left || has_right) {
            return Some(best);
        }
        if *budget == 0 {
            return None;
        }
        *budget -= 1;
        if has_left {
            best = best.min(g(x - k) + t);
        }
        if has_right {
            best = best.min(g(x + k) + t);
        }
        k += 1;
    }
}

/// Lower envelope of the parabolas `g[p] + (s·(x − p))²` over the finite `g[p]`.
#[derive(Default)]
struct Envelope {
    /// Parabola apexes, left to right.
    sites: Vec<usize>,
    /// `bounds[k]`: where `sites[k + 1]` starts to be the lowest.
    bounds: Vec<f64>,
}

impl Envelope {
    fn build(&mut self, g: &[f64], spacing: f64) {
        let s2 = spacing * spacing;
        self.sites.clear();
        self.bounds.clear();
        for (q, &gq) in g.iter().enumerate() {
            if gq == f64::INFINITY {
                continue;
            }
            let qf = q as f64;
            let fq = gq + s2 * qf * qf;
            while let Some(&p) = self.sites.last() {
                let pf = p as f64;
                let fp = g[p] + s2 * pf * pf;
                let cross = (fq - fp) / (2.0 * s2 * (qf - pf));
                match self.bounds.last() {
                    Some(&start) if cross <= start => {
                        self.sites.pop();
                        self.bounds.pop();
                    }
                    _ => {
                        self.bounds.push(cross);
                        break;
                    }
                }
            }
            self.sites.push(q);
        }
    }

    /// Value at `x`; `segment` is a cursor that only moves right, so ascending queries are O(1) each.
    fn value_at(&self, g: &[f64], spacing: f64, x: usize, segment: &mut usize) -> f64 {
        if self.sites.is_empty() {
            return f64::INFINITY;
        }
        let xf = x as f64;
        while *segment < self.bounds.len() && self.bounds[*segment] < xf {
            *segment += 1;
        }
        let p = self.sites[*segment];
        let d = (xf - p as f64) * spacing;
        g[p] + d * d
    }

    fn transform_line(&mut self, g: &[f64], spacing: f64, out: &mut [f64]) {
        self.build(g, spacing);
        let mut segment = 0;
        for (x, v) in out.iter_mut().enumerate() {
            *v = self.value_at(g, spacing, x, &mut segment);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute_2d(mask: &Mask2d, s: [f64; 2]) -> Vec<f64> {
        let mut out = vec![f64::INFINITY; mask.rows() * mask.cols()];
        for r in 0..mask.rows() {
            for c in 0..mask.cols() {
                for fr in 0..mask.rows() {
                    for fc in 0..mask.cols() {
                        if mask.get(fr, fc) {
                            let a = (r as f64 - fr as f64) * s[0];
                            let b = (c as f64 - fc as f64) * s[1];
                            let d = a * a + b * b;
                            let slot = &mut out[r * mask.cols() + c];
                            *slot = slot.min(d);
                        }
                    }
                }
            }
        }
        out
    }

    fn brute_3d(mask: &Mask3d, s: [f64; 3]) -> Vec<f64> {
        let (d, h, w) = (mask.depth(), mask.rows(), mask.cols());
        let feats: Vec<[usize; 3]> = (0..d * h * w)
            .map(|i| [i / (h * w), (i / w) % h, i % w])
            .filter(|p| mask.get(p[0], p[1], p[2]))
            .collect();
        (0..d * h * w)
            .map(|i| {
                let p = [i / (h * w), (i / w) % h, i % w];
                feats
                    .iter()
                    .map(|f| {
                        let a = (p[0] as f64 - f[0] as f64) * s[0];
                        let b = (p[1] as f64 - f[1] as f64) * s[1];
                        let c = (p[2] as f64 - f[2] as f64) * s[2];
                        (a * a + b * b) + c * c
                    })
                    .fold(f64::INFINITY, f64::min)
            })
            .collect()
    }

    #[test]
    fn single_feature_distances() {
        let m = Mask2d::from_fn(3, 4, |r, c| r == 1 && c == 1);
        let d = edt_2d(&m, [1.0, 1.0]).unwrap();
        assert_eq!(d[4 + 1], 0.0);
        assert_eq!(d[3], 5f64.sqrt());
        assert_eq!(d[4 + 3], 2.0);
    }

    #[test]
    fn empty_mask_gives_infinity() {
        let d = edt_2d(&Mask2d::empty(3, 3), [1.0, 2.0]).unwrap();
        assert!(d.iter().all(|v| v.is_infinite()));
        let d3 = edt_3d(&Mask3d::empty(2, 2, 2), [1.0, 1.0, 1.0]).unwrap();
        assert!(d3.iter().all(|v| v.is_infinite()));
    }

    #[test]
    fn bad_spacing_is_an_error() {
        assert!(edt_2d(&Mask2d::empty(2, 2), [0.0, 1.0]).is_err());
        assert!(edt_3d(&Mask3d::empty(2, 2, 2), [1.0, -1.0, 1.0]).is_err());
    }

    #[test]
    fn scan_budget_falls_back_to_the_envelope() {
        // One feature at the far end: every query scans the whole line, exhausting the budget.
        let n = 300;
        let mut g = vec![f64::INFINITY; n];
        g[n - 1] = 0.0;
        let queries: Vec<usize> = (0..n).collect();
        let mut out = vec![0.0; n];
        let source = Planes { values: g, cols: n };
        answer_line(
            &source,
            &mut (),
            0,
            n,
            0.5,
            &queries,
            &mut out,
            &mut LineScratch::default(),
        );
        for (x, v) in out.iter().enumerate() {
            let d = (n - 1 - x) as f64 * 0.5;
            assert_eq!(*v, d * d);
        }
    }

    #[test]
    fn parallel_groups_of_sparse_and_dense_sources_agree_with_the_full_transform() {
        // More queries than PAR_MIN_QUERIES, so lines are split into groups with their own cursors.
        let (rows, cols) = (130, 97);
        let mask = Mask2d::from_fn(rows, cols, |r, c| (r * 37 + c * 11) % 211 == 0);
        let features: Vec<usize> = (0..rows * cols).filter(|&i| mask.data()[i]).collect();
        let queries: Vec<usize> = (0..rows * cols).collect();
        assert!(queries.len() >= PAR_MIN_QUERIES);
        let spacing = [0.75, 1.25];
        let full = squared_edt_2d(&mask, spacing).unwrap();
        let sparse = SparseColumns::new(&features, rows, cols, spacing[0]);
        let dense = DenseRuns {
            runs: AxisRuns::new(mask.data(), rows, cols, spacing[0]),
            cols,
        };
        for at in [
            answer_queries(&queries, cols, spacing[1], &sparse),
            answer_queries(&queries, cols, spacing[1], &dense),
        ] {
            for (a, b) in at.iter().zip(&full) {
                assert!((a - b).abs() <= 1e-12 * b.max(1.0), "{a} vs {b}");
            }
        }
    }

    fn mask_strategy_2d() -> impl Strategy<Value = Mask2d> {
        (1usize..9, 1usize..9).prop_flat_map(|(r, c)| {
            proptest::collection::vec(proptest::bool::weighted(0.15), r * c)
                .prop_map(move |data| Mask2d::new(r, c, data).unwrap())
        })
    }

    fn spacing_strategy() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.5),
            Just(0.75),
            Just(1.0),
            Just(1.25),
            Just(2.0),
            Just(3.0),
            0.1f64..4.0
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn edt_2d_matches_brute_force(m in mask_strategy_2d(), s0 in spacing_strategy(), s1 in spacing_strategy()) {
            let fast = squared_edt_2d(&m, [s0, s1]).unwrap();
            let slow = brute_2d(&m, [s0, s1]);
            for (a, b) in fast.iter().zip(&slow) {
                prop_assert!(a == b || (a - b).abs() <= 1e-12 * b.max(1.0), "{a} vs {b}");
            }
            // The query path (scan + envelope) answers exactly like the full transform.
            // The query path (outward scan + envelope fallback) answers like brute force.
            let queries: Vec<usize> = (0..m.rows() * m.cols()).collect();
            let features: Vec<usize> = queries.iter().copied().filter(|&i| m.data()[i]).collect();
            let shape = [m.rows(), m.cols()];
            let sparse = SparseColumns::new(&features, shape[0], shape[1], s0);
            let dense = DenseRuns { runs: AxisRuns::new(m.data(), shape[0], shape[1], s0), cols: shape[1] };
            let answers = [
                answer_queries(&queries, shape[1], s1, &sparse),
                answer_queries(&queries, shape[1], s1, &dense),
                squared_distances_at_2d(&features, shape, [s0, s1], &queries),
            ];
            for at in answers {
                for (a, b) in at.iter().zip(&slow) {
                    prop_assert!(a == b || (a - b).abs() <= 1e-12 * b.max(1.0), "{a} vs {b}");
                }
            }
        }

        #[test]
        fn edt_3d_matches_brute_force(
            (d, h, w) in (1usize..5, 1usize..6, 1usize..6),
            seed in any::<u64>(),
            s in (spacing_strategy(), spacing_strategy(), spacing_strategy()),
        ) {
            let mut state = seed;
            let m = Mask3d::from_fn(d, h, w, |_, _, _| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 59) < 3
            });
            let spacing = [s.0, s.1, s.2];
            let fast = squared_edt_3d(&m, spacing).unwrap();
            let slow = brute_3d(&m, spacing);
            for (a, b) in fast.iter().zip(&slow) {
                prop_assert!(a == b || (a - b).abs() <= 1e-12 * b.max(1.0), "{a} vs {b}");
            }
            let queries: Vec<usize> = (0..d * h * w).collect();
            let features: Vec<usize> = queries.iter().copied().filter(|&i| m.data()[i]).collect();
            let at = squared_distances_at_3d(&features, [d, h, w], spacing, &queries);
            for (a, b) in at.iter().zip(&slow) {
                prop_assert!(a == b || (a - b).abs() <= 1e-12 * b.max(1.0), "{a} vs {b}");
            }
        }
    }
}
