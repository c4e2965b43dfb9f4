"""Training on the packaged subset: the validation ELBO improves, checkpoints resume to exactly the
uninterrupted run, configs are checked, and the train / evaluate / sample commands work."""

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import K_SIGMA, all_states  # noqa: E402
from qvae_core.cli import main  # noqa: E402
from qvae_core.dvae.config import TrainConfig  # noqa: E402
from qvae_core.dvae.train import _CHECKPOINT_KEYS, _DEVICE_KEY, Trainer, load_checkpoint  # noqa: E402

TINY = {  # a few seconds per epoch on two cores
    "latent": "8x8", "groups": 2, "encoder_hidden": [64], "decoder_hidden": [64], "batch_size": 20,
    "train_size": 600, "valid_size": 300, "negative_samples": 200, "sweeps": 10, "log_z_population": 500,
    "beta_start": 1.0, "beta_end": 4.0, "lr": 3e-3,
}
TIMING = ("seconds", "step_seconds", "sampling_share", "overlap_share")


def test_a_few_hundred_steps_improve_the_validation_elbo(tmp_path):
    trainer = Trainer(TrainConfig(**{**TINY, "train_size": 0, "epochs": 3, "output": str(tmp_path)}))
    before = trainer.validate()
    annealed, log_partition = [], trainer.model.prior.log_partition
    trainer.model.prior.log_partition = lambda **kw: annealed.append(kw) or log_partition(**kw)
    history = trainer.fit(progress=False, log=lambda line: None)
    assert len(annealed) == 3  # a new log Z after each epoch's steps
    after = trainer.validate()
    assert len(annealed) == 3  # no step since the last epoch's validation: its log Z is reused
    assert trainer.step == 300
    gain = after["elbo"] - before["elbo"]
    assert gain > K_SIGMA * math.hypot(before["elbo_stderr"], after["elbo_stderr"]), (before["elbo"], after["elbo"])
    assert history[-1]["val_elbo"] == after["elbo"]  # the same validation: same log Z and seeds
    assert after["active_units"] > 0


class _Interrupt(Exception):
    pass


def _stop_after_first_epoch(line):
    raise _Interrupt(line)


@pytest.mark.parametrize("prior, gamma, sampler, kl_balance", [
    ("rbm", 0.0, "pcd", 0.0), ("rbm", 0.5, "pcd", 0.0), ("rbm", 0.0, "pa", 0.0), ("bernoulli", 0.0, "pcd", 0.0),
    ("rbm", 0.0, "pcd", 0.1),  # KL balancing reads the last negative phase's marginals, which the checkpoint keeps
])
def test_resumed_run_equals_the_uninterrupted_run(tmp_path, prior, gamma, sampler, kl_balance):
    latent = "16" if prior == "bernoulli" else "8x8"
    config = {**TINY, "prior": prior, "latent": latent, "gamma": gamma, "sampler": sampler, "epochs": 2,
              "train_size": 200, "valid_size": 100, "kl_warmup_epochs": 1.5, "kd_schedule": [[1, 2], [2, 1]],
              "kd_epochs": 1, "kl_balance": kl_balance}
    # No checkpoint until the end: saving one must not disturb a run (the chains carry on whole).
    straight = Trainer(TrainConfig(**config, checkpoint_every=10, output=str(tmp_path / "straight")))
    straight.fit(progress=False, log=lambda line: None)

    interrupted = Trainer(TrainConfig(**config, output=str(tmp_path / "resumed")))
    with pytest.raises(_Interrupt):
        interrupted.fit(progress=False, log=_stop_after_first_epoch)
    resumed = Trainer.resume(tmp_path / "resumed")
    assert resumed.epoch == 1 and resumed.step == interrupted.step
    resumed.fit(progress=False, log=lambda line: None)

    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    lines = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
             for run in ("straight", "resumed")]
    for metrics in lines:
        for m in metrics:
            for key in TIMING:
                m.pop(key)
    assert lines[0] == lines[1] and len(lines[0]) == 2
    assert [(m["K"], m["D"]) for m in lines[0]] == [(1, 2), (2, 1)]
    assert [m["kl_weight"] for m in lines[0]] == pytest.approx([0.6, 1.0])  # warm-up at the last step


