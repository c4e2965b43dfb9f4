"""Devices and the overlapped negative phase of qvae_core.dvae: device names are checked, a run with
its sampling in a background thread equals the run without (same chains, same parameters), and
checkpoints cross devices. The CUDA tests run only where a CUDA device is present."""

import copy
import json
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from qvae_core.cli import main  # noqa: E402
from qvae_core.dvae.config import TrainConfig  # noqa: E402
from qvae_core.dvae.device import Placement, resolve_device  # noqa: E402
from qvae_core.dvae.negative_phase import OverlapSchedule  # noqa: E402
from qvae_core.dvae.samplers import PersistentChains  # noqa: E402
from qvae_core.dvae.train import Trainer, load_checkpoint  # noqa: E402

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
SMALL = {"latent": "6x6", "groups": 2, "encoder_hidden": [32], "decoder_hidden": [32], "batch_size": 20,
         "train_size": 100, "valid_size": 40, "negative_samples": 100, "sweeps": 5, "log_z_population": 200,
         "epochs": 1, "final_importance_samples": 1}


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cpu:0", "auto:1", "", " cpu", "CUDA", None, 0])
def test_unknown_device_names_are_refused_naming_device(name):
    with pytest.raises(ValueError, match="^device: "):
        resolve_device(name)
    with pytest.raises(ValueError, match="^device: "):
        TrainConfig(device=name)


