"""Every Python block of the README and of docs/*.md runs as written, in order, the blocks of one
file sharing a namespace as in one session. A block after `<!-- docs-test: sapi-server -->` talks
to the SAPI server its text tells the reader to start: here a local one with a C(16) Chimera solver,
reached through DWAVE_API_* as the reader's would be. No other block is skipped or changed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- docs-test: (?P<mode>[a-z-]+) -->\n)?^```python\n(?P<code>.*?)^```", re.S | re.M)
MODES = {None, "sapi-server"}


def python_blocks(path: Path):
    """(mode, code, first line number) of each Python block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    return [(m["mode"], m["code"], text.count("\n", 0, m.start("code")) + 1) for m in BLOCK.finditer(text)]


def test_the_readme_blocks_are_found():
    blocks = python_blocks(ROOT / "README.md")
    assert len(blocks) >= 4 and {mode for mode, _, _ in blocks} <= MODES
    assert [mode for mode, _, _ in blocks].count("sapi-server") == 2


@pytest.mark.parametrize("path", [p for p in DOCUMENTS if python_blocks(p)], ids=lambda p: p.name)
def test_python_blocks_run(path, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("dwave.cloud")
    from qvae_core import dwave as qd

    monkeypatch.chdir(tmp_path)  # files the examples write (chains.npz, runs/) land here
    for var in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):  # no user config file, no shared cache
        monkeypatch.setenv(var, str(tmp_path / "home"))
    namespace = {"__name__": "__main__"}
    for mode, code, line in python_blocks(path):
        assert mode in MODES, f"{path.name}:{line}: unknown docs-test mode {mode!r}"
        compiled = compile(code, f"{path.name}:{line}", "exec")
        if mode == "sapi-server":
            with qd.SAPIServer([qd.qpu_solver("chimera", (16,))], beta=2.0, sweeps=100, seed=0) as server:
                monkeypatch.setenv("DWAVE_API_ENDPOINT", server.endpoint)
                monkeypatch.setenv("DWAVE_API_TOKEN", server.token or "local-token")
                exec(compiled, namespace)
                assert server.problems(), f"{path.name}:{line} sent no problem to the server"
        else:
            exec(compiled, namespace)
