"""Runs that share a directory, and files that lie: one run per directory (an OS lock), metrics that
agree with the checkpoint, and loaders that check declared sizes before allocating."""

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import qvae_core as q  # noqa: E402
from qvae_core._training import LOCK, RunLock  # noqa: E402
from qvae_core.cli import main  # noqa: E402
from qvae_core.dvae.config import TrainConfig  # noqa: E402
from qvae_core.dvae.train import Trainer  # noqa: E402

TINY = {"latent": "4x4", "groups": 2, "encoder_hidden": [16], "decoder_hidden": [16], "batch_size": 20,
        "train_size": 100, "valid_size": 40, "negative_samples": 20, "sweeps": 2, "log_z_population": 50,
        "final_importance_samples": 2, "epochs": 1}


def _config_file(tmp_path, **changes):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({**TINY, **changes}))
    return str(path)


def _held_by(process, run, timeout=120.0):
    """Wait until `process` holds the lock of `run` (its pid in run.lock)."""
    deadline = time.monotonic() + timeout
    while not ((run / LOCK).is_file() and (run / LOCK).read_text().strip() == str(process.pid)):
        assert process.poll() is None, f"the holder ended first ({process.returncode})"
        assert time.monotonic() < deadline, "the holder never took the lock"
        time.sleep(0.1)


def _cli(*args):
    return subprocess.Popen([sys.executable, "-m", "qvae_core.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _killed(process):
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)


def test_a_second_run_in_a_running_directory_is_refused_naming_the_holder(tmp_path, capsys):
    config = _config_file(tmp_path)
    run = tmp_path / "run"
    holder = _cli("train", "--config", config, "--output", str(run), "--epochs", "100000", "--no-progress")
    try:
        _held_by(holder, run)
        for args in (["train", "--config", config, "--output", str(run), "--no-progress"],  # both fresh
                     ["train", "--config", config, "--output", str(run), "--overwrite", "--no-progress"],
                     ["train", "--resume", "--output", str(run), "--no-progress"]):
            assert main(args) == 2, args
            assert f"in use by another run (pid {holder.pid}" in capsys.readouterr().err, args
        contender = _cli("train", "--config", config, "--output", str(run), "--overwrite", "--no-progress")
        _, err = contender.communicate(timeout=300)
        assert contender.returncode == 2 and f"pid {holder.pid}" in err
        assert holder.poll() is None  # the holder runs on, undisturbed
    finally:
        _killed(holder)
    # the killed holder left run.lock behind, holding its pid: a stale file blocks nothing
    assert (run / LOCK).read_text().strip() == str(holder.pid)
    assert main(["train", "--config", config, "--output", str(run), "--overwrite", "--no-progress"]) == 0
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1]

    resumed = _cli("train", "--resume", "--output", str(run), "--epochs", "100000", "--no-progress")
    try:
        _held_by(resumed, run)
        assert main(["train", "--resume", "--output", str(run), "--epochs", "3", "--no-progress"]) == 2  # both resume
        assert f"pid {resumed.pid}" in capsys.readouterr().err
        assert main(["sample", str(run), "--num-samples", "4"]) == 2  # it would write into the run
        assert main(["sample", str(run), "--num-samples", "4", "--output", str(tmp_path / "s.png")]) == 0
    finally:
        _killed(resumed)
    assert main(["sample", str(run), "--num-samples", "4"]) == 0


def test_the_lock_is_shared_within_a_process_and_released_with_its_last_holder(tmp_path):
    run = tmp_path / "run"
    first = RunLock(run)
    second = RunLock(run)  # (a trainer resumed, then fit, in one process)
    probe = [sys.executable, "-c", f"from qvae_core._training import RunLock; RunLock({str(run)!r})"]
    first.release()
    held = subprocess.run(probe, capture_output=True, text=True)
    assert held.returncode != 0 and f"pid {os.getpid()}" in held.stderr
    second.release()
    subprocess.run(probe, check=True)


_KILLED_IN = """
import os, signal, sys
from qvae_core import _training
from qvae_core.dvae.config import TrainConfig
from qvae_core.dvae.train import Trainer
import qvae_core.dvae.train as train

def append_then_die(output, metrics):  # a kill in the middle of writing the line of epoch {epoch}
    if metrics["epoch"] == {epoch}:
        with open(output / _training.METRICS, "a") as f:
            f.write(__import__("json").dumps(metrics)[:25])
        os.kill(os.getpid(), signal.SIGKILL)
    _training.append_metrics(output, metrics)

def save_then_die(state, path):  # a kill while the checkpoint of epoch {epoch} is written
    if state["epoch"] == {epoch} and {in_checkpoint}:
        path.with_name(path.name + ".tmp").write_bytes(b"half a checkpoint")
        os.kill(os.getpid(), signal.SIGKILL)
    return _training.save_atomically(state, path)

train.append_metrics, train.save_atomically = append_then_die, save_then_die
Trainer(TrainConfig(**{config}, output=sys.argv[1])).fit(progress=False)
"""


