#![allow(dead_code)]
use std::path::PathBuf;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `../shared` beside the repository (present on developer machines and in CI).
pub fn shared() -> PathBuf {
    let p = repo().join("../shared");
    assert!(
        p.is_dir(),
        "{} is missing: the data tests need ../shared beside the repo",
        p.display()
    );
    p.canonicalize().unwrap()
}

pub fn python() -> PathBuf {
    repo().join(".venv/bin/python")
}
