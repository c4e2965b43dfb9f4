"""A short DVAE training whose negative phase comes from the QPU sampler through the real
dwave-cloud-client and the local SAPI server (127.0.0.1)."""

import json

import numpy as np
import pytest

pytest.importorskip("dwave.cloud")
pytest.importorskip("dwave_networkx")
torch = pytest.importorskip("torch")
from qvae_core import dwave as qd  # noqa: E402
from qvae_core.dvae import TrainConfig, Trainer  # noqa: E402

BETA = 2.0


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")


def test_short_dvae_training_with_the_qpu_sampler(tmp_path):
    # A complete C(1,2) solver: the DVAE's chimera 1,2 prior is exactly its working graph.
    with qd.SAPIServer([qd.qpu_solver("chimera", (1, 2))], beta=BETA, sweeps=100, seed=1) as server:
        config = TrainConfig(prior="chimera", latent="1,2", groups=2, encoder_hidden=[32], decoder_hidden=[32],
                             epochs=2, batch_size=50, train_size=100, valid_size=50, log_z_population=200,
                             final_importance_samples=1, output=str(tmp_path), seed=3)
        trainer = Trainer(config)
        with qd.QPUSampler(client_options=server.client_options(), num_samples=500, beta_eff=BETA,
                           beta_update=qd.PseudoLikelihood(), timeout=30.0, retry_backoff=0.01, seed=2) as sampler:
            assert trainer.model.prior.numpy_model().num_units == sampler.topology.num_units
            trainer.sampler = sampler  # the negative phase: sample(model) -> (500, 16) uint8
            history = trainer.fit(progress=False, log=lambda line: None)
            problems = server.problems()
    assert [m["epoch"] for m in history] == [1, 2]
    assert all(np.isfinite(m["train_objective"]) and np.isfinite(m["val_elbo"]) for m in history)
    assert len(problems) == 2 * 2 * 5  # epochs x steps x spin-reversal transforms
    assert {p["params"]["num_reads"] for p in problems} == {100}
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["sampler"] == {"beta_eff": sampler.beta_eff} and 0.5 < sampler.beta_eff < 8
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])["epoch"] == 2
