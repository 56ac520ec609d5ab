"""Plot a server benchmark run: the figures of the documentation's benchmark page.

    python benchmarks/servers/run.py --json results.json
    python benchmarks/plot.py results.json --out docs/_static/benchmarks

Writes ``server-cpu.png`` (the server's CPU time per message in every
scenario, one bar per server: lower is better) and ``echo-throughput.png``
(echo messages/s against the number of connections, one line per server and
message size: higher is better), each captioned with the command, the machine
and the versions of the run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["main", "plot_echo_throughput", "plot_server_cpu"]


def _cpu_per_message(result: dict[str, Any]) -> float | None:
    """The server's CPU µs per message: the lowest of the repeats when there were several."""
    value = result.get("server_cpu_us_per_message_min")
    return result.get("server_cpu_us_per_message") if value is None else value


def _caption(run: dict[str, Any]) -> str:
    return f"{run['command']}\n{run['machine']}\n{run['versions']}"


def _servers(results: list[dict[str, Any]]) -> list[str]:
    """Server labels in first-seen order, so colours are stable across figures."""
    return list(dict.fromkeys(result["label"] for result in results))


def plot_server_cpu(run: dict[str, Any], path: Path) -> None:
    """Grouped horizontal bars: one group per scenario, one bar per server."""
    results = [result for result in run["results"] if _cpu_per_message(result) is not None]
    scenarios = list(dict.fromkeys(result["scenario"] for result in results))
    servers = _servers(results)
    height = 0.8 / max(1, len(servers))
    figure, axes = plt.subplots(figsize=(9, 1.1 + 0.55 * len(scenarios) * max(1, len(servers)) / 2))
    for index, server in enumerate(servers):
        values = {r["scenario"]: _cpu_per_message(r) for r in results if r["label"] == server}
        positions = [row + index * height for row, scenario in enumerate(scenarios) if scenario in values]
        widths = [values[scenario] for scenario in scenarios if scenario in values]
        bars = axes.barh(positions, widths, height=height, label=server)
        axes.bar_label(bars, fmt="%.1f", padding=2, fontsize=7)
    axes.set_yticks([row + height * (len(servers) - 1) / 2 for row in range(len(scenarios))], scenarios)
    axes.invert_yaxis()
    axes.set_xlabel("server CPU per message, µs (per round trip for echo, per delivery for broadcast): lower is better")
    axes.legend(loc="lower right", fontsize=8)
    axes.set_title("Server CPU per message", loc="left")
    figure.text(0.01, 0.005, _caption(run), fontsize=6, va="bottom", family="monospace")
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_echo_throughput(run: dict[str, Any], path: Path) -> None:
    """Echo round trips/s against connections: a colour per server, a line style per message size."""
    echo = [result for result in run["results"] if result["scenario"].startswith("echo-")]
    shape = {id(r): tuple(int(part) for part in r["scenario"].split("-")[1:3]) for r in echo}  # (connections, size)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for colour, server in zip(colours * 4, _servers(echo), strict=False):
        mine = [r for r in echo if r["label"] == server]
        for style, size in zip(("-", "--", ":"), sorted({shape[id(r)][1] for r in mine}), strict=False):
            points = sorted((shape[id(r)][0], r["messages_per_s"]) for r in mine if shape[id(r)][1] == size)
            size_label = f"{size} B" if size < 1024 else f"{size // 1024} KiB"
            label = f"{server}, {size_label}"
            axes.plot(*zip(*points, strict=True), marker="o", color=colour, linestyle=style, label=label)
    connections = sorted({connections for connections, _ in shape.values()})
    axes.set_xscale("log")
    axes.set_xticks(connections, [str(count) for count in connections])
    axes.minorticks_off()
    axes.set_xlabel("connections")
    axes.set_ylabel("round trips per second: higher is better")
    axes.set_title("Echo throughput against connections", loc="left")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7)
    figure.text(0.01, 0.005, _caption(run), fontsize=6, va="bottom", family="monospace")
    figure.tight_layout(rect=(0, 0.1, 1, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("results", type=Path, help="a JSON file written by benchmarks/servers/run.py --json")
    parser.add_argument("--out", type=Path, default=Path("docs/_static/benchmarks"), help="where to write the PNGs")
    args = parser.parse_args(argv)
    try:
        run = json.loads(args.results.read_text())
    except (OSError, ValueError) as exc:
        parser.error(f"cannot read {args.results}: {exc}")
    args.out.mkdir(parents=True, exist_ok=True)
    plot_server_cpu(run, args.out / "server-cpu.png")
    if any(result["scenario"].startswith("echo-") for result in run["results"]):
        plot_echo_throughput(run, args.out / "echo-throughput.png")
    print(f"wrote the figures of {args.results} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
