"""Summarize sweep.csv files over seeds: for each arm (a run directory), preset and budget, the
fine-tuned test accuracy's mean and [min, max] over the seeds (tags `PRESET-sSEED`), and the
all-ReLU accuracy. Prints a markdown table.

    python python/sweep_summary.py runs/c10-onnx/zoo runs/c10-onnx/zoo_imported ...
"""

import csv
import os
import sys
from collections import defaultdict


def main():
    rows = []
    for run in sys.argv[1:]:
        path = os.path.join(run, "sweep.csv")
        if not os.path.exists(path):
            continue
        groups = defaultdict(list)
        all_relu = None
        for r in csv.DictReader(open(path)):
            preset = r["tag"].rsplit("-s", 1)[0]
            groups[(preset, r["budget"], r["relus"])].append(float(r["acc_finetuned"]))
            all_relu = r["acc_all_relu"]
        for (preset, budget, relus), accs in sorted(groups.items()):
            mean = sum(accs) / len(accs)
            spread = f"[{min(accs):.1f}, {max(accs):.1f}]" if len(accs) > 1 else "(one seed)"
            rows.append((os.path.basename(run.rstrip("/")), all_relu, preset, budget, relus, len(accs), f"{mean:.1f} {spread}"))
    print("| arm | all-ReLU % | preset | budget (ReLUs) | seeds | fine-tuned % mean [min, max] |")
    print("|---|---:|---|---|---:|---|")
    for arm, ar, preset, budget, relus, n, acc in rows:
        print(f"| {arm} | {float(ar):.1f} | {preset} | {budget.replace('pct', ' %')} ({int(relus):,}) | {n} | {acc} |")


if __name__ == "__main__":
    main()
