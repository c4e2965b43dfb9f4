"""The committed typing stub of the compiled module is the one its signatures generate."""

import subprocess
import sys
from pathlib import Path

import pytest

import qvae_core

STUB = Path(qvae_core.__file__).with_name("_core.pyi")


def test_core_stub_matches_the_extension(tmp_path):
    pytest.importorskip("pybind11_stubgen")
    subprocess.run(
        [sys.executable, "-m", "pybind11_stubgen", "qvae_core._core", "-o", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    generated = (tmp_path / "qvae_core" / "_core.pyi").read_text().splitlines()
    generated = [line for line in generated if not line.startswith("__all__")]
    assert STUB.read_text().splitlines() == generated, (
        "python/qvae_core/_core.pyi is stale: regenerate it with "
        "`python -m pybind11_stubgen qvae_core._core -o <dir>` and drop the __all__ line"
    )
