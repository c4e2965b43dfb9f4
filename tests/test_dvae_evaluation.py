"""Evaluation at the papers' scale: each image's draws come from its own stream, so passes of any
size, parts of a split evaluated apart and interrupted-then-resumed runs give the numbers of one
pass; memory is bounded by passes over K and images; `evaluate --split` and files named by their
settings, never overwritten unasked."""

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from qvae_core.cli import main  # noqa: E402
from qvae_core.dvae import evaluation  # noqa: E402
from qvae_core.dvae.config import TrainConfig  # noqa: E402
from qvae_core.dvae.data import load_dataset  # noqa: E402
from qvae_core.dvae.evaluation import draw_noise, evaluate  # noqa: E402
from qvae_core.dvae.run_evaluation import evaluate_run, evaluation_filename  # noqa: E402
from qvae_core.dvae.train import Trainer, build_model  # noqa: E402

SMALL = {"latent": "8x8", "groups": 2, "encoder_hidden": [32], "decoder_hidden": [32], "seed": 3}
LOG_Z = (5.0, 0.0)  # any fixed value: these tests compare evaluations with each other
ROUNDING = 1e-4  # nats: float32 rounding of log w (~500 nats) when a matrix product has other rows


def _model():
    return build_model(TrainConfig(**SMALL), (28, 28)).eval()


def _images(n):
    return load_dataset().valid[:n]


def _per_image_ll(model, images, k, seed, first_image=0):
    """log (1/K) Σ_k w_k of each image computed directly, all K draws in one forward pass per image."""
    out = []
    x = torch.as_tensor(images)
    for i in range(len(images)):
        block = evaluation.SAMPLE_BLOCK
        noise = torch.cat([draw_noise(seed, first_image + i, b, min(block, k - b * block), model.prior.num_units)
                           for b in range(math.ceil(k / block))], dim=1)
        d = model.draws(x[i : i + 1], k, noise=noise)
        log_w = (d.log_px - d.log_q - model.prior.energy(d.z.flatten(0, 1)).view_as(d.log_px)).double() - LOG_Z[0]
        out.append(float(torch.logsumexp(log_w[:, 0], 0)) - math.log(k))
    return np.array(out)


@torch.no_grad()
def test_ll_is_the_log_mean_weight_of_each_images_draws_across_blocks(monkeypatch):
    """Blocks of draws (here 4) combine into log mean_k w_k over all K of an image."""
    monkeypatch.setattr(evaluation, "SAMPLE_BLOCK", 4)
    model, images = _model(), _images(5)
    m = evaluate(model, images, importance_samples=10, log_z=LOG_Z, seed=2)
    direct = _per_image_ll(model, images, 10, seed=2)
    assert m["ll"] == pytest.approx(direct.mean(), abs=ROUNDING)
    assert m["ll_stderr"] == pytest.approx(direct.std(ddof=1) / math.sqrt(5), abs=ROUNDING)
    assert m["importance_samples"] == 10 and m["num_images"] == 5
    one = evaluate(model, images, importance_samples=1, log_z=LOG_Z, seed=2)
    assert one["ll"] == pytest.approx(one["elbo"], abs=ROUNDING)  # K = 1: the same single draw


