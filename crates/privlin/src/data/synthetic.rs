//! The built-in synthetic dataset: procedurally drawn shapes and textures, generated in-process
//! from a seed (no files).
//!
//! Ten classes (disk, square, triangle, ring, plus, X, horizontally striped disk, vertically
//! striped disk, checkerboard, frame) at a random position, scale and small rotation, in a random
//! foreground colour on a random background with a colour gradient, with distractor patches and
//! pixel noise. Colours and contrast polarity are random per image, so no linear function of the
//! pixels separates the classes: a network needs its nonlinearities, and linearizing it costs
//! accuracy.

use super::Dataset;
use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

pub const CLASS_NAMES: [&str; 10] = [
    "disk", "square", "triangle", "ring", "plus", "cross", "hstripes", "vstripes", "checker",
    "frame",
];

/// Parameters of the generator.
#[derive(Debug, Clone, Copy)]
pub struct SyntheticSpec {
    pub seed: u64,
    pub classes: usize,
    pub size: usize,
    pub train_per_class: usize,
    pub test_per_class: usize,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec {
            seed: 0,
            classes: 10,
            size: 32,
            train_per_class: 500,
            test_per_class: 100,
        }
    }
}

/// Whether shape-local coordinates `(u, v)` (unit = shape radius) lie inside class `class`.
fn inside(class: usize, u: f32, v: f32) -> bool {
    let r2 = u * u + v * v;
    let box_norm = u.abs().max(v.abs());
    match class {
        0 => r2 < 1.0,
        1 => box_norm < 0.8,
        2 => v < 0.6 && v > -1.0 + 1.8 * u.abs(),
        3 => (0.3..1.0).contains(&r2),
        4 => (u.abs() < 0.28 && v.abs() < 1.0) || (v.abs() < 0.28 && u.abs() < 1.0),
        5 => {
            let (a, b) = (
                (u + v) * std::f32::consts::FRAC_1_SQRT_2,
                (u - v) * std::f32::consts::FRAC_1_SQRT_2,
            );
            (a.abs() < 0.25 && b.abs() < 1.0) || (b.abs() < 0.25 && a.abs() < 1.0)
        }
        6 => r2 < 1.0 && (v * 3.0 * std::f32::consts::PI).sin() > 0.0,
        7 => r2 < 1.0 && (u * 3.0 * std::f32::consts::PI).sin() > 0.0,
        8 => {
            box_norm < 0.9
                && (((u + 1.0) * 2.0).floor() as i32 + ((v + 1.0) * 2.0).floor() as i32) % 2 == 0
        }
        9 => box_norm < 0.9 && box_norm > 0.55,
        _ => unreachable!("class index checked by generate"),
    }
}

fn luminance(c: [f32; 3]) -> f32 {
    0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
}

fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    // Box-Muller.
    let u1: f32 = rng.gen_range(f32::EPSILON..1.0);
    let u2: f32 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

/// Draw one image of class `class` into `out` (CHW, u8), from its own RNG.
pub fn draw(class: usize, size: usize, rng: &mut ChaCha8Rng, out: &mut [u8]) {
    let s = size as f32;
    let bg: [f32; 3] = [rng.gen(), rng.gen(), rng.gen()];
    let fg = loop {
        let c: [f32; 3] = [rng.gen(), rng.gen(), rng.gen()];
        if (luminance(c) - luminance(bg)).abs() > 0.25 {
            break c;
        }
    };
    let grad_angle: f32 = rng.gen_range(0.0..std::f32::consts::TAU);
    let grad_amp: f32 = rng.gen_range(0.0..0.25);
    let grad_col: [f32; 3] = [
        rng.gen_range(-1.0..1.0),
        rng.gen_range(-1.0..1.0),
        rng.gen_range(-1.0..1.0),
    ];
    let cx = rng.gen_range(0.32..0.68) * s;
    let cy = rng.gen_range(0.32..0.68) * s;
    let radius = rng.gen_range(0.2..0.34) * s;
    let theta: f32 = rng.gen_range(-0.35..0.35);
    let (sin, cos) = theta.sin_cos();
    let noise = rng.gen_range(0.02..0.10);
    // Up to two distractor patches in random colours.
    let n_distract = rng.gen_range(0..=2);
    let distractors: Vec<([f32; 4], [f32; 3])> = (0..n_distract)
        .map(|_| {
            let w = rng.gen_range(0.06..0.16) * s;
            let h = rng.gen_range(0.06..0.16) * s;
            let x0 = rng.gen_range(0.0..s - w);
            let y0 = rng.gen_range(0.0..s - h);
            ([x0, y0, x0 + w, y0 + h], [rng.gen(), rng.gen(), rng.gen()])
        })
        .collect();
    let plane = size * size;
    for y in 0..size {
        for x in 0..size {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let g = grad_amp
                * (((px / s - 0.5) * grad_angle.cos() + (py / s - 0.5) * grad_angle.sin()) * 2.0);
            let mut c = [
                bg[0] + g * grad_col[0],
                bg[1] + g * grad_col[1],
                bg[2] + g * grad_col[2],
            ];
            for (r, col) in &distractors {
                if px >= r[0] && px < r[2] && py >= r[1] && py < r[3] {
                    c = *col;
                }
            }
            let (dx, dy) = ((px - cx) / radius, (py - cy) / radius);
            let (u, v) = (cos * dx + sin * dy, -sin * dx + cos * dy);
            if inside(class, u, v) {
                c = fg;
            }
            for ch in 0..3 {
                let val = c[ch] + noise * gaussian(rng);
                out[ch * plane + y * size + x] = (val.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
}

fn generate_split(spec: &SyntheticSpec, per_class: usize, stream: u64, name: &str) -> Dataset {
    let n = per_class * spec.classes;
    let pixels = 3 * spec.size * spec.size;
    let mut images = vec![0u8; n * pixels];
    images
        .par_chunks_mut(pixels)
        .enumerate()
        .for_each(|(i, out)| {
            let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
            rng.set_stream(stream);
            rng.set_word_pos(i as u128 * (1 << 20));
            draw(i % spec.classes, spec.size, &mut rng, out);
        });
    Dataset::new(
        name.to_string(),
        images,
        (0..n).map(|i| (i % spec.classes) as i64).collect(),
        CLASS_NAMES[..spec.classes]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        spec.size as i64,
    )
}

/// Generate `(train, test)` from `spec`; the two splits come from disjoint random streams.
pub fn generate(spec: &SyntheticSpec) -> Result<(Dataset, Dataset)> {
    if spec.classes < 2 || spec.classes > CLASS_NAMES.len() {
        bail!(
            "the synthetic dataset has 2 to {} classes, {} asked",
            CLASS_NAMES.len(),
            spec.classes
        );
    }
    if spec.size < 16 {
        bail!(
            "synthetic images must be at least 16x16, {} asked",
            spec.size
        );
    }
    Ok((
        generate_split(spec, spec.train_per_class, 1, "synthetic/train"),
        generate_split(spec, spec.test_per_class, 2, "synthetic/test"),
    ))
}