def test_auto_and_cpu_resolve_here():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_a_cuda_device_the_machine_lacks_is_refused(tmp_path):
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last (cuda:0 on a machine without CUDA)
    with pytest.raises(ValueError, match=f"^device: '{missing}' requested, but this machine has"):
        resolve_device(missing)
    with pytest.raises(ValueError, match="^device: "):
        Trainer(TrainConfig(**SMALL, device=missing, output=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


def test_the_cli_refuses_a_bad_device_in_one_line_and_writes_nothing(tmp_path, capsys):
    missing = f"cuda:{torch.cuda.device_count()}"
    for device in ("tpu", missing):
        assert main(["train", "--device", device, "--output", str(tmp_path / "run"), "--epochs", "1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "device" in err[0], err
    assert not (tmp_path / "run").exists()


def _train(tmp_path, name, **fields):
    trainer = Trainer(TrainConfig(**{**SMALL, **fields}, output=str(tmp_path / name)))
    trainer.fit(progress=False, log=lambda line: None)
    return trainer


def _assert_same_run(a, b):
    for name, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[name]), name
    for (key, x), (_, y) in zip(a.sampler.state_dict().items(), b.sampler.state_dict().items()):
        if isinstance(x, dict):
            assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), key
        else:
            assert x == y, key


@pytest.mark.parametrize("gamma, sampler, minimum", [(0.0, "pcd", 2), (1.0, "pcd", 2), (0.0, "pa", 100),
                                                     (1.0, "pa", 100)])
def test_overlap_is_bit_identical_to_sampling_after_the_networks(tmp_path, gamma, sampler, minimum):
    # PCD Gibbs chains, CT-QMC worldlines (QBM), classical and quantum population annealing
    fields = {"gamma": gamma, "sampler": sampler, "negative_samples": max(minimum, 100), "epochs": 2}
    overlapped = _train(tmp_path, "overlap", overlap="always", **fields)
    sequential = _train(tmp_path, "sequential", overlap="never", **fields)
    assert overlapped.negative_phase.overlapped_steps == 10 and sequential.negative_phase.overlapped_steps == 0
    assert overlapped.step == sequential.step == 10
    _assert_same_run(overlapped, sequential)


def test_auto_overlap_switching_ways_mid_run_is_bit_identical(tmp_path):
    # trials of one step each way and a period of one step: the way changes every step or two
    fields = {"gamma": 1.0, "epochs": 2}
    switching = Trainer(TrainConfig(**{**SMALL, **fields}, overlap="auto", output=str(tmp_path / "auto")))
    switching.negative_phase.schedule = OverlapSchedule("auto", trials=1, period=1)
    switching.fit(progress=False, log=lambda line: None)
    assert 0 < switching.negative_phase.overlapped_steps < 10
    _assert_same_run(switching, _train(tmp_path, "sequential", overlap="never", **fields))


def test_the_auto_schedule_keeps_the_faster_way_and_tries_again_after_its_period():
    schedule = OverlapSchedule("auto", trials=3, period=4)
    cost = {True: 1.0, False: 2.0}  # overlapping is the faster way here

    def steps(n):
        ways = []
        for _ in range(n):
            way = schedule.overlap_next()
            schedule.record(way, cost[way])
            ways.append(way)
        return ways

    assert steps(6) == [True, False] * 3  # the trial: each way in turn, overlapped first
    assert steps(4) == [True] * 4  # the period: the faster way
    cost = {True: 3.0, False: 2.0}  # the machine got busier: now sequential wins
    assert steps(6) == [True, False] * 3
    assert steps(4) == [False] * 4
    assert schedule.chosen is False


def test_the_auto_schedule_decides_by_the_median_not_a_slow_first_step():
    schedule = OverlapSchedule("auto", trials=3, period=10)
    times = iter([9.0, 2.0, 1.0, 2.0, 1.0, 2.0])  # the first (overlapped) step pays the warm-up
    for _ in range(6):
        way = schedule.overlap_next()
        schedule.record(way, next(times))
    assert schedule.overlap_next() is True


@pytest.mark.parametrize("mode, overlapped", [("always", True), ("never", False)])
def test_fixed_overlap_modes_never_change(mode, overlapped):
    schedule = OverlapSchedule(mode, trials=1, period=1)
    for seconds in (1.0, 5.0, 0.1, 9.0):
        assert schedule.overlap_next() is overlapped
        schedule.record(overlapped, seconds)


@pytest.mark.parametrize("mode", ["sometimes", "", None, 1])
def test_an_unknown_overlap_mode_is_refused_naming_overlap(mode):
    with pytest.raises(ValueError, match="^overlap: "):
        TrainConfig(overlap=mode)
    with pytest.raises(ValueError, match="^overlap: "):
        OverlapSchedule(mode)


def test_configs_written_before_auto_read_true_as_auto_and_false_as_never():
    assert TrainConfig(overlap=True).overlap == "auto"
    assert TrainConfig(overlap=False).overlap == "never"
    assert TrainConfig().overlap == "auto"


def test_the_cli_takes_overlap_and_no_overlap_and_refuses_a_bad_mode(tmp_path, capsys):
    assert main(["train", "--overlap", "sometimes", "--output", str(tmp_path / "bad"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "overlap" in err[0], err
    assert not (tmp_path / "bad").exists()
    flags = ["--latent", "6x6", "--groups", "2", "--train-size", "100", "--valid-size", "40", "--batch-size", "20",
             "--negative-samples", "100", "--sweeps", "5", "--log-z-population", "200", "--epochs", "1",
             "--final-importance-samples", "1", "--no-progress"]
    for switch, mode in ((["--no-overlap"], "never"), (["--overlap", "always"], "always")):
        output = tmp_path / mode
        assert main(["train", *flags, *switch, "--output", str(output)]) == 0
        assert TrainConfig.from_dict(json.loads((output / "config.json").read_text())).overlap == mode


class _ThreadRecorder(PersistentChains):
    """Gibbs chains that note the thread of each call."""

    def __init__(self):
        super().__init__(100, 5, seed=1)
        self.threads = []

    def sample(self, model):
        self.threads.append(threading.current_thread())
        return super().sample(model)


def test_sampling_runs_in_one_background_thread_and_not_with_overlap_off(tmp_path):
    for overlap in ("always", "never"):
        trainer = Trainer(TrainConfig(**SMALL, overlap=overlap, output=str(tmp_path / str(overlap))))
        trainer.sampler = recorder = _ThreadRecorder()
        trainer.fit(progress=False, log=lambda line: None)
        threads = set(recorder.threads)
        assert len(recorder.threads) == 5 and len(threads) == 1
        assert (threads.pop() is threading.main_thread()) is (overlap == "never")


def test_overlap_with_the_qpu_sampler_is_bit_identical(tmp_path):
    qd = pytest.importorskip("qvae_core.dwave")
    pytest.importorskip("dwave_networkx")
    runs = []
    for overlap in ("always", "never"):  # each against a fresh server of the same seed
        with qd.SAPIServer([qd.qpu_solver("chimera", (1, 2))], beta=2.0, sweeps=50, seed=1) as server:
            trainer = Trainer(TrainConfig(**{**SMALL, "prior": "chimera", "latent": "1,2"}, overlap=overlap,
                                          output=str(tmp_path / str(overlap))))
            with qd.QPUSampler(client_options=server.client_options(), num_samples=200, beta_eff=2.0,
                               timeout=30.0, retry_backoff=0.01, seed=2) as sampler:
                trainer.sampler = sampler
                trainer.fit(progress=False, log=lambda line: None)
                runs.append(trainer)
    _assert_same_run(*runs)


class _Failing:
    def __init__(self):
        self.finished = threading.Event()

    def sample(self, model):
        self.finished.wait(5)
        raise RuntimeError("sampler broke")

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def test_a_failing_network_step_waits_for_the_worker_and_keeps_its_own_error(tmp_path):
    trainer = Trainer(TrainConfig(**SMALL, output=str(tmp_path)))
    trainer.sampler = failing = _Failing()

    def broken(*args):
        failing.finished.set()
        raise FloatingPointError("networks broke")

    trainer._positive_phase = broken
    with pytest.raises(FloatingPointError, match="networks broke"):
        trainer.train_epoch()
    assert trainer.negative_phase._pending is None  # the worker is done: the sampler is the caller's again


def test_a_sampler_error_reaches_the_caller(tmp_path):
    trainer = Trainer(TrainConfig(**SMALL, output=str(tmp_path)))
    trainer.sampler = failing = _Failing()
    failing.finished.set()
    with pytest.raises(RuntimeError, match="sampler broke"):
        trainer.train_epoch()


def test_a_checkpoint_from_another_kind_of_device_reseeds_its_generator(tmp_path):
    trainer = _train(tmp_path, "run")
    state = trainer.state_dict()
    placement = Placement("cpu")
    restored = torch.Generator()
    assert placement.load_generator_state(restored, state["generator"], "cpu", 7)
    assert torch.equal(restored.get_state(), trainer.generator.get_state())
    elsewhere = torch.Generator()
    assert not placement.load_generator_state(elsewhere, torch.zeros(16, dtype=torch.uint8), "cuda", 7)
    assert torch.equal(elsewhere.get_state(), torch.Generator().manual_seed(7).get_state())
    # a resumed trainer given such a state still runs, deterministically
    state["device"], state["generator"] = "cuda", torch.zeros(16, dtype=torch.uint8)
    again = [Trainer(TrainConfig(**SMALL, output=str(tmp_path / f"again{i}"))) for i in range(2)]
    for t in again:
        t.load_state_dict(copy.deepcopy(state))  # each its own optimizer tensors
        t.train_epoch()
    assert all(torch.equal(a, b) for a, b in zip(again[0].model.parameters(), again[1].model.parameters()))


@CUDA
def test_cuda_training_overlap_is_identical_and_checkpoints_cross_devices(tmp_path):
    overlapped = _train(tmp_path, "overlap", device="cuda", overlap="always", epochs=2)
    sequential = _train(tmp_path, "sequential", device="cuda", overlap="never", epochs=2)
    assert next(overlapped.model.parameters()).is_cuda
    _assert_same_run(overlapped, sequential)
    # resumed on the same device it continues exactly as the uninterrupted run
    straight = _train(tmp_path, "straight", device="cuda", epochs=3)
    resumed = Trainer.resume(tmp_path / "overlap", epochs=3)
    resumed.fit(progress=False, log=lambda line: None)
    _assert_same_run(straight, resumed)
    # a CUDA run evaluates and resumes on the CPU
    _, model, _ = load_checkpoint(tmp_path / "overlap", "cpu")
    assert not next(model.parameters()).is_cuda
    on_cpu = Trainer.resume(tmp_path / "sequential", epochs=3, device="cpu")
    on_cpu.fit(progress=False, log=lambda line: None)
    assert all(np.isfinite(p.detach().numpy()).all() for p in on_cpu.model.parameters())
    assert main(["evaluate", str(tmp_path / "sequential"), "--device", "cpu", "--importance-samples", "2"]) == 0
    assert main(["sample", str(tmp_path / "overlap"), "--device", "cuda", "--num-samples", "10"]) == 0