@torch.no_grad()
def test_passes_and_parts_of_a_split_give_the_numbers_of_one_pass(monkeypatch):
    model, images = _model(), _images(30)
    whole = evaluate(model, images, importance_samples=7, log_z=LOG_Z, seed=4)
    rows = []
    draws = model.draws

    def counted(x, k, generator=None, noise=None):
        rows.append(x.shape[0] * k)
        return draws(x, k, generator, noise)

    monkeypatch.setattr(model, "draws", counted)
    monkeypatch.setattr(evaluation, "_ROWS_PER_PASS", 20)  # 2 images of 7 draws per pass
    small = evaluate(model, images, importance_samples=7, log_z=LOG_Z, seed=4)
    assert max(rows) == 14 and sum(rows) == 30 * 7
    # Only the row counts of the matrix products differ, which changes their float32 rounding: log w
    # is ~500 nats, so each image's terms may move by ~500 x 6e-8 = 3e-5 nats.
    for key in ("ll", "elbo", "ll_stderr", "elbo_stderr"):
        assert small[key] == pytest.approx(whole[key], abs=ROUNDING), key
    assert small["active_units"] == whole["active_units"]
    # a split evaluated in two parts (two tasks or processes): its images keep their streams
    head = evaluate(model, images[:12], importance_samples=7, log_z=LOG_Z, seed=4)
    tail = evaluate(model, images[12:], importance_samples=7, log_z=LOG_Z, seed=4, first_image=12)
    assert (12 * head["ll"] + 18 * tail["ll"]) / 30 == pytest.approx(whole["ll"], abs=ROUNDING)
    assert (12 * head["elbo"] + 18 * tail["elbo"]) / 30 == pytest.approx(whole["elbo"], abs=ROUNDING)
    shifted = evaluate(model, images[12:], importance_samples=7, log_z=LOG_Z, seed=4)  # first_image 0: other draws
    assert abs(shifted["ll"] - tail["ll"]) > 100 * ROUNDING


@torch.no_grad()
def test_paper_scale_k_runs_in_passes_of_bounded_size(monkeypatch):
    """K = 30,000 draws of an image: 30 passes of 1,000 draws, never more rows at once."""
    model = _model()
    rows = []
    draws = model.draws
    monkeypatch.setattr(model, "draws", lambda x, k, generator=None, noise=None: rows.append(x.shape[0] * k)
                        or draws(x, k, generator, noise))
    m = evaluate(model, _images(2), importance_samples=30_000, log_z=LOG_Z, seed=0)
    assert rows == [2000] * 30 and m["importance_samples"] == 30_000
    assert m["ll"] >= m["elbo"] - 5 * m["elbo_stderr"]
    assert np.isfinite(m["ll"])


