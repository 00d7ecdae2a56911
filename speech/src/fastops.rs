//! Hand-tuned kernels for the two spots where candle's generic CPU ops cost
//! most in Whisper: the output projection of the decoder (one token's hidden
//! state against the whole vocabulary, a memory-bound matrix-vector product
//! done here on int8 rows with per-row scales, as CTranslate2 does) and the
//! exact GELU (candle's erf is several times slower than a polynomial one).
//! Both split their work over rayon's pool.

use rayon::prelude::*;

/// Rows `[rows][cols]` quantised to int8 with one scale per row.
pub struct QuantizedRows {
    data: Vec<i8>,
    scales: Vec<f32>,
    cols: usize,
}

const ROWS_PER_TASK: usize = 2048;

impl QuantizedRows {
    pub fn from_f32(weights: &[f32], cols: usize) -> Self {
        let mut data = vec![0i8; weights.len()];
        let scales = weights
            .chunks_exact(cols)
            .zip(data.chunks_exact_mut(cols))
            .map(|(row, out)| {
                let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
                for (o, v) in out.iter_mut().zip(row) {
                    *o = (v / scale).round().clamp(-127.0, 127.0) as i8;
                }
                scale
            })
            .collect();
        QuantizedRows { data, scales, cols }
    }

    /// `rows · x` for one vector `x` of length `cols`.
    pub fn matvec(&self, x: &[f32]) -> Vec<f32> {
        let cols = self.cols;
        let mut out = vec![0.0f32; self.scales.len()];
        out.par_chunks_mut(ROWS_PER_TASK)
            .enumerate()
            .for_each(|(task, out)| {
                let first = task * ROWS_PER_TASK;
                let rows = &self.data[first * cols..(first + out.len()) * cols];
                let scales = &self.scales[first..first + out.len()];
                dot_rows(rows, scales, x, out);
            });
        out
    }
}

fn dot_rows(rows: &[i8], scales: &[f32], x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU was just checked to have AVX2 and FMA.
            unsafe { dot_rows_avx2(rows, scales, x, out) };
            return;
        }
    }
    dot_rows_portable(rows, scales, x, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_rows_avx2(rows: &[i8], scales: &[f32], x: &[f32], out: &mut [f32]) {
    dot_rows_portable(rows, scales, x, out)
}

/// Written so the compiler vectorises it (16 independent lanes).
#[inline(always)]
fn dot_rows_portable(rows: &[i8], scales: &[f32], x: &[f32], out: &mut [f32]) {
    let cols = x.len();
    for ((row, scale), o) in rows.chunks_exact(cols).zip(scales).zip(out.iter_mut()) {
        let mut acc = [0.0f32; 16];
        let mut row_chunks = row.chunks_exact(16);
        let mut x_chunks = x.chunks_exact(16);
        for (r, xs) in (&mut row_chunks).zip(&mut x_chunks) {
            for i in 0..16 {
                acc[i] += r[i] as f32 * xs[i];
            }
        }
        let mut sum: f32 = acc.iter().sum();
        for (r, xs) in row_chunks.remainder().iter().zip(x_chunks.remainder()) {
            sum += *r as f32 * xs;
        }
        *o = sum * scale;
    }
}

/// GELU with the exact (erf) form, in place.
pub fn gelu_erf_in_place(values: &mut [f32]) {
    values.par_chunks_mut(16 * 1024).for_each(|chunk| {
        for v in chunk {
            let x = *v;
            *v = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
        }
    });
}

/// erf, Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    sign * (1.0 - poly * (-x * x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-2.0, -0.995_322_3),
        ] {
            assert!((erf(x) - want).abs() < 1e-6, "erf({x}) = {}", erf(x));
        }
        let mut v = vec![-1.0f32, 0.0, 1.0];
        gelu_erf_in_place(&mut v);
        assert!(
            (v[0] + 0.158_655_3).abs() < 1e-5 && v[1] == 0.0 && (v[2] - 0.841_344_7).abs() < 1e-5
        );
    }

    #[test]
    fn int8_matvec_is_close_to_f32() {
        let cols = 40;
        let weights: Vec<f32> = (0..5000 * cols)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 / 10.0).sin()).collect();
        let got = QuantizedRows::from_f32(&weights, cols).matvec(&x);
        for (row, g) in weights.chunks_exact(cols).zip(&got) {
            let want: f32 = row.iter().zip(&x).map(|(w, x)| w * x).sum();
            assert!((want - g).abs() < 0.05, "{want} vs {g}");
        }
    }
}
