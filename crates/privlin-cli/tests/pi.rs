//! Private inference end to end over TCP: a narrow ResNet-18 trained and linearized on real
//! CIFAR-10 images, exported, served and queried by two processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_privlin")
}

fn privlin(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cifar() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cifar10");
    assert!(p.is_dir(), "{} is missing", p.display());
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn private_class_equals_float_class_on_cifar10() {
    let dir = tempfile::tempdir().unwrap();
    let (ar, lin, export) = (
        dir.path().join("ar"),
        dir.path().join("lin"),
        dir.path().join("pi"),
    );
    let data = cifar();
    let (ok, _, err) = privlin(&[
        "train",
        "--arch",
        "resnet18",
        "--width",
        "0.125",
        "--epochs",
        "2",
        "--data",
        s(&data),
        "--train-per-class",
        "40",
        "--test-per-class",
        "5",
        "--batch-size",
        "32",
        "--out",
        s(&ar),
        "--device",
        "cpu",
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = privlin(&[
        "linearize",
        "--ckpt",
        s(&ar),
        "--method",
        "taylor",
        "--total",
        "10%",
        "--epochs",
        "1",
        "--train-per-class",
        "40",
        "--out",
        s(&lin),
        "--device",
        "cpu",
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = privlin(&["pi", "export", "--ckpt", s(&lin), "--out", s(&export)]);
    assert!(ok && out.contains("active ReLUs"), "{out}{err}");

    // The cost model on the export: every layer listed, the papers' figure beside ours.
    let (ok, out, err) = privlin(&["cost", "--model", s(&export), "--no-calibrate"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("layer1.0.act1")
            && out.contains("0.021 s per 1,000 ReLUs")
            && out.contains("dealer"),
        "{out}"
    );

    let addr = format!("127.0.0.1:{}", free_port());
    let mut server = Command::new(bin())
        .args(["pi", "serve", "--model", s(&export), "--listen", &addr])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut tries = 0;
    let (ok, out, err) = loop {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let r = privlin(&[
            "pi",
            "client",
            "--connect",
            &addr,
            "--data",
            s(&data),
            "--images",
            "12",
            "--check",
            s(&lin),
        ]);
        tries += 1;
        if r.0 || !r.2.contains("connecting") || tries > 50 {
            break r;
        }
    };
    let status = server.wait().unwrap();
    assert!(ok, "{out}{err}");
    assert!(status.success());
    assert!(
        out.contains("private class == float model's class on 12/12 images"),
        "{out}"
    );
    // Traffic was counted per layer.
    assert!(
        out.contains("online/layer1.0.act1") && out.contains("offline/layer1.0.conv1"),
        "{out}"
    );
}

#[test]
fn bad_exports_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = privlin(&["cost", "--model", s(dir.path())]);
    assert!(!ok && err.contains("neither an export"), "{err}");
    std::fs::write(dir.path().join("model.json"), "{\"format\": 3").unwrap();
    let (ok, _, err) = privlin(&["cost", "--model", s(dir.path()), "--no-calibrate"]);
    assert!(!ok && err.contains("model.json"), "{err}");
    let (ok, _, err) = privlin(&["pi", "bench", "--profiles", "moon"]);
    assert!(
        !ok && err.contains("unknown network profile `moon`"),
        "{err}"
    );
    let (ok, _, err) = privlin(&["cost", "--model", s(dir.path()), "--ring-bits", "16"]);
    assert!(!ok && err.contains("ring bits"), "{err}");
}
