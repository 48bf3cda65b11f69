//! The `privlin` binary end to end: info, importance on a utility table, allocate, train/eval.
mod common;

use common::privlin;
use std::path::Path;

#[test]
fn info_json_has_the_documented_fields() {
    let (ok, out, err) = privlin(&["info", "--arch", "resnet18", "--input-size", "32", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["relu_total"], 557_056);
    assert!(v["macs_total"].as_i64().unwrap() > 500_000_000);
    let sites = v["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 17);
    assert_eq!(sites[0]["name"], "act1");
    assert_eq!(sites[0]["kind"], "stem");
    assert_eq!(sites[0]["count"], 65_536);
    assert_eq!(sites[0]["shape"], serde_json::json!([64, 32, 32]));
    assert_eq!(sites[2]["kind"], "post_add");
    let (ok, out, _) = privlin(&["info", "--arch", "wrn-22-8", "--convention", "snl"]);
    assert!(
        ok && out.contains("1359872") && out.contains("final BN-ReLU not counted"),
        "{out}"
    );
}

#[test]
fn unknown_names_get_clear_errors() {
    let (ok, _, err) = privlin(&["info", "--arch", "resnet19"]);
    assert!(
        !ok && err.contains("unknown architecture `resnet19`"),
        "{err}"
    );
    let (ok, _, err) = privlin(&[
        "importance",
        "--method",
        "shapley-magic",
        "--utility-table",
        "x.json",
    ]);
    assert!(
        !ok && err.contains("unknown importance method `shapley-magic`")
            && err.contains("shapley-tree"),
        "{err}"
    );
}

fn glove_table(dir: &Path) -> std::path::PathBuf {
    let mut u = serde_json::Map::new();
    for c in 0..8u32 {
        let key: String = (0..3)
            .map(|i| if c >> i & 1 == 1 { '1' } else { '0' })
            .collect();
        let left = (c & 1) + (c >> 1 & 1);
        let right = c >> 2 & 1;
        u.insert(key, serde_json::json!(left.min(right) as f64));
    }
    let p = dir.join("glove.json");
    std::fs::write(
        &p,
        serde_json::json!({"players": ["left1", "left2", "right"], "utilities": u}).to_string(),
    )
    .unwrap();
    p
}

#[test]
fn importance_on_a_utility_table() {
    let dir = tempfile::tempdir().unwrap();
    let table = glove_table(dir.path());
    let out = dir.path().join("imp.json");
    let svg = dir.path().join("imp.svg");
    for method in [
        "shapley-exact",
        "shapley-tree",
        "shapley-mc",
        "shapley-bandit",
        "shapley-kernel",
        "shapley-leverage",
        "shapley-antithetic",
        "shapley-stratified",
    ] {
        let (ok, stdout, err) = privlin(&[
            "importance",
            "--method",
            method,
            "--utility-table",
            table.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--threshold",
            "0",
            "--plot",
            svg.to_str().unwrap(),
            "--min-permutations",
            "200",
            "--target-stderr",
            "0.02",
            "--tolerance",
            "0.04",
            "--max-samples",
            "20000",
        ]);
        assert!(ok, "{method}: {err}");
        assert!(stdout.contains("right"));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(v["method"], method);
        assert_eq!(v["players"], serde_json::json!(["left1", "left2", "right"]));
        let vals: Vec<f64> = v["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        // The regression estimators enumerate all 6 proper coalitions of 3 players: exact.
        let tol = if ["exact", "tree", "kernel", "leverage"]
            .iter()
            .any(|m| method.ends_with(m))
        {
            1e-9
        } else {
            0.1
        };
        assert!(
            (vals[2] - 2.0 / 3.0).abs() < tol && (vals[0] - 1.0 / 6.0).abs() < tol,
            "{method}: {vals:?}"
        );
        assert!(v["evaluations"].as_u64().unwrap() > 0);
        assert!(v["seconds"].as_f64().is_some());
        assert!(v.get("stderr").is_some() && v.get("params").is_some());
        let chart = std::fs::read_to_string(&svg).unwrap();
        assert!(chart.starts_with("<svg") && chart.contains("left2") && chart.contains("right"));
    }
    // A missing coalition is named; the earlier output stays intact.
    let mut t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&table).unwrap()).unwrap();
    t["utilities"].as_object_mut().unwrap().remove("101");
    std::fs::write(&table, t.to_string()).unwrap();
    let before = std::fs::read_to_string(&out).unwrap();
    let (ok, _, err) = privlin(&[
        "importance",
        "--method",
        "shapley-exact",
        "--utility-table",
        table.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("\"101\""), "{err}");
    assert_eq!(before, std::fs::read_to_string(&out).unwrap());
    // A utility table has no sites to allocate over.
    let (ok, _, err) = privlin(&[
        "allocate",
        "--importance",
        out.to_str().unwrap(),
        "--budget",
        "1",
    ]);
    assert!(!ok && err.contains("utility-table game"), "{err}");
}

#[test]
fn train_importance_allocate_eval_on_synthetic_data() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("ar");
    let r = run.to_str().unwrap();
    let (ok, out, err) = privlin(&[
        "train",
        "--arch",
        "resnet9",
        "--width",
        "0.125",
        "--epochs",
        "2",
        "--train-per-class",
        "30",
        "--test-per-class",
        "10",
        "--holdout",
        "0.2",
        "--batch-size",
        "32",
        "--out",
        r,
        "--device",
        "cpu",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("prep.act") && out.contains("test accuracy"),
        "{out}"
    );
    let imp = dir.path().join("imp.json");
    let (ok, out, err) = privlin(&[
        "importance",
        "--ckpt",
        r,
        "--method",
        "shapley-tree",
        "--out",
        imp.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("held-out 20% of the training set"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&imp).unwrap()).unwrap();
    assert_eq!(v["players"].as_array().unwrap().len(), 8);
    let budget = dir.path().join("budget.json");
    let (ok, out, err) = privlin(&[
        "allocate",
        "--importance",
        imp.to_str().unwrap(),
        "--budget",
        "5%",
        "--out",
        budget.to_str().unwrap(),
    ]);
    // A tree-trimmed importance of a barely trained model may have no positive value: the
    // allocation succeeds exactly when some site's value is positive, and a refusal says why.
    let positive = v["values"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x.as_f64().unwrap() > 0.0);
    assert_eq!(ok, positive, "allocate: {out}{err}");
    if ok {
        let b: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&budget).unwrap()).unwrap();
        let total: i64 = b["sites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["budget"].as_i64().unwrap())
            .sum();
        assert_eq!(total, b["budget"].as_i64().unwrap(), "{out}");
    } else {
        assert!(err.contains("no site has positive importance"), "{err}");
    }
    let (ok, _, err) = privlin(&[
        "allocate",
        "--importance",
        imp.to_str().unwrap(),
        "--budget",
        "0",
    ]);
    assert!(!ok && err.contains("budget of 0 is refused"), "{err}");
    let (ok, out, err) = privlin(&[
        "eval",
        "--ckpt",
        r,
        "--linearize-all",
        "--json",
        "--device",
        "cpu",
    ]);
    assert!(ok, "{err}");
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(e["images"], 100);
    assert!(e["linearized_accuracy"].as_f64().is_some());
    // Resuming with another architecture in the same directory is refused.
    let (ok, _, err) = privlin(&[
        "train",
        "--arch",
        "resnet18",
        "--width",
        "0.125",
        "--epochs",
        "1",
        "--train-per-class",
        "30",
        "--test-per-class",
        "10",
        "--holdout",
        "0.2",
        "--out",
        r,
        "--resume",
    ]);
    assert!(!ok && err.contains("refusing to resume"), "{err}");
}

fn pipeline_config(dir: &Path) -> std::path::PathBuf {
    common::pipeline_config(dir, &common::tiny_pipeline_with_pi())
}

#[test]
fn run_pipeline_resumes_and_sweep_collects() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = pipeline_config(dir.path());
    let c = cfg.to_str().unwrap();
    let (ok, out, err) = privlin(&["run", c]);
    assert!(ok, "{err}");
    assert!(out.contains("fine-tuned"), "{out}");
    assert!(
        err.contains("[7/7] report"),
        "a run is a plan of 7 stages: {err}"
    );
    let run = dir.path().join("run");
    for f in [
        "ar/model.safetensors",
        "importance.json",
        "budget.json",
        "pr/linearize.json",
        "final/finetune.json",
        "final/masks.safetensors",
        "final/active.safetensors",
        "report.md",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("0.021 s per 1,000 ReLUs"), "{report}");
    let b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("budget.json")).unwrap()).unwrap();
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("final/finetune.json")).unwrap())
            .unwrap();
    assert_eq!(f["relus"], b["budget"]);
    // ResNet-9 (max-pooling as garbled circuits) runs under the protocol, HE offline phase.
    assert!(
        err.contains("private inference of 2 test images: private class = float class on"),
        "{err}"
    );
    assert!(run.join("pi/pi.json").exists());
    // A second run skips every stage, and still prints the results.
    let (ok, out, err) = privlin(&["run", c]);
    assert!(ok, "{err}");
    assert_eq!(err.matches("is complete, skipped").count(), 7, "{err}");
    assert!(out.contains("fine-tuned"), "{out}");
    // A changed stage config is not silently reused; the message says what changed.
    let (ok, _, err) = privlin(&["run", c, "--set", "linearize.train.epochs=2"]);
    assert!(
        !ok && err.contains("different config") && err.contains("config.train.epochs: 1 -> 2"),
        "{err}"
    );
    // A change upstream reaches the stages after it.
    let (ok, _, err) = privlin(&["run", c, "--set", "importance.density=0.3"]);
    assert!(
        !ok && err.contains("stage `importance`") && err.contains("density"),
        "{err}"
    );
    // Unknown names are refused with the name.
    let (ok, _, err) = privlin(&["run", c, "--set", "preset=\"privshapp\""]);
    assert!(!ok && err.contains("unknown preset `privshapp`"), "{err}");
    let (ok, _, err) = privlin(&["run", c, "--set", "importance.treshold=3"]);
    assert!(!ok && err.contains("treshold"), "{err}");
    // Sweep: two presets, two budgets, sharing the all-ReLU model.
    let (ok, out, err) = privlin(&[
        "sweep",
        c,
        "--budgets",
        "3%,6%",
        "--presets",
        "relupruner,uniform,snl",
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("ar is complete, skipped"), "{err}");
    let csv = std::fs::read_to_string(run.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "{csv}\n{out}");
    // Whether a point holds its budget is a column: SNL stops by its own rule or says it did not.
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "budget_reached").unwrap();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let want: &[&str] = if f[0] == "snl" {
            &["yes", "no"]
        } else {
            &["yes"]
        };
        assert!(want.contains(&f[col]), "{line}");
    }
    // SNL's 3 % point continued the path of its 6 % point instead of starting over.
    let lin = std::fs::read_to_string(run.join("sweep/snl/3pct/pr/linearize.json")).unwrap();
    assert!(
        lin.contains("continued the SNL path") && lin.contains("6pct"),
        "{lin}"
    );
    for f in ["pareto.svg", "retention-3pct.svg", "retention-6pct.svg"] {
        let svg = std::fs::read_to_string(run.join(f)).unwrap();
        assert!(svg.contains("<svg") && svg.contains("relupruner"), "{f}");
    }
}

