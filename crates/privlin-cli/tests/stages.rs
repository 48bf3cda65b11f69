//! The pipeline as a plan of stages: the plan's shape, one node run by `privlin stage run`,
//! `--jobs 2` giving the files of the in-process executor, a failed stage resumed, a killed
//! sweep resumed, and a Shapley game sharded over utility workers giving the values of one
//! process.

mod common;
use common::{
    game, numbers, privlin, privlin_env, s, sweep_config, tiny_checkpoint, weights, SWEEP,
};
use std::process::Command;

#[test]
fn plan_shares_work_and_one_stage_runs_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sweep_config(dir.path());
    let c = s(&cfg);
    let mut args = vec!["plan", c, "--json"];
    args.extend(SWEEP);
    let (ok, out, err) = privlin(&args);
    assert!(ok, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let nodes = plan["nodes"].as_array().unwrap();
    let ids: Vec<&str> = nodes.iter().map(|n| n["id"].as_str().unwrap()).collect();
    // One model, one SENet importance, per point allocate (senet only) + linearize, finetune,
    // pi, report; then the collection.
    assert_eq!(ids.len(), 1 + 1 + 2 * 5 + 2 * 4 + 1, "{ids:?}");
    assert_eq!(
        ids.iter().filter(|i| i.starts_with("importance")).count(),
        1
    );
    let alloc = nodes
        .iter()
        .find(|n| n["id"] == "senet/6pct/allocate")
        .unwrap();
    assert_eq!(alloc["deps"], serde_json::json!(["importance/senet"]));
    let lin = nodes
        .iter()
        .find(|n| n["id"] == "relupruner/3pct/linearize")
        .unwrap();
    assert_eq!(lin["deps"], serde_json::json!(["train"]));
    // `stage run` refuses a node whose dependencies are not done, then runs the first one.
    let plan_file = dir.path().join("plan.json");
    std::fs::write(&plan_file, &out).unwrap();
    let (ok, _, err) = privlin(&["stage", "run", s(&plan_file), "importance/senet"]);
    assert!(!ok && err.contains("needs `train`"), "{err}");
    let (ok, _, err) = privlin(&["stage", "run", s(&plan_file), "trian"]);
    assert!(!ok && err.contains("no stage `trian`"), "{err}");
    let (ok, _, err) = privlin(&["stage", "run", s(&plan_file), "train"]);
    assert!(ok, "{err}");
    let stamp: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("run/stages/train.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(stamp["status"], "complete");
    let (ok, out, _) = privlin(&["plan", c]);
    assert!(
        ok && out.contains("train") && out.contains("complete"),
        "{out}"
    );
}

#[test]
fn jobs_give_the_files_of_one_process_and_a_failed_stage_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("seq");
    let parallel = dir.path().join("jobs");
    for d in [&reference, &parallel] {
        std::fs::create_dir_all(d).unwrap();
        sweep_config(d);
    }
    let mut args = vec!["sweep", ""];
    args.extend(SWEEP);
    let cfg = reference.join("run.toml");
    args[1] = s(&cfg);
    let (ok, _, err) = privlin(&args);
    assert!(ok, "{err}");
    // --jobs 2, with one stage failing on its first attempt.
    let cfg = parallel.join("run.toml");
    args[1] = s(&cfg);
    args.extend(["--jobs", "2"]);
    let (ok, _, err) = privlin_env(&args, "PRIVLIN_FAIL_ONCE", "senet/6pct/linearize");
    assert!(!ok, "{err}");
    assert!(
        err.contains("injected failure") && err.contains("run the same command again"),
        "{err}"
    );
    // The second attempt resumes: the model and the importance result are not made again.
    let (ok, _, err) = privlin_env(&args, "PRIVLIN_FAIL_ONCE", "senet/6pct/linearize");
    assert!(ok, "{err}");
    assert!(err.contains("ar is complete, skipped"), "{err}");
    assert!(err.contains("senet.json is complete, skipped"), "{err}");
    let (a, b) = (reference.join("run"), parallel.join("run"));
    assert_eq!(numbers(&a), numbers(&b));
    let (wa, wb) = (weights(&a), weights(&b));
    // The model, then pr/ and final/ (weights and masks) of 4 points.
    assert_eq!(
        wa.len(),
        1 + 4 * 4,
        "{:?}",
        wa.iter().map(|w| &w.0).collect::<Vec<_>>()
    );
    for (x, y) in wa.iter().zip(&wb) {
        assert_eq!(x.0, y.0);
        assert!(x.1 == y.1, "{} differs between the executors", x.0);
    }
}

#[test]
fn a_killed_sweep_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sweep_config(dir.path());
    let mut args = vec!["sweep", s(&cfg)];
    args.extend(SWEEP);
    let mut child = Command::new(env!("CARGO_BIN_EXE_privlin"))
        .args(&args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the model and the importance result are stamped complete.
    let stamp = dir.path().join("run/stages/importance/senet.json");
    let t0 = std::time::Instant::now();
    loop {
        let done = std::fs::read_to_string(&stamp).is_ok_and(|t| t.contains("\"complete\""));
        if done {
            break;
        }
        assert!(
            t0.elapsed().as_secs() < 300,
            "the importance stage was not stamped complete within 300 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before the importance stage was stamped"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The kill interrupts the sweep: it has not finished by itself, and leaves no sweep.csv.
    assert!(
        child.try_wait().unwrap().is_none(),
        "the sweep had already ended"
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the killed sweep exited successfully");
    assert!(
        !dir.path().join("run/sweep.csv").exists(),
        "the killed sweep had already collected its results"
    );
    let (ok, _, err) = privlin(&args);
    assert!(ok, "{err}");
    assert!(err.contains("senet.json is complete, skipped"), "{err}");
    let csv = std::fs::read_to_string(dir.path().join("run/sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
}

#[test]
fn a_sharded_game_gives_the_values_of_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(dir.path());
    for method in ["shapley-exact", "shapley-tree", "shapley-mc"] {
        let extra = [
            "--method",
            method,
            "--max-permutations",
            "40",
            "--seed",
            "3",
        ];
        let (one, u1) = game(dir.path(), &ckpt, &format!("{method}-1"), &extra);
        let mut extra2 = extra.to_vec();
        extra2.extend(["--workers", "2"]);
        let (two, u2) = game(dir.path(), &ckpt, &format!("{method}-2"), &extra2);
        assert_eq!(one["values"], two["values"], "{method}");
        assert_eq!(one["evaluations"], two["evaluations"], "{method}");
        assert_eq!(u1, u2, "{method}: every utility, bit for bit");
        assert_eq!(two["params"]["workers"], 2);
    }
}
