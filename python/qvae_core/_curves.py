"""Results of a training run one can look at: curves.png, redrawn from metrics.jsonl after each epoch
(matplotlib, Agg canvas: no window, the caller's pyplot backend untouched), and TensorBoard scalars
(torch.utils.tensorboard, when a run asks for them). Used by the DVAE and QAHM trainers.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from ._training import atomic_file

__all__ = ["CURVES", "TENSORBOARD", "write_curves", "Curves", "Scalars"]

CURVES = "curves.png"
TENSORBOARD = "tensorboard"


def write_curves(metrics_file: Path, path: Path, panels) -> Path:
    """Draw the epochs of `metrics_file` (JSON lines) into the PNG `path`, written atomically.

    panels: [(title, [(key, label), ...]), ...], one axes each; a key whose `key + "_stderr"` (or,
    for log_z, "log_z_std") is recorded gets error bars; keys never recorded are left out.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    records = [json.loads(line) for line in Path(metrics_file).read_text().splitlines() if line.strip()]
    figure = Figure(figsize=(4.2 * len(panels), 3.4), layout="constrained")
    FigureCanvasAgg(figure)
    for axes, (title, curves) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        for key, label in curves:
            points = [(r["epoch"], r[key], _error(r, key)) for r in records if _number(r.get(key))]
            if points:
                epochs, values, errors = zip(*points)
                axes.errorbar(epochs, values, yerr=errors, marker="o", markersize=3, capsize=2, label=label)
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if axes.has_data():
            axes.legend(fontsize="small")
    with atomic_file(path) as file:  # a viewer never sees half an image
        figure.savefig(file, format="png", dpi=100)
    return path


class Curves:
    """curves.png of a run directory, redrawn after each epoch, except that a redraw waits until
    training has taken 5 times as long as the last drawing did (a drawing takes ~0.3 s: short epochs
    would otherwise spend much of their time on it); the last epoch always draws."""

    def __init__(self, output: Path, panels):
        self.output, self.panels = output, panels
        self.due = 0.0  # perf_counter time after which the next epoch redraws

    def update(self, metrics_file: Path, last: bool) -> None:
        start = time.perf_counter()
        if last or start >= self.due:
            write_curves(metrics_file, self.output / CURVES, self.panels)
            now = time.perf_counter()
            self.due = now + 5 * (now - start)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _error(record: dict, key: str) -> float:
    error = record.get("log_z_std" if key == "log_z" else key + "_stderr")
    return error if _number(error) else 0.0


class Scalars:
    """TensorBoard scalars of each epoch's metrics in output/tensorboard; a resumed run first drops
    the events after its checkpoint's epoch. ImportError naming tensorboard if it is missing."""

    def __init__(self, output: Path, epoch: int):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError("tensorboard: the option needs the tensorboard package (pip install tensorboard)") from None
        self.writer = SummaryWriter(log_dir=str(output / TENSORBOARD), purge_step=epoch + 1 if epoch else None)

    def add(self, metrics: dict) -> None:
        for key, value in metrics.items():
            if key not in ("epoch", "step") and _number(value):
                self.writer.add_scalar(key, value, global_step=metrics["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