def _killed_run(tmp_path, epoch, in_checkpoint):
    run = tmp_path / "run"
    code = _KILLED_IN.replace("{epoch}", str(epoch)).replace("{in_checkpoint}", str(in_checkpoint))
    code = code.replace("{config}", repr({**TINY, "epochs": 3}))
    died = subprocess.run([sys.executable, "-c", code, str(run)], capture_output=True, text=True)
    assert died.returncode == -signal.SIGKILL, died.stderr
    return run


def test_a_kill_while_a_metrics_line_is_written_leaves_a_run_that_resumes(tmp_path):
    run = _killed_run(tmp_path, epoch=2, in_checkpoint=False)  # epoch 1 saved, epoch 2's line cut short
    trainer = Trainer.resume(run, epochs=2)
    assert trainer.epoch == 1
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1]
    trainer.fit(progress=False)
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_a_kill_during_the_first_checkpoint_leaves_no_metrics_line_that_survives(tmp_path):
    run = _killed_run(tmp_path, epoch=1, in_checkpoint=True)
    assert (run / "metrics.jsonl").read_text() and not (run / "checkpoint.pt").exists()
    with pytest.raises(FileNotFoundError, match="checkpoint.pt does not exist"):
        Trainer.resume(run)
    Trainer(TrainConfig(**{**TINY, "output": str(run)})).fit(progress=False)  # no run there: it starts anew
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1]


def test_resume_to_fewer_epochs_than_saved_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    Trainer(TrainConfig(**{**TINY, "output": str(run)})).fit(progress=False)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["epoch"] = 23
    torch.save(state, run / "checkpoint.pt")
    config = (run / "config.json").read_text()
    assert main(["train", "--resume", "--output", str(run), "--epochs", "22", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "epochs: the run in" in err and "saved at epoch 23" in err and "got 22" in err
    assert (run / "config.json").read_text() == config


# ---- files that lie ---------------------------------------------------------------------------------------


def _lying_npz(path, members):
    """An .npz whose members are (name, header shape, dtype, bytes actually stored)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, shape, dtype, stored in members:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                          "shape": shape})
            archive.writestr(name + ".npy", header.getvalue() + bytes(stored))
    return path


def test_a_topology_file_claiming_a_huge_edge_array_is_refused_before_allocating(tmp_path):
    topology = q.graphs.chimera(1)
    good = tmp_path / "good.npz"
    q.graphs.save(topology, good)
    assert q.graphs.load(good).edges.shape == topology.edges.shape
    lie = _lying_npz(tmp_path / "lie.npz", [("name", (), "<U4", 16), ("nodes", (8,), "<i8", 64),
                                            ("edges", (10**12, 2), "<i8", 16)])
    with pytest.raises(ValueError, match=r"lie\.npz.*edges\.npy: declares shape \(1000000000000, 2\)"):
        q.graphs.load(lie)


def test_every_npz_loader_checks_declared_sizes(tmp_path):
    from qvae_core.dvae.data import load_dataset
    from qvae_core.embedding import Embedding
    from qvae_core.qahm.data import load_usps

    huge = [("train", (10**9, 784), "u1", 100), ("valid", (10**9, 784), "u1", 100)]
    with pytest.raises(ValueError, match=r"data\.npz.*declares shape \(1000000000, 784\)"):
        load_dataset(_lying_npz(tmp_path / "data.npz", huge))
    usps = [(f"{split}_{kind}", (10**10, 256), "<i4", 8) for split in ("train", "test")
            for kind in ("pixels", "labels")]
    with pytest.raises(ValueError, match=r"usps\.npz.*declares shape"):
        load_usps(_lying_npz(tmp_path / "usps.npz", usps))
    with pytest.raises(ValueError, match=r"embedding\.npz.*declares shape"):
        Embedding.load(_lying_npz(tmp_path / "embedding.npz", [("version", (10**11,), "<i8", 8)]))
    sampler = q.GibbsSampler(q.BoltzmannMachine(np.zeros(2), [[0, 1]], [0.5]), num_chains=2, seed=0)
    np.savez(tmp_path / "chains.npz", **sampler.checkpoint())
    keys = np.load(tmp_path / "chains.npz").files
    lie = _lying_npz(tmp_path / "chains_lie.npz", [(key, (10**12,), "<f8", 8) for key in keys])
    with np.load(lie) as archive, pytest.raises(ValueError, match=r"checkpoint: member .*declares shape"):
        sampler.restore(archive)
