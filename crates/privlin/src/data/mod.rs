//! Datasets held in memory as `u8` CHW images, and their sources.

pub mod augment;
pub mod cifar;
pub mod image_folder;
pub mod loader;
pub mod source;
pub mod synthetic;
pub mod tiny_imagenet;

pub use loader::{Batch, Loader};
pub use source::{DataConfig, Splits};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Per-channel normalization `(x / 255 - mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// Images `N x 3 x S x S` (u8, CHW per image) with integer labels.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub images: Vec<u8>,
    pub labels: Vec<i64>,
    pub classes: Vec<String>,
    pub size: i64,
}

impl Dataset {
    pub fn new(
        name: String,
        images: Vec<u8>,
        labels: Vec<i64>,
        classes: Vec<String>,
        size: i64,
    ) -> Self {
        debug_assert_eq!(images.len(), labels.len() * 3 * (size * size) as usize);
        Dataset {
            name,
            images,
            labels,
            classes,
            size,
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn pixels(&self) -> usize {
        3 * (self.size * self.size) as usize
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let p = self.pixels();
        &self.images[i * p..(i + 1) * p]
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize], name: String) -> Dataset {
        let mut images = Vec::with_capacity(indices.len() * self.pixels());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        Dataset::new(
            name,
            images,
            indices.iter().map(|&i| self.labels[i]).collect(),
            self.classes.clone(),
            self.size,
        )
    }

    /// Keep at most `per_class` images of each class (the first ones, in order).
    pub fn limit_per_class(&self, per_class: usize) -> Dataset {
        let mut seen = vec![0usize; self.classes.len()];
        let keep: Vec<usize> = (0..self.len())
            .filter(|&i| {
                let c = self.labels[i] as usize;
                seen[c] += 1;
                seen[c] <= per_class
            })
            .collect();
        self.subset(&keep, self.name.clone())
    }

    /// Split off a stratified held-out part: `fraction` of each class, chosen with `seed`.
    /// Returns `(rest, held_out)`.
    pub fn split_holdout(&self, fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); self.classes.len()];
        for (i, &l) in self.labels.iter().enumerate() {
            by_class[l as usize].push(i);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x05ee_d0f4_01d0_u64);
        let (mut rest, mut held) = (Vec::new(), Vec::new());
        for mut idx in by_class {
            idx.shuffle(&mut rng);
            let k = ((idx.len() as f64) * fraction).round() as usize;
            held.extend_from_slice(&idx[..k]);
            rest.extend_from_slice(&idx[k..]);
        }
        rest.sort_unstable();
        held.sort_unstable();
        (
            self.subset(&rest, self.name.clone()),
            self.subset(&held, format!("{} (held out)", self.name)),
        )
    }

    /// Mean and standard deviation of each channel over the whole set.
    pub fn channel_stats(&self) -> Normalization {
        let plane = (self.size * self.size) as usize;
        let mut sum = [0f64; 3];
        let mut sq = [0f64; 3];
        for img in self.images.chunks_exact(3 * plane) {
            for c in 0..3 {
                for &v in &img[c * plane..(c + 1) * plane] {
                    let x = v as f64 / 255.0;
                    sum[c] += x;
                    sq[c] += x * x;
                }
            }
        }
        let n = (self.len() * plane).max(1) as f64;
        let mut mean = [0f32; 3];
        let mut std = [0f32; 3];
        for c in 0..3 {
            let m = sum[c] / n;
            mean[c] = m as f32;
            std[c] = ((sq[c] / n - m * m).max(1e-12)).sqrt() as f32;
        }
        Normalization { mean, std }
    }
}
