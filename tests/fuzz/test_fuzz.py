"""The fuzz targets: their seed corpus, their oracle, and a short run of each.

The short run is the CI version of ``scripts/fuzz.py``: a few thousand
inputs per target under atheris, in a subprocess so that libFuzzer exiting
the process on a crash fails the test instead of ending the session.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.adapters import require
from tests.fuzz.targets import TARGETS, TwinDisagreement, compare_frame_parsers, decode
from tests.timeouts import TIMEOUT
from wsfast.kernels import _py, build_frame

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "fuzz" / "corpus"
SEEDS = sorted(CORPUS.glob("*/*"))
SHORT_RUN = 2000


def _require_twins(target: str) -> None:
    """The frame_parser target compares the Cython twin with the Python one: it needs both."""
    if target == "frame_parser":
        require("wsfast.kernels._cy", "the Cython extension")


def test_every_target_has_a_seed_corpus() -> None:
    assert sorted(path.name for path in CORPUS.iterdir()) == sorted(TARGETS)
    assert all(any((CORPUS / target).iterdir()) for target in TARGETS)


@pytest.mark.parametrize("seed", SEEDS, ids=[f"{path.parent.name}/{path.name}" for path in SEEDS])
def test_seed_passes_its_target(seed: Path) -> None:
    _require_twins(seed.parent.name)
    TARGETS[seed.parent.name](seed.read_bytes())


def test_decode_splits_options_and_chunks() -> None:
    assert decode(b"") == (0, [b""])
    assert decode(b"\x05\x00stream") == (5, [b"stream"])
    options, chunks = decode(b"\x05\x08" + bytes(range(100)))  # seed 8: chunks of 1 byte
    assert options == 5 and chunks == [bytes([i]) for i in range(100)]
    options, chunks = decode(b"\x00\x07" + bytes(range(200)))
    assert b"".join(chunks) == bytes(range(200)) and max(map(len, chunks)) <= 128 and len(chunks) > 1


class _DropsLastFrame(_py.FrameParser):
    """A twin with a bug: it loses the last frame of every read."""

    def feed(self, data: Any) -> list[Any]:
        return super().feed(data)[:-1]


def test_twin_disagreement_is_reported() -> None:
    stream = build_frame(1, b"a") + build_frame(1, b"b")
    compare_frame_parsers(b"\x00\x00" + stream, (_py.FrameParser, _py.FrameParser))
    with pytest.raises(TwinDisagreement, match="chunk 0"):
        compare_frame_parsers(b"\x00\x00" + stream, (_py.FrameParser, _DropsLastFrame))


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_short_fuzz_run_finds_nothing(target: str, tmp_path: Path) -> None:
    require("atheris")
    _require_twins(target)
    command = [sys.executable, str(REPO / "scripts" / "fuzz.py"), target, f"--runs={SHORT_RUN}", f"--work={tmp_path}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30 * TIMEOUT)
    expected = f"{target}: {SHORT_RUN} inputs run, 0 crashes, 0 hangs, 0 twin disagreements"
    assert result.stdout.splitlines()[:1] == [expected], result.stdout + result.stderr
    assert result.returncode == 0


def test_twins_agree_on_the_bytes_buffered_of_a_large_partial_frame() -> None:
    """Found by fuzzing: the Cython parser's ``buffered`` left out the header of a frame over 64 KiB."""
    cy = require("wsfast.kernels._cy", "the Cython extension")
    header = b"\x82\x7f" + (128 * 1024).to_bytes(8, "big")  # a 128 KiB binary frame, 8 bytes of it
    compare_frame_parsers(b"\x2c\x00" + header + bytes(8), (_py.FrameParser, cy.FrameParser))
