"""The QAHM on USPS (qvae_core.qahm): data, a short run that improves the bound and the accuracy,
exact resume, the `qvae-core qahm` commands and their errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("minorminer")
from qvae_core.cli import main  # noqa: E402
from qvae_core.qahm import QAHMConfig, Trainer, load_usps  # noqa: E402
from qvae_core.qahm.data import one_hot  # noqa: E402

USPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "usps"  # ../shared of /work/main

# A small run: 200 training images, K_8 embedded in Chimera C(2) (chains of 3 qubits).
SMALL = dict(train_size=200, test_size=200, hidden=[32, 8], topology="chimera:2", negative_samples=100, sweeps=10,
             batch_size=50, lr=0.05, lr_end=0.05, epochs=2, eval_every=100, checkpoint_every=1, log_z_population=200)


def small(tmp_path, **overrides) -> QAHMConfig:
    return QAHMConfig(**{**SMALL, "output": str(tmp_path / "run"), **overrides})


# ---- data ----------------------------------------------------------------------------------------


def test_packaged_subset_is_the_head_of_the_usps_files():
    packaged = load_usps()
    assert packaged.train_pixels.shape == (1000, 256) and packaged.test_pixels.shape == (500, 256)
    assert packaged.train_pixels.dtype == np.float32 and packaged.train_pixels.min() == -1
    if not (USPS / "zip.train.gz").exists():
        pytest.skip("../shared/data/usps is not here")
    full = load_usps(USPS)
    assert full.train_pixels.shape == (7291, 256) and full.test_pixels.shape == (2007, 256)
    np.testing.assert_array_equal(packaged.train_pixels, full.train_pixels[:1000])
    np.testing.assert_array_equal(packaged.train_labels, full.train_labels[:1000])
    np.testing.assert_array_equal(packaged.test_pixels, full.test_pixels[:500])
    assert np.bincount(full.train_labels).tolist()[:2] == [1194, 1005]
    np.testing.assert_array_equal(one_hot(np.array([2, 0]))[:, :3], [[-1, -1, 1], [1, -1, -1]])


def write_usps(directory, lines_train, lines_test=None):
    directory.mkdir(exist_ok=True)
    (directory / "zip.train").write_text("\n".join(lines_train) + "\n")
    (directory / "zip.test").write_text("\n".join(lines_test or lines_train) + "\n")
    return directory


def test_usps_files_are_read_and_checked(tmp_path):
    good = "3 " + " ".join(["-1"] * 255 + ["0.5"])
    data = load_usps(write_usps(tmp_path / "ok", [good, good]))
    assert data.train_labels.tolist() == [3, 3] and data.train_pixels[0, -1] == 0.5
    assert load_usps(tmp_path / "ok" / "zip.train").test_pixels.shape == (2, 256)
    cases = {
        "short": ("3 " + " ".join(["-1"] * 200), "line 1: expected a label and 256 values"),
        "range": ("3 " + " ".join(["-1"] * 255 + ["1.5"]), "outside \\[-1, 1\\]"),
        "label": ("12 " + " ".join(["-1"] * 256), "not digits 0-9"),
        "text": ("3 " + " ".join(["-1"] * 255 + ["x"]), "not a number"),
    }
    for name, (line, message) in cases.items():
        with pytest.raises(ValueError, match=f"data: .*{name}.*{message}"):
            load_usps(write_usps(tmp_path / name, [line]))
    (tmp_path / "lonely").mkdir()
    (tmp_path / "lonely" / "zip.train").write_text(good + "\n")
    with pytest.raises(FileNotFoundError, match="data: .*lonely holds no zip.test"):
        load_usps(tmp_path / "lonely")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_usps(tmp_path / "nowhere")


# ---- training ------------------------------------------------------------------------------------


def test_a_short_run_improves_the_bound_and_the_accuracy(tmp_path):
    """Ten epochs on 200 images: the test wake-sleep bound rises by many standard errors and the
    test accuracy (200 images) by more than 4 binomial standard errors."""
    trainer = Trainer(small(tmp_path, epochs=10), overwrite=True)
    before = trainer.evaluate()
    history = trainer.fit(progress=False, log=lambda line: None)
    after = trainer.evaluate()
    gain = after["bound"] - before["bound"]
    assert gain > 5 * np.hypot(after["bound_stderr"], before["bound_stderr"]) + after["log_z_std"] + before["log_z_std"]
    se = np.sqrt(0.25 / after["num_images"])
    assert after["accuracy"] - before["accuracy"] > 4 * se
    assert after["elbo"] >= after["bound"]  # Eq. 3 adds the entropy of Q, which is >= 0
    assert all(0 <= m["chain_break_fraction"] < 0.2 for m in history)
    assert history[-1]["wake_loss"] < history[0]["wake_loss"]


@pytest.mark.parametrize("prior, sampler", [("embedded", "pcd"), ("gray-box", "pcd"), ("dense", "pa"), ("embedded", "pa")])
def test_resume_continues_exactly(tmp_path, prior, sampler):
    straight = Trainer(small(tmp_path / "a", prior=prior, sampler=sampler, epochs=3, negative_samples=40))
    straight.fit(progress=False, log=lambda line: None)
    first = Trainer(small(tmp_path / "b", prior=prior, sampler=sampler, epochs=1, negative_samples=40))
    first.fit(progress=False, log=lambda line: None)
    resumed = Trainer.resume(tmp_path / "b" / "run", epochs=3)
    resumed.fit(progress=False, log=lambda line: None)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    lines = [json.loads(line) for line in (tmp_path / "b" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2, 3]


def test_learning_rate_schedule_is_the_papers():
    trainer = Trainer.__new__(Trainer)
    trainer.config = QAHMConfig()
    rates = [trainer.lr_at(e) for e in (0, 499, 500, 749, 999)]
    assert rates[:2] == [0.005, 0.005]
    assert rates[2] == pytest.approx(0.005 - 0.0045 / 500) and rates[-1] == pytest.approx(0.0005)
    assert rates[3] == pytest.approx(0.005 - 0.0045 * 250 / 500)


# ---- command line --------------------------------------------------------------------------------


ARGS = ["--train-size", "100", "--test-size", "100", "--hidden", "16,6", "--topology", "pegasus:2",
        "--negative-samples", "40", "--sweeps", "5", "--batch-size", "50", "--epochs", "1", "--log-z-population",
        "300", "--no-progress"]


def test_qahm_commands(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["qahm", "train", *ARGS, "--output", out]) == 0
    run = Path(out)
    for name in ("checkpoint.pt", "metrics.jsonl", "evaluation.json", "embedding.npz", "samples.png", "neighbours.png",
                 "classes.png", "config.json"):
        assert (run / name).is_file(), name
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert {"bound", "elbo", "accuracy", "reconstruction_mse", "generated_class_counts"} <= set(evaluation)
    assert sum(evaluation["generated_class_counts"]) == 300
    capsys.readouterr()
    assert main(["qahm", "train", *ARGS, "--output", out]) == 2  # a run is there
    assert "--overwrite" in capsys.readouterr().err
    assert main(["qahm", "train", "--resume", "--output", out, "--epochs", "2", "--no-progress"]) == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert main(["qahm", "evaluate", out, "--num-images", "50", "--log-z-population", "200"]) == 0
    assert json.loads((run / "evaluation.json").read_text())["num_images"] == 50
    assert main(["qahm", "sample", str(run / "checkpoint.pt"), "--num-samples", "20", "--output",
                 str(tmp_path / "figures")]) == 0
    assert (tmp_path / "figures" / "neighbours.png").is_file()


@pytest.mark.parametrize("flags, message", [
    (["--chain-strength", "0"], "chain_strength: expected a finite number > 0"),
    (["--topology", "chimera:0"], "topology: expected chimera:M"),
    (["--prior", "dense", "--sampler", "qpu"], "sampler: a QPU samples the embedded or gray-box prior"),
    (["--topology", "chimera:1", "--hidden", "16,9"], "model: 9 units, more than the 8 qubits"),
    (["--data", "/nonexistent/usps"], "data: /nonexistent/usps does not exist"),
    (["--embedding", "missing.npz"], "missing.npz: not an embedding file"),
])
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, flags, message):
    assert main(["qahm", "train", *ARGS, "--output", str(tmp_path / "run"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err


def test_resume_refuses_to_change_the_run(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["qahm", "train", *ARGS, "--output", out]) == 0
    capsys.readouterr()
    assert main(["qahm", "train", "--resume", "--output", out, "--hidden", "8,4"]) == 2
    assert "hidden: fixed by the saved run" in capsys.readouterr().err
    assert main(["qahm", "train", "--resume", "--output", out, "--epochs", "2", "--no-progress"]) == 0
    assert main(["qahm", "train", "--resume", "--output", out, "--epochs", "1"]) == 2  # saved at epoch 2
    assert "saved at epoch 2" in capsys.readouterr().err
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from qvae_core._training import RunLock; "
                               f"lock = RunLock({out!r}); print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        for args in (["train", "--resume", "--output", out, "--epochs", "3"], ["sample", out],
                     ["train", *ARGS, "--output", out, "--overwrite"]):
            assert main(["qahm", *args]) == 2, args
            assert f"in use by another run (pid {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.communicate()
    (Path(out) / "checkpoint.pt").write_bytes(b"garbage")
    assert main(["qahm", "evaluate", out]) == 2
    assert "checkpoint: " in capsys.readouterr().err
