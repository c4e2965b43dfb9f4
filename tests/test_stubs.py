"""The typing stub of the compiled module matches it (mypy stubtest)."""

import subprocess
import sys
from pathlib import Path

import pytest


def test_core_stub_matches_the_extension():
    pytest.importorskip("mypy")
    allowlist = Path(__file__).with_name("stubtest_allowlist.txt")
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "qvae_core._core", "--allowlist", str(allowlist)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
