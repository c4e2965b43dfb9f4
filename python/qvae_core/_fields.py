"""Fields of the run configurations shared by qvae_core.dvae.config and qvae_core.qahm.config."""

from __future__ import annotations

import numbers
import os
from dataclasses import field


def int_list(text: str) -> list:
    """'256,256' -> [256, 256]; '' -> []."""
    return [int(v) for v in text.split(",") if v.strip()]


def option(default, help: str, parse=None):
    """A config field: `help` and `parse` (for list values given on the command line) go to the CLI."""
    if isinstance(default, list):
        return field(default_factory=lambda: [list(v) if isinstance(v, list) else v for v in default],
                     metadata={"help": help, "parse": parse})
    return field(default=default, metadata={"help": help, "parse": parse})


def plain(value):
    """numpy numbers as Python ones, paths as str, tuples as lists (nested too): a config stays JSON."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    return value