def test_config_errors_name_the_field(tmp_path):
    cases = [
        ({"prior": "ising"}, "prior"), ({"latent": "8"}, "latent"),
        ({"smoothing": "power", "beta_start": 1.0}, "beta"), ({"groups": 0}, "groups"),
        ({"lr_decay": 1.5}, "lr_decay"), ({"kd_schedule": [[1, 0]]}, "kd_schedule"),
        ({"prior": "bernoulli", "latent": "8", "gamma": 1.0}, "gamma"), ({"encoder_hidden": [0]}, "encoder_hidden"),
    ]
    for bad, field in cases:
        with pytest.raises(ValueError, match=field):
            TrainConfig(**bad)
    more = [
        ({"prior": ["rbm"]}, "prior"), ({"output": None}, "output"), ({"qpu_solver": None}, "qpu_solver"),
        ({"data": 5}, "data"), ({"seed": 2**64}, "seed"), ({"gamma": 501.0}, "gamma"),
        ({"sampler": "pa", "negative_samples": 10}, "negative_samples"), ({"log_z_population": 10}, "log_z_population"),
        ({"sampler": "qpu", "prior": "bernoulli", "latent": "8"}, "sampler"),  # no QPU for a factorial prior
        ({"sampler": "qpu", "gamma": 1.0}, "sampler"), ({"chain_strength": 0.0}, "chain_strength"),
        ({"smoothing": "overlap-exp", "beta_end": 100.0}, "beta"),
    ]
    for bad, field in more:
        with pytest.raises(ValueError, match=field):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="unknown keys"):
        TrainConfig.from_dict({"epoch": 3})
    # numpy numbers, paths and tuples are taken as the JSON types a config holds
    plain = TrainConfig(epochs=np.int64(3), lr=np.float32(0.5), output=tmp_path, encoder_hidden=(16, np.int64(8)),
                        kd_schedule=((1, 2),))
    assert json.loads(json.dumps(plain.to_dict())) == plain.to_dict()
    assert (plain.epochs, plain.output, plain.encoder_hidden, plain.kd_schedule) == (3, str(tmp_path), [16, 8], [[1, 2]])
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(TrainConfig(batch_size=5000))
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        Trainer.resume(tmp_path)


