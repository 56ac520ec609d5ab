"""Print pytest-benchmark results as one Markdown table per group, fastest first.

    python benchmarks/report.py RESULT.json       # a --benchmark-json output
    python benchmarks/report.py --run [-o OUT.json] [pytest args...]

``--run`` first runs ``pytest benchmarks/bench_kernels.py --benchmark-only
--benchmark-json=OUT.json`` (extra arguments go to pytest; OUT.json defaults
to benchmarks/results/kernels.json), then reports it.
Rows are labelled by ``extra_info["label"]``; the rate column is MB/s (10^6
bytes) for byte kernels, frames/s for frame parsers, else calls/s. Ratios are
times: "vs. fastest" 1.00 is the fastest contender (``baseline: ...`` rows are
yardsticks such as a memcpy, and may show below 1.00), "vs. wsfast[cy]" above
1.00 means slower than wsfast[cy].
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REFERENCE = "wsfast[cy]"


def fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_rate(bench: dict[str, Any], seconds: float) -> str:
    extra = bench.get("extra_info", {})
    if "frames" in extra:
        return f"{sig3(extra['frames'] / seconds / 1e6)} M frames/s"
    if "bytes" in extra:
        rate = extra["bytes"] / seconds / 1e6
        return f"{sig3(rate / 1000)} GB/s" if rate >= 1000 else f"{sig3(rate)} MB/s"
    return f"{sig3(1 / seconds / 1e6)} M calls/s"


def sig3(x: float) -> str:
    """Three significant digits, never in exponent notation."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def label(bench: dict[str, Any]) -> str:
    extra = bench.get("extra_info", {})
    return str(extra.get("label", bench["name"]))


def machine(data: dict[str, Any]) -> str:
    info = data.get("machine_info", {}).get("wsfast_bench")
    if not info:
        return ""
    peers = ", ".join(f"{k} {v}" for k, v in info["peers"].items() if v)
    return (
        f"Machine: {info['cpu_model']}, {info['cpu_count']} CPUs, run on CPU(s) {info['affinity']}. {info['python']}. "
        f"wsfast {info['wsfast']} ({info['wsfast_implementation']}, simd={info['wsfast_simd']}). {peers}."
    )


def report(data: dict[str, Any], stat: str = "mean") -> str:
    groups: dict[str, list[dict[str, Any]]] = {}
    for bench in data["benchmarks"]:
        groups.setdefault(bench["group"] or "", []).append(bench)
    out = [machine(data), ""]
    for group, benches in groups.items():
        benches.sort(key=lambda b: b["stats"][stat])
        # Baselines (a memcpy, ...) are yardsticks, not contenders: never "fastest".
        best = min((b["stats"][stat] for b in benches if not label(b).startswith("baseline")), default=1.0)
        ref = next((b["stats"][stat] for b in benches if label(b) == REFERENCE), None)
        out += [f"### {group}", "", f"| label | {stat} | rate | vs. fastest | vs. {REFERENCE} |"]
        out.append("|---|---:|---:|---:|---:|")
        for bench in benches:
            t = bench["stats"][stat]
            vs_ref = f"{t / ref:.2f}" if ref else "-"
            out.append(f"| {label(bench)} | {fmt_time(t)} | {fmt_rate(bench, t)} | {t / best:.2f} | {vs_ref} |")
        out.append("")
    return "\n".join(out)


def summary(data: dict[str, Any], stat: str = "mean") -> str:
    """Per kernel, one row per group: wsfast[cy]'s time, then each other time / wsfast[cy]'s."""
    kernels: dict[str, dict[str, dict[str, float]]] = {}
    for bench in data["benchmarks"]:
        group = bench["group"] or ""
        kernel = kernels.setdefault(group.split(" ", 1)[0], {})
        kernel.setdefault(group, {})[label(bench)] = bench["stats"][stat]
    out = [f"Cells: time / {REFERENCE}'s time ({stat}); above 1.00 {REFERENCE} is faster, below 1.00 slower.", ""]
    for groups in kernels.values():
        columns = list(dict.fromkeys(n for times in groups.values() for n in times if n != REFERENCE))
        out.append(f"| group | {REFERENCE} | " + " | ".join(columns) + " |")
        out.append("|---|---:|" + "---:|" * len(columns))
        for group, times in groups.items():
            ref = times.get(REFERENCE)
            cells = [f"{times[c] / ref:.2f}" if ref and c in times else "" for c in columns]
            out.append(f"| {group} | {fmt_time(ref) if ref else '-'} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", nargs="?", help="a pytest-benchmark --benchmark-json file")
    parser.add_argument("--run", action="store_true", help="run bench_kernels.py first")
    parser.add_argument("-o", "--output", default=str(HERE / "results" / "kernels.json"), help="JSON written by --run")
    parser.add_argument("--stat", default="mean", choices=["mean", "median", "min"], help="statistic to compare")
    parser.add_argument("--summary", action="store_true", help="one compact table of ratios to wsfast[cy]")
    args, pytest_args = parser.parse_known_args(argv)
    path = args.json
    if args.run:
        path = args.output
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "pytest", str(HERE / "bench_kernels.py"), "--benchmark-only",
            f"--benchmark-json={path}", "-p", "no:cacheprovider", *pytest_args,
        ]  # fmt: skip
        print("$", " ".join(command), file=sys.stderr)
        code = subprocess.call(command)
        if code:
            return code
    elif pytest_args or not path:
        parser.error("give a JSON file, or --run [pytest args]")
    data = json.loads(Path(path).read_text())
    print(summary(data, args.stat) if args.summary else report(data, args.stat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
