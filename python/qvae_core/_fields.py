"""Fields of the run configurations shared by qvae_core.dvae.config and qvae_core.qahm.config."""

from __future__ import annotations

import argparse
import dataclasses
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


def field_default(f: dataclasses.Field):
    """The default value of a config field (its default_factory called for lists)."""
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def field_type(f: dataclasses.Field):
    """How a config field's value is read from the command line: its `parse`, else its default's type."""
    default = field_default(f)
    return f.metadata["parse"] or (str if default is None else type(default))


def add_config_flags(parser: argparse.ArgumentParser, config_class, skip=()) -> None:
    """A flag --NAME for each field of `config_class` (a switch for a bool field) that sets it only when
    given (default SUPPRESS), so that flags override --quick, --preset and --config."""
    for f in dataclasses.fields(config_class):
        if f.name in skip:
            continue
        flag, default = "--" + f.name.replace("_", "-"), field_default(f)
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, action="store_true", default=argparse.SUPPRESS,
                                help=f.metadata["help"])
        else:
            parser.add_argument(flag, dest=f.name, type=field_type(f), default=argparse.SUPPRESS,
                                help=f"{f.metadata['help']} (default: {default})")