/// `privlin shapley-score`: every sampling estimator scored against the exact values of a table,
/// at caps given as counts or shares; a cap outside the game is refused.
#[test]
fn shapley_score_on_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let table = glove_table(dir.path());
    let json = dir.path().join("score.json");
    let svg = dir.path().join("score.svg");
    let (ok, out, err) = privlin(&[
        "shapley-score",
        "--utility-table",
        table.to_str().unwrap(),
        "--caps",
        "6,100%",
        "--seeds",
        "2",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("shapley-leverage") && out.contains("Pearson"),
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let scores = v.as_array().unwrap();
    assert!(!scores.is_empty(), "no scores");
    assert!(scores
        .iter()
        .all(|s| s["evaluations"].as_u64().unwrap() <= s["cap"].as_u64().unwrap()));
    // With every coalition allowed, the regression estimators are exact.
    let exact: Vec<_> = scores
        .iter()
        .filter(|s| s["cap"] == 8 && s["method"] == "shapley-kernel")
        .collect();
    assert!(!exact.is_empty(), "no full-cap kernel score: {scores:?}");
    assert!(exact
        .iter()
        .all(|s| s["max_abs_error"].as_f64().unwrap() < 1e-9));
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    let (ok, _, err) = privlin(&[
        "shapley-score",
        "--utility-table",
        table.to_str().unwrap(),
        "--caps",
        "9",
    ]);
    assert!(!ok && err.contains("--caps `9`"), "{err}");
}
