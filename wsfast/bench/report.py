"""The human-readable report of a ``wsfast bench`` run."""

from __future__ import annotations

from .stats import BenchResult

__all__ = ["format_result"]


def format_result(result: BenchResult) -> str:
    """The human-readable report."""
    lat = result.latency_ms
    kind = "text" if result.text else "binary"
    what = result.mode if result.mode != "pipeline" else f"pipeline depth {result.depth}"
    size = "" if result.mode == "feed" else f", {result.size} B {kind}"
    lines = [
        f"wsfast bench {result.url}: {what}, {result.connected}/{result.connections} connections{size}",
        f"{result.messages:,} messages in {result.seconds:.2f} s" + (" (interrupted)" if result.interrupted else ""),
        "",
    ]
    head = ["messages/s", "MB/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", "gen CPU"]
    row = [
        f"{result.messages_per_s:,.0f}",
        f"{result.mb_per_s:.2f}",
        *(f"{lat[k]:.3f}" if k in lat else "-" for k in ("p50", "p90", "p99", "max")),
        str(result.errors),
        f"{result.generator_cpu * 100:.0f} %",
    ]
    if result.server_cpu_s is not None:
        head += ["server CPU", "server µs/msg"]
        row += [
            f"{(result.server_cpu or 0) * 100:.0f} %",
            f"{result.server_cpu_us_per_message:.2f}" if result.server_cpu_us_per_message is not None else "-",
        ]
    widths = [max(len(h), len(r)) for h, r in zip(head, row, strict=True)]
    lines.append("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    lines.append("  ".join(r.rjust(w) for r, w in zip(row, widths, strict=True)))
    if result.generator_cpu > 0.9:
        lines.append(f"note: the generator used {result.generator_cpu * 100:.0f} % of a core: it may be the bottleneck")
    for sample in result.error_samples:
        lines.append(f"error: {sample}")
    machine = result.machine
    lines.append(
        f"machine: {machine.get('cpu')}, {machine.get('cpus')} CPUs, generator on {machine.get('affinity')}; "
        f"{machine.get('python')}; wsfast {machine.get('wsfast')} ({machine.get('implementation')})"
    )
    return "\n".join(lines)
