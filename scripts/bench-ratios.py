#!/usr/bin/env python3
"""Prints weft / libtorch time ratios from a weft-bench JSON file.

    bin/weft-bench --benchmark_filter=matmul --benchmark_out=run.json --benchmark_out_format=json
    scripts/bench-ratios.py run.json

Pairs are the cases named <case>/weft and <case>/libtorch; with repetitions, the medians are
compared (weft-bench's cases run five repetitions each). Developer tool: stdlib only.
"""
import json
import sys


def main(path):
    runs = json.load(open(path))["benchmarks"]
    times = {}
    for b in runs:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = b["run_name"].split("/repeats:")[0].removesuffix("/real_time")
        times[name] = (b["real_time"], b["time_unit"])
    print(f"{'case':40s} {'weft':>12s} {'libtorch':>12s} {'weft/libtorch':>14s}")
    worst = 0.0
    for name, (t, unit) in times.items():
        if not name.endswith("/weft"):
            continue
        case = name[: -len("/weft")]
        other = times.get(case + "/libtorch")
        if other is None:
            print(f"{case:40s} {t:9.2f} {unit:2s} {'-':>12s}")
            continue
        ratio = t / other[0]
        worst = max(worst, ratio)
        print(f"{case:40s} {t:9.2f} {unit:2s} {other[0]:9.2f} {unit:2s} {ratio:14.2f}")
    print(f"worst ratio: {worst:.2f}")


if __name__ == "__main__":
    main(sys.argv[1])
