//! Data sources, bad files, splits, augmentation, loader determinism.
mod common;

use privlin::data::augment::{render, Jitter};
use privlin::data::{DataConfig, Loader, Normalization};
use std::path::Path;
use tch::Device;

fn cfg(source: &str) -> DataConfig {
    DataConfig {
        source: source.into(),
        ..DataConfig::default()
    }
}

fn write_cifar10(dir: &Path, per_file: usize, truncate_test: bool) {
    for (i, name) in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ]
    .iter()
    .enumerate()
    {
        let mut bytes = Vec::new();
        for r in 0..per_file {
            bytes.push(((r + i) % 10) as u8);
            bytes.extend((0..3072).map(|p| ((p + r * 7 + i) % 256) as u8));
        }
        if truncate_test && *name == "test_batch.bin" {
            bytes.truncate(bytes.len() - 100);
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn cifar10_binary_layout_loads_and_truncation_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar10(dir.path(), 20, false);
    let s = cfg(dir.path().to_str().unwrap()).load().unwrap();
    assert_eq!((s.train.len(), s.test.len(), s.classes()), (100, 20, 10));
    assert_eq!(s.train.labels[..3], [0, 1, 2]);
    assert_eq!(s.train.image(1)[..2], [7, 8]);

    write_cifar10(dir.path(), 20, true);
    let e = format!(
        "{:#}",
        cfg(dir.path().to_str().unwrap()).load().unwrap_err()
    );
    assert!(
        e.contains("test_batch.bin") && e.contains("truncated"),
        "{e}"
    );
}

#[test]
fn cifar100_binary_layout_and_corrupt_labels() {
    let dir = tempfile::tempdir().unwrap();
    for (name, n) in [("train.bin", 30usize), ("test.bin", 10)] {
        let mut bytes = Vec::new();
        for r in 0..n {
            bytes.push((r % 20) as u8);
            bytes.push((r % 100) as u8);
            bytes.extend(std::iter::repeat_n(r as u8, 3072));
        }
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let s = cfg(dir.path().to_str().unwrap()).load().unwrap();
    assert_eq!((s.train.len(), s.classes()), (30, 100));
    assert_eq!(s.train.labels[25], 25);
    let mut c = cfg(dir.path().to_str().unwrap());
    c.format = "cifar100-coarse".into();
    let s = c.load().unwrap();
    assert_eq!((s.classes(), s.train.labels[25]), (20, 5));
    // A fine label of 200 is corrupt.
    let mut bytes = std::fs::read(dir.path().join("test.bin")).unwrap();
    bytes[3074 + 1] = 200;
    std::fs::write(dir.path().join("test.bin"), bytes).unwrap();
    let e = format!(
        "{:#}",
        cfg(dir.path().to_str().unwrap()).load().unwrap_err()
    );
    assert!(e.contains("test.bin") && e.contains("record 1"), "{e}");
}

#[test]
fn real_cifar10_image_folder_loads_with_exact_labels() {
    let root = common::shared().join("data/cifar10");
    let mut c = cfg(root.to_str().unwrap());
    c.train_per_class = Some(20);
    c.test_per_class = Some(10);
    let s = c.load().unwrap();
    assert_eq!((s.train.len(), s.test.len(), s.train.size), (200, 100, 32));
    assert_eq!(s.train.classes[0], "airplane");
    assert_eq!(s.train.classes[9], "truck");
    assert_eq!(s.train.labels[0], 0);
    assert_eq!(s.train.labels[199], 9);
    // Real photographs: per-channel statistics near CIFAR-10's published ones.
    let n = s.norm;
    assert!(
        (n.mean[0] - 0.49).abs() < 0.06 && (n.std[0] - 0.25).abs() < 0.06,
        "{n:?}"
    );
}

fn copy_some_images(from: &Path, to: &Path, n: usize) {
    std::fs::create_dir_all(to).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(from)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files.iter().take(n) {
        std::fs::copy(f, to.join(f.file_name().unwrap())).unwrap();
    }
}

#[test]
fn image_folder_errors_name_the_file_or_folder() {
    let src = common::shared().join("data/cifar10");
    let dir = tempfile::tempdir().unwrap();
    for split in ["train", "test"] {
        for class in ["cat", "dog"] {
            copy_some_images(
                &src.join(split).join(class),
                &dir.path().join(split).join(class),
                3,
            );
        }
    }
    assert_eq!(
        cfg(dir.path().to_str().unwrap())
            .load()
            .unwrap()
            .train
            .len(),
        6
    );

    let bad = dir.path().join("train/dog/notes.jpg");
    std::fs::write(&bad, b"this is not a JPEG").unwrap();
    let e = format!(
        "{:#}",
        cfg(dir.path().to_str().unwrap()).load().unwrap_err()
    );
    assert!(
        e.contains("notes.jpg") && e.contains("not a decodable image"),
        "{e}"
    );
    std::fs::remove_file(&bad).unwrap();

    std::fs::create_dir_all(dir.path().join("train/emu")).unwrap();
    let e = format!(
        "{:#}",
        cfg(dir.path().to_str().unwrap()).load().unwrap_err()
    );
    assert!(e.contains("emu") && e.contains("empty class folder"), "{e}");
}

#[test]
fn tiny_imagenet_slice_loads_and_missing_annotations_are_named() {
    let root = common::shared().join("data/tiny-imagenet-200-slice");
    let mut c = cfg(root.to_str().unwrap());
    c.train_per_class = Some(2);
    c.test_per_class = Some(1);
    let s = c.load().unwrap();
    assert_eq!(
        (s.classes(), s.train.size, s.train.len(), s.test.len()),
        (200, 64, 400, 200)
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root.join("wnids.txt"), dir.path().join("wnids.txt")).unwrap();
    let wnids = std::fs::read_to_string(root.join("wnids.txt")).unwrap();
    for w in wnids.lines().filter(|l| !l.is_empty()) {
        copy_some_images(
            &root.join("train").join(w).join("images"),
            &dir.path().join("train").join(w).join("images"),
            1,
        );
    }
    std::fs::create_dir_all(dir.path().join("val/images")).unwrap();
    let e = format!(
        "{:#}",
        cfg(dir.path().to_str().unwrap()).load().unwrap_err()
    );
    assert!(e.contains("val_annotations.txt"), "{e}");
}

#[test]
fn unknown_layouts_and_formats_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = format!(
        "{:#}",
        cfg(dir.path().to_str().unwrap()).load().unwrap_err()
    );
    assert!(e.contains("layout not recognised"), "{e}");
    let mut c = cfg(dir.path().to_str().unwrap());
    c.format = "mnist".into();
    let e = format!("{:#}", c.load().unwrap_err());
    assert!(e.contains("unknown data format `mnist`"), "{e}");
}

#[test]
fn synthetic_data_is_seeded_and_holdout_is_stratified_and_disjoint() {
    let mut c = cfg("synthetic");
    c.train_per_class = Some(40);
    c.test_per_class = Some(10);
    c.holdout = 0.25;
    let a = c.load().unwrap();
    let b = c.load().unwrap();
    assert_eq!(a.train.images, b.train.images);
    let h = a.holdout.as_ref().unwrap();
    assert_eq!((a.train.len(), h.len()), (300, 100));
    for k in 0..10 {
        assert_eq!(h.labels.iter().filter(|&&l| l == k).count(), 10);
    }
    // Held-out images are not in the training part.
    let px = a.train.pixels();
    let train_imgs: std::collections::HashSet<&[u8]> = a.train.images.chunks(px).collect();
    assert!(h.images.chunks(px).all(|img| !train_imgs.contains(img)));
    // Another seed draws other images; the test split differs from the training split.
    c.seed = 1;
    assert_ne!(c.load().unwrap().train.images, a.train.images);
    assert_ne!(a.test.image(0), a.train.image(0));
}

#[test]
fn augmentation_pads_with_zeros_and_flips() {
    let size = 4i64;
    let src: Vec<u8> = (0..48).map(|i| i as u8).collect();
    let norm = Normalization {
        mean: [0.0; 3],
        std: [1.0 / 255.0; 3],
    };
    let mut dst = vec![0f32; 48];
    render(
        &src,
        size,
        Jitter {
            dy: 1,
            dx: 0,
            flip: false,
        },
        &norm,
        &mut dst,
    );
    assert_eq!(dst[0], 4.0); // row 1 moved up
    assert_eq!(dst[12], 0.0); // the padded row is zero
    render(
        &src,
        size,
        Jitter {
            dy: 0,
            dx: 0,
            flip: true,
        },
        &norm,
        &mut dst,
    );
    assert_eq!(&dst[..4], &[3.0, 2.0, 1.0, 0.0]);
}

#[test]
fn loader_is_deterministic_and_covers_the_epoch() {
    let mut c = cfg("synthetic");
    c.train_per_class = Some(20);
    c.test_per_class = Some(5);
    let s = c.load().unwrap();
    let l = Loader::train(s.train.clone(), s.norm, 32, 3, true, Device::Cpu);
    assert_eq!(l.batches_per_epoch(), 6);
    let a: Vec<_> = l.epoch(0).collect();
    let b: Vec<_> = l.epoch(0).collect();
    let e1: Vec<_> = l.epoch(1).collect();
    assert_eq!(a.len(), 6);
    for (x, y) in a.iter().zip(&b) {
        assert!(x.images.equal(&y.images) && x.labels.equal(&y.labels));
    }
    assert!(!a[0].images.equal(&e1[0].images), "epochs must differ");
    let ev = Loader::eval(s.test.clone(), s.norm, 16, Device::Cpu);
    let n: i64 = ev.epoch(0).map(|b| b.len()).sum();
    assert_eq!(n, 50);
}
