//! Private inference end to end over TCP: a narrow ResNet-18 trained and linearized on real
//! CIFAR-10 images, exported, served and queried by two processes.

mod common;

use common::{privlin, s};
use std::path::PathBuf;
use std::process::{Command, Stdio};

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
            && out.contains("he (RLWE"),
        "{out}"
    );

    // With this machine's calibration: predicted seconds per profile, and the per-layer chart.
    let svg = dir.path().join("cost.svg");
    let (ok, out, err) = privlin(&["cost", "--model", s(&export), "--plot", s(&svg)]);
    assert!(ok, "{err}");
    assert!(out.contains("wan (50 MB/s, 40 ms RTT"), "{out}");
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(
        chart.contains("<svg") && chart.contains("layer1.0.act1"),
        "{chart}"
    );
    let (ok, _, err) = privlin(&[
        "cost",
        "--model",
        s(&export),
        "--plot",
        s(&svg),
        "--no-calibrate",
    ]);
    assert!(!ok && err.contains("--no-calibrate"), "{err}");

    let addr = format!("127.0.0.1:{}", free_port());
    let mut server = Command::new(env!("CARGO_BIN_EXE_privlin"))
        .args([
            "pi",
            "serve",
            "--model",
            s(&export),
            "--listen",
            &addr,
            "--sessions",
            "1",
        ])
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
    let mut log = String::new();
    use std::io::Read;
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let status = server.wait().unwrap();
    assert!(ok, "{out}{err}");
    assert!(status.success());
    // One log line per request: the client's address, offline inline (no pool), online, bytes.
    assert_eq!(log.matches("inference, model").count(), 12, "{log}");
    assert!(
        log.contains("offline inline") && log.contains("session ended, 12 inferences served"),
        "{log}"
    );
    assert!(
        out.contains("private class == float model's class on 12/12 images"),
        "{out}"
    );
    // Traffic was counted per layer; the default output is the class, by a garbled argmax.
    assert!(
        out.contains("online/layer1.0.act1") && out.contains("offline/layer1.0.conv1"),
        "{out}"
    );
    assert!(
        out.contains("output: class only") && out.contains("online/argmax"),
        "{out}"
    );

    // The service under a short load: two sessions with pools, every class checked.
    let json = dir.path().join("load.json");
    let (ok, out, err) = privlin(&[
        "pi",
        "load",
        "--model",
        s(&export),
        "--rates",
        "2",
        "--duration",
        "2",
        "--clients",
        "2",
        "--pool",
        "1",
        "--images",
        "2",
        "--json",
        s(&json),
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("saturation at about") && out.contains("| 2 |"),
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let level = &v["models"][0]["levels"][0];
    assert_eq!(level["wrong"], 0);
    assert_eq!(level["failures"].as_array().unwrap().len(), 0);
    assert_eq!(level["completed"], level["arrived"]);
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
    let (ok, _, err) = privlin(&["pi", "bench", "--output", "everything"]);
    assert!(
        !ok && err.contains("unknown output mode `everything`"),
        "{err}"
    );
    let (ok, _, err) = privlin(&["pi", "bench", "--offline", "teleport"]);
    assert!(
        !ok && err.contains("unknown offline mode `teleport`"),
        "{err}"
    );
    let (ok, _, err) = privlin(&["pi", "bench", "--he-weight-bits", "0"]);
    assert!(!ok && err.contains("weight bound"), "{err}");
    let (ok, _, err) = privlin(&["cost", "--model", s(dir.path()), "--ring-bits", "16"]);
    assert!(!ok && err.contains("ring bits"), "{err}");
}

/// The pipeline's private-inference stage: export, test images under the protocol, pi.json, the
/// report section; skipped when done, redone when `[pi]` changes; sweep columns and the latency
/// Pareto plot; `privlin pi measure` on its own.
#[test]
fn pipeline_measures_private_inference() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let cfg = common::pipeline_config(
        dir.path(),
        r#"preset = "relupruner"
budget = "3%"

[model]
arch = "resnet18"
width = 0.125

[data]
source = "synthetic"
train_per_class = 20
test_per_class = 5

[pi]
images = 4
"#,
    );
    let c = s(&cfg);
    let (ok, out, err) = privlin(&["run", c]);
    assert!(ok, "{err}");
    assert!(
        out.contains("private inference of 4 test images: private class = float class on"),
        "{out}"
    );
    let pi: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("pi/pi.json")).unwrap()).unwrap();
    let ft: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("final/finetune.json")).unwrap())
            .unwrap();
    assert_eq!(pi["images"], 4);
    assert_eq!(pi["partial"]["active_relus"], ft["relus"]);
    assert!(pi["agree_float"].as_u64().unwrap() >= 3, "{pi}");
    assert!(pi["offline_linear"].as_str().unwrap().contains("he (RLWE"));
    // Both parties ran from a public seed: said so; the client learned the class only.
    assert!(
        pi["randomness"].as_str().unwrap().contains("INSECURE"),
        "{pi}"
    );
    assert!(
        pi["output"].as_str().unwrap().contains("class only"),
        "{pi}"
    );
    // Online bytes: 16 w + l / 8 per active ReLU plus the input, the logits and framing.
    let active = pi["partial"]["active_relus"].as_u64().unwrap();
    let online = pi["partial"]["online_bytes"].as_u64().unwrap();
    assert!(
        online > 520 * active && online < 520 * active + 200_000,
        "{pi}"
    );
    // The all-ReLU network costs more: what the budget bought.
    assert!(pi["all_relu"]["online_bytes"].as_u64().unwrap() > 10 * online);
    assert!(run.join("pi/model.json").exists() && run.join("pi/weights.safetensors").exists());
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("## Private inference (privlin-mpc, measured)") && report.contains("wan"),
        "{report}"
    );
    assert!(report.contains("INSECURE seeded randomness"), "{report}");
    // Done: skipped; another [pi]: measured again.
    let (ok, _, err) = privlin(&["run", c]);
    assert!(ok && err.contains("pi is complete, skipped"), "{err}");
    let (ok, _, err) = privlin(&["run", c, "--set", "pi.images=2"]);
    assert!(
        ok && err.contains("config.images: 4 -> 2") && err.contains("making it again"),
        "{err}"
    );
    let (ok, _, err) = privlin(&["run", c, "--set", "pi.ring_bits=16"]);
    assert!(
        !ok && err.contains("[pi]") && err.contains("ring bits"),
        "{err}"
    );
    // A sweep carries the measured cost into its CSV and plots accuracy against latency.
    let (ok, out, err) = privlin(&["sweep", c, "--budgets", "3%,6%"]);
    assert!(ok, "{out}{err}");
    let csv = std::fs::read_to_string(run.join("sweep.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "pi_online_bytes").unwrap();
    for line in csv.lines().skip(1) {
        let v: u64 = line.split(',').nth(col).unwrap().parse().unwrap();
        assert!(v > 0, "{csv}");
    }
    assert!(std::fs::read_to_string(run.join("pareto-latency.svg"))
        .unwrap()
        .contains("<svg"));
    // The stage on its own, with another ring.
    let out_dir = dir.path().join("measure");
    let (ok, out, err) = privlin(&[
        "pi",
        "measure",
        "--ckpt",
        s(&run.join("final")),
        "--out",
        s(&out_dir),
        "--images",
        "2",
        "--ring-bits",
        "56",
        "--frac",
        "10",
        "--gc-bits",
        "26",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("ring l = 56, f = 10, w = 26"), "{out}");
    assert!(out_dir.join("pi.json").exists());
    // A ring whose local truncation would fail too often for this model is refused up front.
    let (ok, _, err) = privlin(&[
        "pi",
        "measure",
        "--ckpt",
        s(&run.join("final")),
        "--out",
        s(&dir.path().join("measure48")),
        "--ring-bits",
        "48",
        "--frac",
        "10",
        "--gc-bits",
        "28",
    ]);
    assert!(
        !ok && err.contains("l = 48") && err.contains("per inference"),
        "{err}"
    );
}
