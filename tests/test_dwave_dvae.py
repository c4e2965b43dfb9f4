"""A short DVAE training whose negative phase comes from the QPU sampler through the real
dwave-cloud-client and the local SAPI server (127.0.0.1)."""

import json

import numpy as np
import pytest

pytest.importorskip("dwave.cloud")
pytest.importorskip("dwave_networkx")
torch = pytest.importorskip("torch")
import qvae_core as q  # noqa: E402
from qvae_core import dwave as qd  # noqa: E402
from qvae_core.dvae import TrainConfig, Trainer  # noqa: E402

BETA = 2.0


class _RecordingTracker(qd.PseudoLikelihood):
    """PseudoLikelihood whose answer is moved by 0.01 per batch, so that each value it returns is
    new and the test can see which one the next batch ran at; keeps (beta_eff in, beta_eff out)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __call__(self, model, samples, beta_eff):
        updated = super().__call__(model, samples, beta_eff) + 0.01
        self.calls.append((beta_eff, updated))
        return updated


def test_short_dvae_training_with_the_qpu_sampler(tmp_path):
    # A complete C(1,2) solver: the DVAE's chimera 1,2 prior is exactly its working graph.
    with qd.SAPIServer([qd.qpu_solver("chimera", (1, 2))], beta=BETA, sweeps=100, seed=1) as server:
        config = TrainConfig(prior="chimera", latent="1,2", groups=2, encoder_hidden=[32], decoder_hidden=[32],
                             epochs=2, batch_size=50, train_size=100, valid_size=50, log_z_population=200,
                             final_importance_samples=1, output=str(tmp_path), seed=3)
        trainer = Trainer(config)
        with qd.QPUSampler(client_options=server.client_options(), num_samples=500, beta_eff=BETA,
                           beta_update=(tracker := _RecordingTracker()), timeout=30.0, retry_backoff=0.01, seed=2) as sampler:
            assert trainer.model.prior.numpy_model().num_units == sampler.topology.num_units
            trainer.sampler = sampler  # the negative phase: sample(model) -> (500, 16) uint8
            history = trainer.fit(progress=False, log=lambda line: None)
            problems = server.problems()
    assert [m["epoch"] for m in history] == [1, 2]
    assert all(np.isfinite(m["train_objective"]) and np.isfinite(m["val_elbo"]) for m in history)
    assert len(problems) == 2 * 2 * 5  # epochs x steps x spin-reversal transforms
    assert {p["params"]["num_reads"] for p in problems} == {100}
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["sampler"] == {"beta_eff": sampler.beta_eff}
    # Wiring: the tracker saw every batch, each batch ran at the beta_eff the previous one returned,
    # and the checkpoint holds the last (the tracking itself is tested against the server's beta in
    # test_dwave_sampler).
    assert len(tracker.calls) == 2 * 2 and tracker.calls[0][0] == BETA
    for (_, after), following in zip(tracker.calls, tracker.calls[1:] + [(sampler.beta_eff,)]):
        assert following[0] == after
    assert saved["sampler"]["beta_eff"] == tracker.calls[-1][1] != BETA
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])["epoch"] == 2


def test_qvae_core_train_with_the_qpu_sampler(tmp_path, monkeypatch):
    """`qvae-core train --sampler qpu`, the client configured from DWAVE_API_* as a user would."""
    from qvae_core.cli import main

    with qd.SAPIServer([qd.qpu_solver("chimera", (1, 2))], beta=BETA, sweeps=100, seed=4) as server:
        monkeypatch.setenv("DWAVE_API_ENDPOINT", server.endpoint)
        monkeypatch.setenv("DWAVE_API_TOKEN", server.token or "local-token")
        for var in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):  # no user config file, no shared cache
            monkeypatch.setenv(var, str(tmp_path / "home"))
        args = ["train", "--prior", "chimera", "--latent", "1,2", "--groups", "2", "--encoder-hidden", "32",
                "--decoder-hidden", "32", "--epochs", "1", "--batch-size", "50", "--train-size", "100",
                "--valid-size", "50", "--log-z-population", "200", "--final-importance-samples", "1",
                "--sampler", "qpu", "--negative-samples", "400", "--beta-eff", str(BETA),
                "--qpu-solver", '{"topology__type": "chimera"}', "--qpu-schedule", "pause-and-quench",
                "--output", str(tmp_path / "run"), "--no-progress"]
        assert main(args) == 0
        problems = server.problems()
    assert len(problems) == 2 * 5  # steps x spin-reversal transforms
    assert {p["params"]["num_reads"] for p in problems} == {80}
    assert all("anneal_schedule" in p["params"] for p in problems)
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    # --beta-eff reaches the sampler and its checkpoint; the one batch of an untrained (near-zero)
    # prior is uninformative, so the pseudo-likelihood tracker keeps the value.
    assert saved["sampler"]["beta_eff"] == BETA


def test_qpu_options_are_validated():
    for bad in ({"beta_eff": 0.0}, {"beta_tracking": "magic"}, {"qpu_schedule": "reverse"}, {"qpu_solver": "{oops"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig(prior="chimera", latent="1,2", sampler="qpu", **bad)


def test_train_on_a_chip_with_inactive_qubits(tmp_path, monkeypatch):
    """Real chips have inactive qubits: save the working graph, train a prior on exactly it."""
    from qvae_core.cli import main

    solver = qd.qpu_solver("chimera", (1, 2), inactive_qubits=[3, 12])
    with qd.SAPIServer([solver], beta=BETA, sweeps=100, seed=5) as server:
        monkeypatch.setenv("DWAVE_API_ENDPOINT", server.endpoint)
        monkeypatch.setenv("DWAVE_API_TOKEN", server.token or "local-token")
        for var in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
            monkeypatch.setenv(var, str(tmp_path / "home"))
        graph = tmp_path / "chip.npz"
        assert main(["working-graph", str(graph)]) == 0
        topology = q.graphs.load(graph)
        assert topology.num_units == 14 and 3 not in topology.nodes and 12 not in topology.nodes
        args = ["train", "--prior", "graph", "--latent", str(graph), "--groups", "2", "--encoder-hidden", "32",
                "--decoder-hidden", "32", "--epochs", "1", "--batch-size", "50", "--train-size", "100",
                "--valid-size", "50", "--log-z-population", "200", "--final-importance-samples", "1",
                "--sampler", "qpu", "--negative-samples", "200", "--beta-eff", str(BETA),
                "--output", str(tmp_path / "run"), "--no-progress"]
        assert main(args) == 0
        assert len(server.problems()) == 2 * 5
