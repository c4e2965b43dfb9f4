"""QAHM training through the local SAPI server with the real dwave-cloud-client on a Chimera solver:
the deepest layer's prior embedded in the solver's working graph, sampled on the "QPU"."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("dwave.cloud")
pytest.importorskip("minorminer")
from qvae_core import dwave as qd  # noqa: E402
from qvae_core.cli import main  # noqa: E402
from qvae_core.qahm import QAHMConfig, Trainer  # noqa: E402

BETA = 4.0  # server temperature and beta_eff: couplings inside chains, -3/4, fit j_range [-1, 1]
SOLVER = dict(topology="chimera", shape=(2, 2), inactive_qubits=[5])


@pytest.mark.parametrize("prior", ["gray-box", "embedded"])
def test_training_on_a_qpu_through_the_local_sapi_server(tmp_path, prior):
    config = QAHMConfig(train_size=100, test_size=100, hidden=[16, 4], prior=prior, sampler="qpu",
                        negative_samples=100, batch_size=50, lr=0.05, epochs=2, eval_every=2, log_z_population=100,
                        output=str(tmp_path / "run"), beta_eff=BETA)
    with qd.SAPIServer([qd.qpu_solver(SOLVER["topology"], SOLVER["shape"], inactive_qubits=SOLVER["inactive_qubits"])],
                       beta=BETA, sweeps=200, seed=1) as server:
        with qd.QPUSampler(client_options=server.client_options(), num_samples=100, beta_eff=BETA, timeout=30.0,
                           retry_backoff=0.01, seed=2) as qpu:
            trainer = Trainer(config, sampler=qpu)
            chains = trainer.embedding.physical_topology.nodes
            assert 5 not in chains.tolist() and np.array_equal(qpu.topology.nodes, chains)
            history = trainer.fit(progress=False, log=lambda line: None)
            problems = server.problems()
    assert len(problems) == 2 * 2 * 5  # epochs x steps x spin-reversal transforms
    assert all(np.array_equal(np.sort(p["labels"]), chains) for p in problems)
    assert all(np.isfinite(m["wake_loss"]) and 0 <= m["chain_break_fraction"] <= 1 for m in history)
    final = history[-1]
    assert "test_bound" not in final and 0 <= final["test_accuracy"] <= 1  # no classical log Z for a QPU prior
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    sampler_state = saved["sampler"] if prior == "gray-box" else saved["sampler"]["sampler"]
    assert sampler_state == {"beta_eff": BETA}


def test_qahm_train_on_a_qpu_from_the_command_line(tmp_path, monkeypatch):
    with qd.SAPIServer([qd.qpu_solver("chimera", (2, 2))], beta=BETA, sweeps=100, seed=4) as server:
        monkeypatch.setenv("DWAVE_API_ENDPOINT", server.endpoint)
        monkeypatch.setenv("DWAVE_API_TOKEN", server.token or "local-token")
        for var in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):  # no user config file, no shared cache
            monkeypatch.setenv(var, str(tmp_path / "home"))
        args = ["qahm", "train", "--train-size", "100", "--test-size", "50", "--hidden", "16,4", "--prior", "embedded",
                "--sampler", "qpu", "--qpu-solver", '{"topology__type": "chimera"}', "--beta-eff", str(BETA),
                "--negative-samples", "100", "--batch-size", "100", "--epochs", "1", "--log-z-population", "300",
                "--output", str(tmp_path / "run"), "--no-progress"]
        assert main(args) == 0
        problems = server.problems()
    assert len(problems) == 5 and {p["params"]["num_reads"] for p in problems} == {20}
    evaluation = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert "bound" not in evaluation and "accuracy" in evaluation
    assert (tmp_path / "run" / "neighbours.png").is_file()
