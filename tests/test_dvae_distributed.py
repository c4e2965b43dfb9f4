"""Data-parallel training under torchrun (gloo on this machine's CPUs): one process equals a plain run
bit for bit, two processes train, checkpoint every rank's chains and resume exactly, a resume with
another number of processes is refused, a rank that fails stops the run promptly, and a rank that
leaves joins its gloo threads before the interpreter ends."""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

torch = pytest.importorskip("torch")

from qvae_core.dvae.distributed import SINGLE, Ranks  # noqa: E402
from qvae_core.dvae.train import Trainer  # noqa: E402

# A constant smoothing schedule (beta_end = beta_start), so that a run of 1 epoch resumed to 2
# follows the same schedule as a run of 2 epochs.
FLAGS = ["--train-size", "200", "--valid-size", "40", "--batch-size", "20", "--latent", "8x8", "--groups", "2",
         "--encoder-hidden", "64", "--decoder-hidden", "64", "--negative-samples", "100", "--sweeps", "5",
         "--log-z-population", "200", "--final-importance-samples", "5", "--beta-end", "1", "--no-progress"]
TIMING = ("seconds", "step_seconds", "sampling_share", "overlap_share")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "QVAE_DIST_TIMEOUT": "60"}


def torchrun(nproc, *args, check=True, timeout=300):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "qvae_core", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def plain(*args):
    done = subprocess.run([sys.executable, "-m", "qvae_core", *args], capture_output=True, text=True, env=ENV,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def checkpoint(run):
    return torch.load(run / "checkpoint.pt", weights_only=True)


def metrics(run):
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_equal(a, b, where="checkpoint"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_equal(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def without_output(state):
    return {**state, "config": {**state["config"], "output": None}}


def test_ranks_share_images_and_batches():
    shares = [Ranks(r, 3).share(7) for r in range(3)]
    assert shares[0][0] == 0 and shares[-1][1] == 7 and all(a[1] == b[0] for a, b in zip(shares, shares[1:]))
    assert sorted(hi - lo for lo, hi in shares) == [2, 2, 3]
    order = torch.arange(12)
    assert [Ranks(r, 2).batch(order, 1, 3).tolist() for r in range(2)] == [[6, 7, 8], [9, 10, 11]]
    assert Ranks(1, 2).num_steps(12, 3) == 2 and SINGLE.generator_seed(5) == 5 != Ranks(1, 2).generator_seed(5)
    # a one-process checkpoint on two ranks, asked for: rank 0 continues, rank 1 starts anew
    state = {"epoch": 1, "sampler": {"chains": None}, "generator": torch.zeros(3)}
    with pytest.warns(RuntimeWarning, match="written by 1 process.*this run has 2: new chains on rank 1"):
        assert Ranks(0, 2).local_checkpoint(state, "c.pt", reseed=True) is state  # (rank 0 warns)
    assert Ranks(1, 2).local_checkpoint(state, "c.pt", reseed=True) == {"epoch": 1, "sampler": None, "generator": None}
    with pytest.raises(ValueError, match=r"c.pt was written by 1 process\(es\); this run has 2: resume it without"):
        Ranks(1, 2).local_checkpoint(state, "c.pt")


def test_one_process_under_torchrun_equals_a_plain_run_bit_for_bit(tmp_path):
    plain("train", *FLAGS, "--epochs", "2", "--output", str(tmp_path / "plain"))
    done = torchrun(1, "train", *FLAGS, "--epochs", "2", "--output", str(tmp_path / "torchrun"))
    assert "processes" not in done.stdout  # one process: the plain run's report
    a, b = checkpoint(tmp_path / "plain"), checkpoint(tmp_path / "torchrun")
    assert "ranks" not in b and "world_size" not in b
    assert_equal(without_output(a), without_output(b))
    assert metrics(tmp_path / "plain") == metrics(tmp_path / "torchrun")
    assert ((tmp_path / "plain" / "evaluation.json").read_text()
            == (tmp_path / "torchrun" / "evaluation.json").read_text())


def test_two_processes_train_and_resume_exactly(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    done = torchrun(2, "train", *FLAGS, "--epochs", "2", "--output", str(straight))
    # rank 0 alone reports: 2 epochs and the final evaluation
    assert "with 2 processes" in done.stdout and done.stdout.count("validation ELBO") == 3
    state = checkpoint(straight)
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    assert state["step"] == 2 * 200 // (2 * 20)  # an epoch: 5 steps of 2 x 20 images
    chains = [r["sampler"]["chains"] for r in state["ranks"]]
    assert not torch.equal(chains[0]["state"], chains[1]["state"])  # each rank has its own chains
    assert_equal(state["ranks"][0]["sampler"], state["sampler"])
    assert not torch.equal(state["ranks"][0]["generator"], state["ranks"][1]["generator"])
    assert len(metrics(straight)) == 2

    torchrun(2, "train", *FLAGS, "--epochs", "1", "--output", str(resumed))
    with pytest.raises(ValueError, match=r"written by 2 process\(es\); this run has 1: .*--nproc_per_node=2"):
        Trainer.resume(resumed, ranks=SINGLE, epochs=2)  # (in this process: no torchrun needed to be refused)
    torchrun(2, "train", "--resume", "--epochs", "2", "--output", str(resumed), "--no-progress")
    a, b = checkpoint(straight), checkpoint(resumed)
    assert_equal({**without_output(a), "config": None}, {**without_output(b), "config": None})
    assert metrics(straight) == metrics(resumed)

    # evaluate spread over 2 ranks (7 images: blocks of 3 and 4) equals one process, number for number
    evaluation = ["evaluate", str(straight), "--num-images", "7", "--importance-samples", "30",
                  "--log-z-population", "200", "--seed", "3", "--no-progress"]
    plain(*evaluation, "--output", str(tmp_path / "one.json"))
    torchrun(2, *evaluation, "--output", str(tmp_path / "two.json"))
    one, two = (json.loads((tmp_path / name).read_text()) for name in ("one.json", "two.json"))
    assert one == two and one["num_images"] == 7
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []

    # another number of processes, asked for: rank 0 continues its chains and generator, rank 1's are dropped
    with pytest.warns(RuntimeWarning, match="this run has 1: the chains of rank 1 are dropped"):
        trainer = Trainer.resume(resumed, ranks=SINGLE, reseed_chains=True, epochs=3)
    assert_equal(trainer.sampler.state_dict(), a["ranks"][0]["sampler"])
    assert torch.equal(trainer.generator.get_state(), a["ranks"][0]["generator"])
    trainer.run_lock.release()


FAILING_RANK = textwrap.dedent("""
    import sys
    from qvae_core.dvae.config import TrainConfig
    from qvae_core.dvae.distributed import Ranks
    from qvae_core.dvae.samplers import PersistentChains
    from qvae_core.dvae.train import Trainer

    ranks = Ranks.from_environment()

    class Failing(PersistentChains):
        def sample(self, model):
            if ranks.rank == 1 and self.calls == 2:
                raise RuntimeError("rank 1 failed on purpose")
            self.calls += 1
            return super().sample(model)

    sampler = Failing(100, 5, seed=ranks.sampler_seed(0))
    sampler.calls = 0
    config = TrainConfig(train_size=2000, valid_size=40, batch_size=20, latent="8x8", groups=2, epochs=1,
                         encoder_hidden=[64], decoder_hidden=[64], log_z_population=200, output=sys.argv[1])
    Trainer(config, sampler=sampler, ranks=ranks).fit(progress=False)
""")


def test_a_failing_rank_stops_the_run_promptly(tmp_path):
    script = tmp_path / "failing.py"
    script.write_text(FAILING_RANK)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(tmp_path / "run")], capture_output=True, text=True, env=ENV, timeout=120)
    elapsed = time.monotonic() - start
    assert done.returncode != 0
    assert "rank 1 failed on purpose" in done.stderr
    assert elapsed < 30, f"the run took {elapsed:.0f} s to stop"  # an epoch would take far longer (50 steps)
    assert not (tmp_path / "run" / "checkpoint.pt").exists() and not (tmp_path / "run" / "checkpoint.tmp").exists()


SYNCED_RANKS = textwrap.dedent("""
    import sys
    from pathlib import Path
    import torch
    import torch.distributed as dist
    from qvae_core.dvae.config import TrainConfig
    from qvae_core.dvae.train import Trainer

    config = TrainConfig(train_size=200, valid_size=40, batch_size=20, latent="8x8", groups=2, epochs=1,
                         encoder_hidden=[64], decoder_hidden=[64], negative_samples=100, sweeps=5,
                         log_z_population=200, output=sys.argv[1])
    trainer = Trainer(config)
    start = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit(progress=False)
    mine = {"params": [p.detach() for p in trainer.model.parameters()],
            "chains": trainer.sampler.state_dict()["chains"]["state"]}
    ranks = [None, None]
    dist.all_gather_object(ranks, mine)
    if dist.get_rank() == 0:
        assert all(torch.equal(a, b) for a, b in zip(ranks[0]["params"], ranks[1]["params"])), "parameters differ"
        assert not all(torch.equal(a, b) for a, b in zip(start, ranks[0]["params"])), "no training"
        assert not torch.equal(ranks[0]["chains"], ranks[1]["chains"]), "ranks share their chains"
        print("synced")

    # leaving joins gloo's threads now: none is left to free a collective's tensors at interpreter exit
    gloo = lambda: sorted(name for name in (t.read_text().strip() for t in Path("/proc/self/task").glob("*/comm"))
                          if "gloo" in name)
    linux = Path("/proc/self/task").is_dir()
    assert gloo() or not linux, "no gloo threads to begin with"
    trainer.close()
    try:
        trainer.train_epoch()
        raise AssertionError("a closed trainer trained")
    except RuntimeError as error:
        assert "the trainer is closed" in str(error), error
    trainer.ranks.leave()
    assert not dist.is_initialized() and gloo() == [], gloo()
    trainer.ranks.leave()  # (twice: nothing more)
    print("left")
""")


def test_the_ranks_keep_one_model_and_their_own_chains_and_leave_cleanly(tmp_path):
    script = tmp_path / "synced.py"
    script.write_text(SYNCED_RANKS)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(tmp_path / "run")], capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0 and "synced" in done.stdout and done.stdout.count("left") == 2, done.stdout + done.stderr
