"""The papers' experiments as presets: their values are the papers' (spot checks against the printed
tables and set-ups), flags override them, bad names are refused, and `experiments` runs a table per
seed, resumes it and writes the papers' numbers beside ours as mean ± standard error over seeds."""

import dataclasses
import json
import math

import numpy as np
import pytest

pytest.importorskip("torch")

import qvae_core as q  # noqa: E402
from qvae_core.cli import main  # noqa: E402
from qvae_core.dvae import experiments  # noqa: E402
from qvae_core.dvae.config import TrainConfig  # noqa: E402
from qvae_core.dvae.experiments import Budget, run_table  # noqa: E402
from qvae_core.dvae.presets import PRESETS, TABLES, preset, preset_values  # noqa: E402

# a budget of seconds: the presets' networks and negative phase, shrunk
SMALL = {"train_size": 100, "valid_size": 40, "encoder_hidden": [32], "decoder_hidden": [32], "batch_size": 50,
         "negative_samples": 50, "sweeps": 2, "log_z_population": 100}
SMALL_FLAGS = [f"--set={k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in SMALL.items()]


def with_test_split(tmp_path) -> str:
    """The packaged subset with a `test` key (its last 40 validation images stand in for test images),
    for tables that report the test split."""
    from qvae_core.dvae.data import load_dataset

    path = tmp_path / "subset-with-test.npz"
    data = np.load(load_dataset(None).source)
    np.savez(path, train=data["train"], valid=data["valid"], test=data["valid"][-40:])
    return str(path)


def test_paper000_table_i_rows_are_the_printed_set_up():
    c = TrainConfig(**preset_values("paper000-I-rbm256x256"))
    assert (c.prior, c.latent, c.gamma) == ("rbm", "256x256", 0.0)
    assert (c.groups, c.encoder, c.encoder_hidden) == (8, "mlp", [2000, 2000])  # 8 levels, 2 x 2000 ReLU units
    assert len(c.decoder_hidden) == 1 and 250 <= c.decoder_hidden[0] <= 2000  # one layer of 250-2000 units
    assert (c.smoothing, c.beta_start, c.beta_end, c.epochs) == ("spike-exp", 1.0, 10.0, 2000)
    assert (c.batch_size, c.lr, c.kd_schedule) == (200, 1e-3, [[1, 1]])
    assert (c.sampler, c.negative_samples, c.sweeps) == ("pcd", 1000, 200)  # PCD, 1000 chains x 200 updates
    assert c.final_importance_samples == 30_000
    assert PRESETS["paper000-I-rbm256x256"].reported == {"elbo": "-89.2", "ll": "-83.5"}
    assert PRESETS["paper000-I-rbm32x32"].reported == {"elbo": "-99.3 ± 0.2", "ll": "-90.8 ± 0.2"}
    # a larger RBM, a smaller decoder (Sec. IV C)
    sizes = [PRESETS[name].values["decoder_hidden"][0] for name in TABLES["paper000-I"].rows]
    assert sizes == sorted(sizes, reverse=True)
    assert [PRESETS[name].values["latent"] for name in TABLES["paper000-I"].rows] == \
        ["32x32", "64x64", "128x128", "256x256"]


def test_paper000_table_ii_rows_are_the_printed_set_up():
    rows = TABLES["paper000-II"].rows
    assert len(rows) == 9 and TABLES["paper000-II"].split == "valid"
    for name in rows:
        c = TrainConfig(**preset_values(name))
        n = int(c.latent.split("x")[0])
        assert c.epochs == {16: 800, 32: 250, 64: 50}[n]  # the caption's epochs
        assert (c.sampler, c.negative_samples, c.sweeps) == ("pa", 1000, 5)  # PA CT-QMC, 1000 samples, 5 sweeps
        assert c.encoder_hidden == [2000, 2000] and c.groups == 8  # "exactly the same models"
    c = TrainConfig(**preset_values("paper000-II-qbm32x32-gamma2"))
    assert (c.latent, c.gamma) == ("32x32", 2.0)
    assert PRESETS["paper000-II-qbm32x32-gamma2"].reported == {"elbo": "-112.1", "q_elbo": "-139.7"}
    assert PRESETS["paper000-II-qbm64x64-gamma1"].reported == {"elbo": "-108.7", "q_elbo": "-133.9"}


def test_paper001_table_i_rows_are_the_printed_set_up():
    c = TrainConfig(**preset_values("paper001-I-chimera-pa"))
    assert q.graphs.chimera(*map(int, c.latent.split(","))).num_units == 288  # C(6): 6 x 6 cells of 8 qubits
    assert (c.prior, c.sampler, c.encoder, c.encoder_hidden) == ("chimera", "pa", "conv", [144, 144])
    assert c.kd_schedule == [[1, 8], [2, 4], [2, 4], [4, 2], [4, 2], [8, 1]] and c.kd_epochs == 200  # App. A
    assert (c.smoothing, c.beta_start, c.beta_end) == ("concrete", 7.0, 7.0)  # tau = 1/7 throughout
    assert (c.batch_size, c.lr, c.min_lr, c.kl_warmup_epochs, c.epochs) == (100, 3e-3, 1e-4, 200.0, 2000)
    assert math.isclose(c.lr * c.lr_decay**1800, 1e-4, rel_tol=1e-9)  # 3e-3 decays to 1e-4 after 1800 epochs
    assert c.final_importance_samples == 1000  # K = 1000 for the LL
    baseline = TrainConfig(**preset_values("paper001-I-bernoulli-pa"))
    assert (baseline.prior, baseline.latent) == ("bernoulli", "288")
    same = {k: v for k, v in c.to_dict().items() if k not in ("prior", "latent", "output")}
    assert same == {k: v for k, v in baseline.to_dict().items() if k not in ("prior", "latent", "output")}
    assert PRESETS["paper001-I-chimera-pa"].reported == {"ll": "-82.8 ± 0.1"}
    assert PRESETS["paper001-I-bernoulli-pa"].reported == {"ll": "-84.2 ± 0.05"}
    assert (TABLES["paper001-I"].split, TABLES["paper001-I"].seeds) == ("test", 5)  # test set, 5 runs


def test_every_preset_is_a_valid_config_citing_its_row():
    for name, p in PRESETS.items():
        TrainConfig(**preset_values(name))
        assert p.source.startswith(("paper 000, Table I,", "paper 000, Table II,", "paper 001, Table I,")), name
        assert set(p.unprinted) <= set(p.values), name
    assert sorted(n for t in TABLES.values() for n in t.rows if t.name not in ("results", "relaxations")) == sorted(
        PRESETS)
    values = preset_values("paper001-I-chimera-pa")
    values["kd_schedule"][0][0] = 99
    assert PRESETS["paper001-I-chimera-pa"].values["kd_schedule"][0][0] == 1  # a copy: the preset is unchanged


def test_list_presets_prints_every_name_and_source(capsys):
    assert main(["train", "--list-presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(PRESETS)
    for line, (name, p) in zip(lines, PRESETS.items()):
        assert line.split()[0] == name and line.endswith(p.source)


def test_an_unknown_preset_or_table_is_refused_and_nothing_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="preset: no preset named 'paper000-I-rbm512x512'"):
        preset("paper000-I-rbm512x512")
    assert main(["train", "--preset", "paper000-I-rbm512x512", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'paper000-I-rbm512x512'" in err
    assert main(["train", "--preset", "paper000-I-rbm32x32", "--quick"]) == 2
    with pytest.raises(ValueError, match="table: expected one of"):
        run_table("paper002-I")
    with pytest.raises(ValueError, match=r"rows: \['paper000-I-rbm32x32'\] not rows of paper001-I"):
        run_table("paper001-I", output=tmp_path, rows=["paper000-I-rbm32x32"])
    with pytest.raises(ValueError, match="seeds: expected an integer >= 1"):
        run_table("paper001-I", Budget(seeds=0), output=tmp_path)
    with pytest.raises(ValueError, match="latent"):  # a bad override: refused before any row trains
        run_table("paper000-I", Budget(overrides={**SMALL, "latent": "0x4"}, epochs=1), output=tmp_path)
    assert main(["experiments", "--table", "paper000-I", "--set", "no_such_field=1"]) == 2
    assert "--set: expected FIELD=VALUE" in capsys.readouterr().err
    # a table on data without the split it reports: refused before any row trains (the subset has no test)
    monkeypatch.delenv("QVAE_DATA", raising=False)
    assert main(["experiments", "--table", "paper000-I", "--epochs", "1", "--seeds", "1", *SMALL_FLAGS]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "split: " in err and "has no test split (it has valid)" in err
    assert list(tmp_path.iterdir()) == []


def test_flags_after_a_preset_override_it(tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["--epochs", "1", "--train-size", "200", "--valid-size", "20", "--encoder-hidden", "16",
             "--decoder-hidden", "16", "--negative-samples", "20", "--sweeps", "2", "--log-z-population", "100",
             "--final-importance-samples", "2", "--output", str(out), "--no-progress"]
    assert main(["train", "--preset", "paper000-I-rbm32x32", *flags]) == 0
    assert "preset paper000-I-rbm32x32: paper 000, Table I, row DVAE RBM 32x32" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert (config["encoder_hidden"], config["epochs"], config["sweeps"]) == ([16], 1, 2)  # the flags
    assert (config["groups"], config["beta_end"], config["lr"], config["latent"]) == (8, 10.0, 1e-3, "32x32")  # preset


def test_experiments_run_every_row_and_seed_resume_and_report_mean_and_stderr(tmp_path, monkeypatch):
    budget = Budget(epochs=1, seeds=2, overrides=SMALL, importance_samples=5, log_z_population=100,
                    data=with_test_split(tmp_path))
    rows = ["paper000-I-rbm32x32"]
    text = run_table("paper000-I", budget, output=tmp_path, rows=rows, log=lambda line: None)
    runs = [json.loads((tmp_path / "paper000-I" / rows[0] / f"seed-{s}" / "results.json").read_text())
            for s in range(2)]
    assert [r["seed"] for r in runs] == [0, 1] and all(r["epoch"] == 1 for r in runs)
    assert runs[0]["metrics"]["elbo"] != runs[1]["metrics"]["elbo"]  # two seeds, two runs
    ll = np.array([r["metrics"]["ll"] for r in runs])
    row = next(line for line in text.splitlines() if line.startswith(f"| {rows[0]} |"))
    assert f"| -90.8 ± 0.2 | {ll.mean():.2f} ± {ll.std(ddof=1) / math.sqrt(2):.2f} |" in row  # the paper's, ours
    assert "| 1 (2000) | 2 |" in row
    assert (tmp_path / "paper000-I.md").read_text() == text + "\n"
    assert "K = 5" in text and "40 images" in text

    # longer: both seeds resume from their checkpoints to epoch 2
    budget2 = dataclasses.replace(budget, epochs=2)
    run_table("paper000-I", budget2, output=tmp_path, rows=rows, log=lambda line: None)
    for s in range(2):
        directory = tmp_path / "paper000-I" / rows[0] / f"seed-{s}"
        assert json.loads((directory / "results.json").read_text())["epoch"] == 2
        assert len((directory / "metrics.jsonl").read_text().splitlines()) == 2
    # finished runs are not trained again; an evaluation lost is redone from the checkpoint, identically
    finished = (tmp_path / "paper000-I.md").read_text()
    lost = tmp_path / "paper000-I" / rows[0] / "seed-1" / "results.json"
    before = json.loads(lost.read_text())
    lost.unlink()
    monkeypatch.setattr(experiments.Trainer, "train_epoch", lambda *a, **k: pytest.fail("trained again"))
    again = run_table("paper000-I", budget2, output=tmp_path, rows=rows, log=lambda line: None)
    assert json.loads(lost.read_text()) == before and again + "\n" == finished
    # a run with other settings is not passed off as the one asked for
    with pytest.raises(ValueError, match="holds another run"):
        run_table("paper000-I", dataclasses.replace(budget2, overrides={**SMALL, "sweeps": 3}), output=tmp_path,
                  rows=rows)


def test_experiments_command_writes_a_qvae_table(tmp_path, capsys):
    flags = ["experiments", "--table", "paper000-II", "--rows", "paper000-II-qbm16x16-gamma1", "--seeds", "1",
             "--epochs", "1", "--output", str(tmp_path), *SMALL_FLAGS, "--log-z-population", "100",
             "--log-diag-population", "50"]
    assert main(flags) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| paper000-II-qbm16x16-gamma1 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4] == "-110.5" and cells[6] == "-120.6"  # the paper's ELBO and Q-ELBO
    assert cells[5].endswith("(1 seed)") and cells[7].endswith("(1 seed)")
    results = json.loads((tmp_path / "paper000-II" / "paper000-II-qbm16x16-gamma1" / "seed-0" / "results.json")
                         .read_text())
    assert results["metrics"]["q_elbo"] < results["metrics"]["elbo"]  # the Q-ELBO is the looser bound
    assert "the valid split," in out  # Table II is on the validation set


def test_the_results_table_compares_priors_on_the_test_split_with_three_seeds(tmp_path):
    assert (TABLES["results"].split, TABLES["results"].seeds) == ("test", 3)
    budget = Budget(epochs=1, seeds=2, overrides=SMALL, importance_samples=3, log_z_population=100,
                    log_diag_population=50, data=with_test_split(tmp_path))
    text = run_table("results", budget, output=tmp_path, rows=["rbm-16x16", "qbm-16x16-gamma1"],
                     log=lambda line: None)
    rbm, qbm = (next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
                for name in ("rbm-16x16", "qbm-16x16-gamma1"))
    assert rbm.count(" ± ") == 3 and rbm.count("| — |") == 3  # ELBO, Q-ELBO, LL; no paper numbers
    assert qbm.count(" ± ") == 2 and qbm.endswith("| — | — |")  # no LL for a QBM prior


def test_the_relaxations_table_compares_objectives_at_equal_budget():
    from qvae_core.dvae.presets import ROWS

    table = TABLES["relaxations"]
    assert (table.split, table.metrics) == ("test", ("elbo", "ll")) and len(table.rows) == 6
    configs = {name: TrainConfig(**ROWS[name].values) for name in table.rows}
    assert {c.relaxation for c in configs.values()} == {"none", "gaussian-integral", "mean-field"}
    assert {c.latent for c in configs.values()} == {"32x32", "64x64"}
    budget = {"epochs", "batch_size", "lr", "lr_decay", "groups", "encoder_hidden", "decoder_hidden",
              "negative_samples", "sweeps", "kd_schedule", "final_importance_samples"}
    for field_name in budget:
        assert len({json.dumps(getattr(c, field_name)) for c in configs.values()}) == 1, field_name
    assert configs["rbm-32x32-mean-field-power"].smoothing == "power"