@torch.no_grad()
def test_an_interrupted_evaluation_resumes_to_the_uninterrupted_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation, "_ROWS_PER_PASS", 10)  # one image of 10 draws per pass
    monkeypatch.setattr(evaluation, "_SAVE_SECONDS", 0.0)  # save after every pass
    model, images = _model(), _images(8)
    uninterrupted = evaluate(model, images, importance_samples=10, seed=6, log_z_population=200)
    draws, calls = model.draws, []

    def interrupted(x, k, generator=None, noise=None):
        calls.append(x.shape[0])
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C during the fourth pass
        return draws(x, k, generator, noise)

    partial = tmp_path / "run" / "evaluation.partial.npz"
    monkeypatch.setattr(model, "draws", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate(model, images, importance_samples=10, seed=6, log_z_population=200, partial=partial)
    with np.load(partial) as saved:
        assert int(saved["done"]) == 3  # the images finished before the interruption
        assert float(saved["log_z"][0]) == uninterrupted["log_z"]  # log Z is not annealed again
    with pytest.raises(ValueError, match="evaluation.partial.npz holds an evaluation with other settings \\(seed\\)"):
        evaluate(model, images, importance_samples=10, seed=7, log_z_population=200, partial=partial)
    monkeypatch.setattr(model, "draws", lambda x, k, generator=None, noise=None: calls.append(x.shape[0])
                        or draws(x, k, generator, noise))
    calls.clear()
    resumed = evaluate(model, images, importance_samples=10, seed=6, log_z_population=200, partial=partial)
    assert calls == [1] * 5  # only the images not yet done
    assert resumed == uninterrupted  # bit for bit
    (tmp_path / "junk.npz").write_bytes(b"no archive")
    with pytest.raises(ValueError, match="junk.npz could not be read"):
        evaluate(model, images, importance_samples=10, seed=6, partial=tmp_path / "junk.npz")


@torch.no_grad()
def test_progress_counts_images_times_k(capsys):
    evaluate(_model(), _images(3), importance_samples=5, log_z=LOG_Z, progress=True)
    err = capsys.readouterr().err
    assert "evaluation: 100%" in err and "15.0/15.0" in err and "draw/s" in err
    evaluate(_model(), _images(3), importance_samples=5, log_z=LOG_Z)
    assert capsys.readouterr().err == ""


def _trained_run(tmp_path, data=None):
    config = TrainConfig(**SMALL, epochs=1, train_size=100, valid_size=40, batch_size=50, negative_samples=100,
                         sweeps=5, log_z_population=200, output=str(tmp_path / "run"), data=data)
    Trainer(config).fit(progress=False, log=lambda line: None)
    return tmp_path / "run"


def test_evaluate_run_names_files_by_settings_refuses_to_overwrite_and_missing_splits(tmp_path):
    run = _trained_run(tmp_path)  # the packaged subset: valid only
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(ValueError, match="split: .* has no test split"):
        evaluate_run(run, "test", importance_samples=3, log_z_population=200)
    with pytest.raises(ValueError, match="split: expected one of"):
        evaluate_run(run, "train")
    assert sorted(p.name for p in run.iterdir()) == before  # nothing written
    metrics, path = evaluate_run(run, "valid", importance_samples=3, num_images=10, seed=2, log_z_population=200)
    assert path == run / "evaluation-valid-K3-seed2-n10.json" == run / evaluation_filename("valid", 3, 2, 10)
    assert json.loads(path.read_text()) == metrics and metrics["split"] == "valid" and metrics["num_images"] == 10
    assert sorted(p.name for p in run.iterdir()) == sorted(before + [path.name])  # no partial file left
    with pytest.raises(ValueError, match="evaluation-valid-K3-seed2-n10.json exists"):
        evaluate_run(run, "valid", importance_samples=3, num_images=10, seed=2, log_z_population=200)
    again, _ = evaluate_run(run, "valid", importance_samples=3, num_images=10, seed=2, log_z_population=200,
                            overwrite=True)
    assert again == metrics


def test_cli_evaluates_the_test_split_of_an_npz_and_never_overwrites(tmp_path, capsys):
    subset = load_dataset()
    npz = tmp_path / "with_test.npz"
    np.savez(npz, train=subset.train[:100].astype(np.uint8), valid=subset.valid[:40].astype(np.uint8),
             test=subset.valid[40:60].astype(np.uint8))
    run = _trained_run(tmp_path, data=str(npz))
    flags = ["--importance-samples", "4", "--log-z-population", "200", "--no-progress"]
    assert main(["evaluate", str(run), "--split", "test", *flags]) == 0
    out = capsys.readouterr().out
    assert "test       LL" in out and "evaluation-test-K4-seed0.json" in out
    metrics = json.loads((run / "evaluation-test-K4-seed0.json").read_text())
    assert metrics["num_images"] == 20 and metrics["split"] == "test"
    assert main(["evaluate", str(run), "--split", "test", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "evaluation-test-K4-seed0.json exists" in err and "--overwrite" in err
    assert main(["evaluate", str(run), "--split", "test", "--overwrite", *flags]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(tmp_path / "missing.npz"), *flags]) == 2
    assert "missing.npz does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: an unknown split is a usage error, status 2
        main(["evaluate", str(run), "--split", "train"])
    assert "invalid choice: 'train'" in capsys.readouterr().err

    plain = tmp_path / "plain.npz"
    np.savez(plain, train=subset.train[:100].astype(np.uint8), valid=subset.valid[:40].astype(np.uint8))
    before = sorted(p.name for p in run.iterdir())
    assert main(["evaluate", str(run), "--split", "test", "--data", str(plain), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "plain.npz has no test split" in err
    assert sorted(p.name for p in run.iterdir()) == before

    assert main(["sample", str(run), "--num-samples", "6", "--columns", "3"]) == 0
    assert (run / "samples-seed0-n6.png").is_file()
    assert main(["sample", str(run), "--num-samples", "6"]) == 2
    assert "samples-seed0-n6.png exists" in capsys.readouterr().err
    assert main(["sample", str(run), "--num-samples", "6", "--overwrite"]) == 0
