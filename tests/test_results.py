"""Results one can look at: progress bars (tqdm) that change no result, curves.png, TensorBoard
scalars, labelled reconstruction grids and the epoch line's training ELBO."""

import json
import re

import numpy as np
import pytest

import qvae_core as q
from qvae_core import _progress

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _qbm(seed=0):
    rng = np.random.default_rng(seed)
    return q.QBM(q.RBM(rng.normal(0, 1, (6, 8)), rng.normal(0, 0.5, 6), rng.normal(0, 0.5, 8)), 1.0)


def _record(monkeypatch):
    """Every bar progress_bar makes, recording (n, total) at each update."""
    pytest.importorskip("tqdm")
    made, make = [], _progress.progress_bar

    def recording(*args, **kwargs):
        bar = make(*args, **kwargs)
        made.append((bar, []))
        update = bar.update

        def record(n=1):
            update(n)
            made[-1][1].append(bar.n)

        bar.update = record
        return bar

    monkeypatch.setattr("qvae_core.annealing.progress_bar", recording)
    return made


@pytest.mark.parametrize("model", ["rbm", "qbm"])
def test_anneal_with_progress_gives_the_same_result(model, monkeypatch):
    rng = np.random.default_rng(1)
    rbm = q.RBM(rng.normal(0, 1, (20, 40)), np.zeros(20), np.zeros(40))
    subject = rbm if model == "rbm" else _qbm()
    made = _record(monkeypatch)
    plain = q.anneal(subject, population=400, seed=5)
    shown = q.anneal(subject, population=400, seed=5, progress=True)
    for field in ("log_z", "log_z_std", "samples", "schedule", "ess", "rho", "families", "energies"):
        assert np.array_equal(getattr(plain, field), getattr(shown, field)), field
    (bar, values), = made
    assert bar.total == 1.0 and values[-1] == 1.0
    assert len(values) > 2 and values == sorted(values)  # moved during the run, never back
    assert set(values[:-1]) <= set(plain.schedule)  # the t values the run reached


def test_log_diag_with_progress_gives_the_same_result(monkeypatch):
    qbm = _qbm()
    states = q.PathIntegralSampler(qbm, 12, seed=1).run(5)
    made = _record(monkeypatch)
    plain = q.log_diag(qbm, states, population=100, seed=3)
    shown = q.log_diag(qbm, states, population=100, seed=3, progress=True, num_threads=2)
    assert np.array_equal(plain[0], shown[0]) and np.array_equal(plain[1], shown[1])
    (bar, values), = made
    assert bar.total == 12 and values[-1] == 12 and all(isinstance(v, int) for v in values)
    assert values == sorted(values)


def test_progress_must_be_a_bool():
    with pytest.raises(ValueError, match="progress"):
        q.anneal(_qbm(), population=100, seed=0, progress="yes")


def test_an_error_raised_by_the_progress_display_stops_the_run(monkeypatch):
    class Broken(Exception):
        pass

    class BrokenBar:
        n, total = 0.0, 1.0

        def update(self, n):
            raise Broken()

        def close(self):
            pass

    monkeypatch.setattr("qvae_core.annealing.progress_bar", lambda *a, **k: BrokenBar())
    with pytest.raises(Broken):
        q.anneal(_qbm(), population=400, seed=0, progress=True)


def test_progress_writes_whole_lines_when_stderr_is_not_a_terminal(capsys):
    pytest.importorskip("tqdm")
    bar = _progress.progress_bar(4, "epoch 1/1", unit="step")
    for _ in range(4):
        bar.update(1)
    bar.close()
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert lines[0].startswith("epoch 1/1:") and "4/4" in lines[-1]


# --- training runs ---

torch = pytest.importorskip("torch")

from qvae_core.dvae.config import TrainConfig  # noqa: E402
from qvae_core.dvae.train import Trainer  # noqa: E402

TINY = {"latent": "8x8", "groups": 2, "encoder_hidden": [32], "decoder_hidden": [32], "batch_size": 20,
        "train_size": 100, "valid_size": 100, "negative_samples": 100, "sweeps": 5, "log_z_population": 200}


def _is_png(path):
    data = path.read_bytes()
    return data.startswith(PNG_SIGNATURE) and len(data) > 1000


def test_training_with_a_progress_bar_gives_the_same_run(tmp_path, capsys):
    pytest.importorskip("tqdm")
    runs = []
    for progress in (False, True):
        trainer = Trainer(TrainConfig(**TINY, epochs=1, output=str(tmp_path / str(progress))))
        runs.append(trainer.fit(progress=progress, log=lambda line: None))
        for name, value in trainer.model.state_dict().items():
            runs[-1].append((name, value))
    for item in zip(*runs):
        if isinstance(item[0], dict):
            timing = ("sampling_share", "overlap_share")
            assert {k: v for k, v in item[0].items() if "seconds" not in k and k not in timing} == {
                k: v for k, v in item[1].items() if "seconds" not in k and k not in timing}
        else:
            assert torch.equal(item[0][1], item[1][1]), item[0][0]
    assert "epoch 1/1" in capsys.readouterr().err


