"""Progress bars (tqdm) for training and for long sampler calls.

In a notebook the bar is tqdm's widget (tqdm.auto); on a terminal, tqdm's one-line bar on stderr;
when stderr is neither (a log file, a batch job), one plain line every LOG_INTERVAL seconds, so a
log holds a readable record rather than carriage returns. tqdm is imported only when a bar is shown:
the samplers need numpy alone.
"""

from __future__ import annotations

import sys

__all__ = ["progress_bar", "LOG_INTERVAL"]

LOG_INTERVAL = 30.0  # seconds between progress lines when stderr is not a terminal


class _Lines:
    """A stream for tqdm that turns its carriage-return redraws into whole lines on stderr."""

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            sys.stderr.write(line + "\n")

    def flush(self) -> None:
        sys.stderr.flush()


def progress_bar(total, desc: str, *, unit: str = "it", **options):
    """A tqdm bar of `total` units, shown as the module docstring says; ImportError naming tqdm if
    it is not installed. `options` go to tqdm (e.g. bar_format)."""
    try:
        from tqdm import auto, autonotebook, std  # auto first: it imports autonotebook quietly
    except ImportError:
        raise ImportError("progress bars need tqdm (pip install tqdm; it comes with the torch extra)") from None
    if autonotebook.tqdm is not std.tqdm:  # in a notebook kernel: tqdm's widget
        return auto.tqdm(total=total, desc=desc, unit=unit, **options)
    if sys.stderr.isatty():
        return std.tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, **options)
    return std.tqdm(total=total, desc=desc, unit=unit, file=_Lines(), mininterval=LOG_INTERVAL, maxinterval=LOG_INTERVAL,
                    ascii=True, **options)
