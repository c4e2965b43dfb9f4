"""Which kernel clone does the loaded qvae_core._core run? Fails unless it is the best this CPU allows.

usage: python tools/check_dispatch.py UNSTRIPPED_CORE_SO

The hot kernels are built for x86-64-v4 / v3 / baseline (target_clones) and the dynamic loader
picks one per kernel through an IRELATIVE relocation when the module loads. This imports
qvae_core._core (the copy on sys.path: the wheel under test), reads each of those relocated slots
in memory and names the function it points to from the symbol table of UNSTRIPPED_CORE_SO, an
unstripped copy of the same library (the shipped one is stripped). Each kernel must have clones,
and must run the highest of them that /proc/cpuinfo's flags allow: a wheel whose CPU detection
is missing silently runs the baseline kernels at a fraction of the speed. Needs binutils' readelf.
"""

from __future__ import annotations

import ctypes
import re
import subprocess
import sys
from pathlib import Path

LEVEL_FLAGS = {  # x86-64 micro-architecture levels as /proc/cpuinfo names their features
    3: {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave",
        "cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"},
    4: {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"},
}
CLONE = re.compile(r"\.(?:arch_x86[-_]64[-_]v(?P<level>\d)|(?P<default>default))(?:\.\d+)?$")


def cpu_level() -> int:
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    if not LEVEL_FLAGS[3] <= flags:
        return 1
    return 4 if LEVEL_FLAGS[4] <= flags else 3


def readelf(*args: str) -> str:
    return subprocess.run(["readelf", "-W", *args], check=True, capture_output=True, text=True).stdout


def irelative_slots(path: str) -> list[tuple[int, int]]:
    """(slot offset, resolver offset) of each IRELATIVE relocation."""
    slots = []
    for line in readelf("-r", path).splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == "R_X86_64_IRELATIVE":
            slots.append((int(fields[0], 16), int(fields[3], 16)))
    return slots


def function_names(path: str) -> dict[int, str]:
    names = {}
    for line in readelf("-s", path).splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[3] in ("FUNC", "IFUNC"):
            names.setdefault(int(fields[1], 16), fields[7])
    return names


def load_base(path: str) -> int:
    """Address at which the loader mapped the start of `path` (the mapping at file offset 0)."""
    real = str(Path(path).resolve())
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5] == real and int(fields[2], 16) == 0:
            return int(fields[0].split("-")[0], 16)
    raise SystemExit(f"check_dispatch: {real} is not mapped in this process")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    from qvae_core import _core

    loaded = _core.__file__
    slots = irelative_slots(loaded)
    if not slots:
        print(f"check_dispatch: FAIL: {loaded} has no multiversioned kernels (built without clones?)")
        return 1
    names = function_names(argv[0])
    base, level, failed = load_base(loaded), cpu_level(), False
    print(f"check_dispatch: {loaded}: CPU level x86-64-v{level}, {len(slots)} multiversioned kernels")
    for slot, resolver in slots:
        target = ctypes.c_uint64.from_address(base + slot).value - base
        chosen = names.get(target, f"<unknown {target:#x}>")
        prefix = chosen.split(".")[0]
        levels = sorted({int(m["level"]) if m["level"] else 1
                         for name in names.values() if name.split(".")[0] == prefix
                         for m in [CLONE.search(name)] if m})
        match = CLONE.search(chosen)
        got = (int(match["level"]) if match["level"] else 1) if match else None
        want = max((v for v in levels if v <= level), default=None)
        ok = got is not None and got == want and len(levels) > 1
        failed |= not ok
        print(f"  {'ok  ' if ok else 'FAIL'} {chosen} (clones: {', '.join(f'v{v}' for v in levels) or 'none'})")
    if failed:
        print("check_dispatch: FAIL: a kernel does not run the best clone this CPU allows")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