def test_the_epoch_line_prints_the_training_elbo_as_metrics_record_it(tmp_path):
    lines = []
    trainer = Trainer(TrainConfig(**TINY, epochs=2, eval_every=2, output=str(tmp_path)))
    history = trainer.fit(progress=False, log=lines.append)
    recorded = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert recorded == history
    first, second = history
    assert "train_elbo" not in first and "log_z" not in first  # not validated: no log Z for this epoch
    assert re.search(r"objective +-?\d+\.\d+ \(log Z left out\)", lines[0])
    assert second["train_elbo"] == pytest.approx(second["train_objective"] - second["log_z"], abs=1e-12)
    printed = re.search(r"training ELBO +(-?\d+\.\d+) +validation ELBO +(-?\d+\.\d+) ± ([\d.]+) +log Z "
                        r"(-?\d+\.\d+)", lines[1])
    assert printed, lines[1]
    train_elbo, val_elbo, _, log_z = (float(v) for v in printed.groups())
    assert train_elbo == pytest.approx(second["train_elbo"], abs=1e-3)
    assert val_elbo == pytest.approx(second["val_elbo"], abs=1e-3)
    assert log_z == pytest.approx(second["log_z"], abs=1e-3)


def test_no_training_elbo_while_the_kl_weight_warms_up(tmp_path):
    lines = []
    history = Trainer(TrainConfig(**TINY, epochs=2, kl_warmup_epochs=1.5, output=str(tmp_path))).fit(
        progress=False, log=lines.append)
    assert [("train_elbo" in m) for m in history] == [False, False]  # the KL weight is below 1 in both
    assert all("(log Z left out)" in line and "validation ELBO" in line for line in lines)


def test_qbm_and_importance_weighted_bounds_are_named_as_such(tmp_path):
    lines = []
    history = Trainer(TrainConfig(**TINY, gamma=0.5, epochs=1, output=str(tmp_path / "q"))).fit(
        progress=False, log=lines.append)
    assert "train_q_elbo" in history[0] and "training Q-ELBO" in lines[0] and "validation Q-ELBO" in lines[0]
    history = Trainer(TrainConfig(**TINY, kd_schedule=[[2, 1]], epochs=1, output=str(tmp_path / "k"))).fit(
        progress=False, log=lines.append)
    assert "train_l_kd" in history[0] and "training L_{2,1}" in lines[1]


def test_curves_are_written_and_redrawn(tmp_path):
    trainer = Trainer(TrainConfig(**TINY, epochs=1, output=str(tmp_path)))
    trainer.fit(progress=False, log=lambda line: None)
    curves = tmp_path / "curves.png"
    assert _is_png(curves)
    first = curves.read_bytes()
    resumed = Trainer.resume(tmp_path, epochs=2)
    resumed.fit(progress=False, log=lambda line: None)
    assert _is_png(curves) and curves.read_bytes() != first  # drawn again with the second epoch
    assert not list(tmp_path.glob("*.tmp"))


def test_qahm_writes_curves(tmp_path):
    from qvae_core.qahm import QAHMConfig
    from qvae_core.qahm import Trainer as QAHMTrainer

    config = QAHMConfig(prior="dense", hidden=[8, 4], epochs=1, batch_size=100, train_size=200, test_size=50,
                        negative_samples=50, sweeps=5, eval_every=1, log_z_population=100, output=str(tmp_path))
    QAHMTrainer(config).fit(progress=False, log=lambda line: None)
    assert _is_png(tmp_path / "curves.png")


def test_tensorboard_scalars_when_asked(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    plain = Trainer(TrainConfig(**TINY, epochs=1, output=str(tmp_path / "plain")))
    plain.fit(progress=False, log=lambda line: None)
    assert not (tmp_path / "plain" / "tensorboard").exists()  # off by default
    trainer = Trainer(TrainConfig(**TINY, epochs=2, tensorboard=True, output=str(tmp_path / "tb")))
    history = trainer.fit(progress=False, log=lambda line: None)
    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"))
    events.Reload()
    elbo = events.Scalars("val_elbo")
    assert [e.step for e in elbo] == [1, 2]
    assert [e.value for e in elbo] == pytest.approx([m["val_elbo"] for m in history], rel=1e-6)
    assert "train_elbo" in events.Tags()["scalars"]


def test_tensorboard_flag_and_config_check(tmp_path, capsys):
    from qvae_core.cli import main

    with pytest.raises(ValueError, match="tensorboard"):
        TrainConfig(**TINY, tensorboard="yes")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**TINY, "epochs": 1, "final_importance_samples": 2}))
    pytest.importorskip("tensorboard")
    assert main(["train", "--config", str(config), "--no-progress", "--tensorboard", "--output",
                 str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["tensorboard"] is True
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert _is_png(tmp_path / "run" / "reconstructions.png")


def test_reconstruction_rows_are_labelled(tmp_path):
    from PIL import Image

    from qvae_core.dvae.images import save_grid

    pixels = np.zeros((4, 16))
    plain = save_grid(pixels, (4, 4), tmp_path / "plain.png", columns=2)
    labelled = save_grid(pixels, (4, 4), tmp_path / "labelled.png", columns=2, row_labels=["data", "reconstruction"])
    a, b = Image.open(plain), Image.open(labelled)
    assert b.height == a.height and b.width > a.width
    margin = np.asarray(b)[:, : b.width - a.width]
    assert (margin < 128).any() and (margin == 255).any()  # black text on white
    assert np.array_equal(np.asarray(b)[:, b.width - a.width:], np.asarray(a))
