"""The environment torch should load into when it shares the cores with the samplers."""

from __future__ import annotations

import os

__all__ = ["shorten_torch_spin"]


def shorten_torch_spin() -> None:
    """Sets GOMP_SPINCOUNT=30000 unless it is set; call before torch loads.

    After each operation torch's OpenMP (libgomp) threads spin for a few milliseconds, holding the
    cores the samplers' threads need next: a DVAE step spent ~1/3 of its sampling time waiting.
    The shorter spin keeps torch's own speed (README, "How it is fast")."""
    os.environ.setdefault("GOMP_SPINCOUNT", "30000")