def test_train_evaluate_sample_commands(tmp_path, capsys):
    out = tmp_path / "run"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**TINY, "epochs": 1}))
    assert main(["train", "--config", str(config), "--no-progress", "--output", str(out),
                 "--final-importance-samples", "20", "--encoder-hidden", "32,32"]) == 0
    printed = capsys.readouterr().out
    assert "validation ELBO" in printed and "validation LL" in printed and "K = 20" in printed
    written = ("checkpoint.pt", "config.json", "metrics.jsonl", "evaluation.json", "samples.png",
               "reconstructions.png")
    for name in written:
        assert (out / name).is_file(), name
    assert json.loads((out / "config.json").read_text())["encoder_hidden"] == [32, 32]
    # the final evaluation anneals log Z as the run's validation does (its population and seed)
    last_epoch = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert json.loads((out / "evaluation.json").read_text())["log_z"] == last_epoch["log_z"]

    assert main(["train", "--config", str(config), "--no-progress", "--output", str(out)]) == 2  # holds a run
    assert "--overwrite" in capsys.readouterr().err
    assert main(["train", "--resume", "--output", str(out), "--latent", "8x8"]) == 2
    assert "latent: fixed by the saved run" in capsys.readouterr().err

    copy = tmp_path / "copy"  # a copied run resumes in the copy, and the original stays as it was
    shutil.copytree(out, copy)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["train", "--resume", "--output", str(copy), "--epochs", "2", "--no-progress",
                 "--final-importance-samples", "5"]) == 0
    assert len((copy / "metrics.jsonl").read_text().splitlines()) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    out = copy

    assert main(["evaluate", str(out), "--num-images", "40", "--importance-samples", "10",
                 "--output", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["num_images"] == 40 and metrics["importance_samples"] == 10
    assert metrics["ll"] >= metrics["elbo"] - K_SIGMA * metrics["elbo_stderr"]
    assert 0 <= metrics["active_units"] <= 16

    for flags in (["--num-images", "-10"], ["--importance-samples", "0"], ["--log-z-population", "5"]):
        with pytest.raises(SystemExit):  # argparse: a usage error, status 2
            main(["evaluate", str(out), *flags])
    for flags in (["--columns", "0"], ["--num-samples", "-1"]):
        with pytest.raises(SystemExit):
            main(["sample", str(out), *flags])
    idx = tmp_path / "train-images-idx3-ubyte"  # 2x2 images, not the run's 28x28
    idx.write_bytes(np.array([0x803, 10_001, 2, 2], ">u4").tobytes() + bytes(10_001 * 4))
    assert main(["evaluate", str(out), "--data", str(idx)]) == 2
    assert "has images of shape (2, 2); the run was trained on (28, 28)" in capsys.readouterr().err
    broken = torch.load(out / "checkpoint.pt", weights_only=True)
    del broken["model"]
    torch.save(broken, tmp_path / "broken.pt")
    assert main(["evaluate", str(tmp_path / "broken.pt")]) == 2
    assert "broken.pt lacks model" in capsys.readouterr().err

    assert main(["sample", str(out / "checkpoint.pt"), "--num-samples", "12", "--columns", "4",
                 "--output", str(tmp_path / "s.png")]) == 0
    from PIL import Image

    with Image.open(tmp_path / "s.png") as image:
        assert image.size == (2 * (4 * 29 - 1), 2 * (3 * 29 - 1))  # 4 x 3 tiles of 28 px, 1 px gaps, scale 2

    config_, model, state = load_checkpoint(out)
    assert state["epoch"] == 2 and not model.training and config_.epochs == 2


def test_a_new_run_replaces_an_old_one_only_when_asked(tmp_path):
    config = TrainConfig(**{**TINY, "latent": "4x4", "epochs": 1, "train_size": 100, "valid_size": 50,
                            "output": str(tmp_path)})
    Trainer(config).fit(progress=False, log=lambda line: None)
    other = TrainConfig.from_dict({**config.to_dict(), "seed": 1})
    with pytest.raises(ValueError, match="holds a run"):  # nothing of the first run is touched
        Trainer(other).fit(progress=False, log=lambda line: None)
    assert load_checkpoint(tmp_path)[0].seed == 0
    Trainer(other, overwrite=True).fit(progress=False, log=lambda line: None)
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1  # no lines of the old run
    assert load_checkpoint(tmp_path)[0].seed == 1


def test_commands_register_without_torch():
    code = "import sys, qvae_core.cli, qvae_core.dvae.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_checkpoint_errors(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="checkpoint.pt could not be read"):
        load_checkpoint(bad)
    torch.save({"version": 99}, bad)
    with pytest.raises(ValueError, match="not a qvae-core DVAE checkpoint"):
        load_checkpoint(tmp_path)


class _ExactSampler:
    """A stand-in for an external (e.g. QPU) sampler: exact draws by enumeration, counted."""

    def __init__(self):
        self.calls = 0

    def sample(self, model):
        import qvae_core as q

        n = model.num_units
        states = all_states(n)
        p = np.exp(q.exact.log_prob(model, states))
        self.calls += 1
        return states[np.random.default_rng(self.calls).choice(len(states), 500, p=p / p.sum())]

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = state["calls"]


def test_an_external_sampler_plugs_in(tmp_path):
    sampler = _ExactSampler()
    config = TrainConfig(**{**TINY, "latent": "4x4", "epochs": 1, "train_size": 100, "output": str(tmp_path)})
    trainer = Trainer(config, sampler=sampler)
    trainer.fit(progress=False, log=lambda line: None)
    assert sampler.calls == trainer.step == 5
    # what a load requires, what a save writes (the device key is optional: checkpoints before it were all CPU)
    assert set(trainer.state_dict()) == {"version", *_CHECKPOINT_KEYS, _DEVICE_KEY}
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["sampler"] == {"calls": 5}


def test_a_sampler_is_checked_when_given_and_its_states_at_every_step(tmp_path):
    config = TrainConfig(**{**TINY, "latent": "4x4", "epochs": 1, "train_size": 100, "output": str(tmp_path)})
    with pytest.raises(ValueError, match="sampler: lacks state_dict, load_state_dict"):
        Trainer(config, sampler=type("OnlySample", (), {"sample": lambda self, model: None})())

    class Returns(_ExactSampler):
        def __init__(self, states):
            super().__init__()
            self.states = states

        def sample(self, model):
            return self.states

    for states in (np.zeros((5, 7), np.uint8), np.full((5, 8), 0.5), np.zeros((0, 8)), np.zeros((2, 2, 8)), None):
        trainer = Trainer(config, sampler=Returns(states), overwrite=True)
        with pytest.raises(ValueError, match=r"sampler.sample\(\)"):  # not a torch error, nor training on 0.5s
            trainer.fit(progress=False, log=lambda line: None)


def test_package_exports_are_the_documented_objects():
    import importlib

    import qvae_core.dvae as dvae

    importlib.import_module("qvae_core.dvae.train")  # imports every submodule

    for name in dvae.__all__:
        assert not isinstance(getattr(dvae, name), type(dvae)), f"{name} is a module"
    assert dvae.evaluate.__name__ == "evaluate" and dvae.Trainer is Trainer
