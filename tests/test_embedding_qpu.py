"""Embedded problems on a QPU: the real dwave-cloud-client against the local SAPI server (127.0.0.1),
which takes them as the ordinary working-graph problems they are. A dense model sampled through its
embedding has the exact logical marginals; a DVAE with an RBM prior trains on a QPU through one."""

import numpy as np
import pytest
from conftest import assert_within_sigma

import qvae_core as q

pytest.importorskip("dwave.cloud")
pytest.importorskip("minorminer")
from qvae_core import dwave as qd  # noqa: E402
from qvae_core import embedding as E  # noqa: E402

BETA = 4.0  # the server's inverse temperature, and the sampler's beta_eff: chain couplings -c/4 fit j_range
FAST = dict(timeout=30.0, retry_backoff=0.01)


def dense_model(n=6, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    edges = E.complete_edges(n)
    return q.BoltzmannMachine(rng.normal(0, scale, n), edges, rng.normal(0, scale, len(edges)))


def test_a_dense_model_sampled_through_its_embedding_on_a_qpu():
    solver = qd.qpu_solver("chimera", (2, 2), inactive_qubits=[3, 20])  # a chip with two dead qubits
    model = dense_model()
    with qd.SAPIServer([solver], beta=BETA, sweeps=3000, seed=5) as server:
        with qd.QPUSampler(client_options=server.client_options(), num_samples=2000, beta_eff=BETA, seed=1,
                           **FAST) as qpu:
            embedding = E.find_embedding(model, qpu.topology, seed=2, family=qpu.solver.properties["topology"])
            with pytest.raises(ValueError, match="sampler: samples topology"):
                E.EmbeddedSampler(embedding, qpu, chain_strength=3.0)  # still on the whole working graph
            qpu.topology = embedding.physical_topology
            sampler = E.EmbeddedSampler(embedding, qpu, chain_strength=3.0, seed=3)
            samples = sampler.sample(model)
            problems = server.problems()
    assert all(sorted(p["labels"].tolist()) == embedding.physical_topology.nodes.tolist() for p in problems)
    assert not {3, 20} & set(embedding.physical_topology.nodes.tolist())
    assert samples.shape == (2000, 6) and len(problems) == 5
    programmed = qpu.last_hardware_model
    assert programmed.num_units == embedding.num_qubits  # the chain qubits, and only they
    assert sampler.last.break_fraction < 0.02
    assert_within_sigma(samples.mean(axis=0), q.exact.marginals(model), 2000, "QPU-embedded marginals")
    pairs = E.complete_edges(6)
    s = samples.astype(float)
    assert_within_sigma((s[:, pairs[:, 0]] * s[:, pairs[:, 1]]).mean(axis=0),
                        q.exact.correlations(model)[pairs[:, 0], pairs[:, 1]], 2000, "QPU-embedded correlations")
    assert sampler.state_dict() == {"sampler": {"beta_eff": BETA}, "calls": 1}


def test_embedded_sampler_with_persistent_chains_resumes_exactly():
    torch = pytest.importorskip("torch")  # noqa: F841
    from qvae_core.dvae.samplers import PersistentChains

    model = dense_model(8)
    embedding = E.find_embedding(model, q.graphs.chimera(2), seed=0)
    a = E.EmbeddedSampler(embedding, PersistentChains(50, 20, seed=1), chain_strength=2.0, seed=4)
    a.sample(model)
    state = a.state_dict()
    b = E.EmbeddedSampler(embedding, PersistentChains(50, 20, seed=9), chain_strength=2.0, seed=4)
    b.load_state_dict(state)
    np.testing.assert_array_equal(a.sample(model), b.sample(model))
    np.testing.assert_array_equal(a.last.broken, b.last.broken)
    assert a.last_embedded.physical.num_units == embedding.num_qubits


def test_dvae_with_an_rbm_prior_trains_on_a_qpu(tmp_path, monkeypatch):
    """`qvae-core train --prior rbm --sampler qpu`: the RBM's graph is embedded in the solver's working
    graph and every problem submitted programs exactly the chain qubits."""
    pytest.importorskip("torch")
    from qvae_core.cli import main

    with qd.SAPIServer([qd.qpu_solver("chimera", (2, 2))], beta=2.0, sweeps=100, seed=4) as server:
        monkeypatch.setenv("DWAVE_API_ENDPOINT", server.endpoint)
        monkeypatch.setenv("DWAVE_API_TOKEN", server.token or "local-token")
        for var in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):  # no user config file, no shared cache
            monkeypatch.setenv(var, str(tmp_path / "home"))
        args = ["train", "--prior", "rbm", "--latent", "4x6", "--groups", "2", "--encoder-hidden", "32",
                "--decoder-hidden", "32", "--epochs", "1", "--batch-size", "50", "--train-size", "100",
                "--valid-size", "50", "--log-z-population", "200", "--final-importance-samples", "1",
                "--sampler", "qpu", "--negative-samples", "400", "--beta-eff", "2", "--chain-strength", "1.5",
                "--qpu-solver", '{"topology__type": "chimera"}', "--output", str(tmp_path / "run"), "--no-progress"]
        assert main(args) == 0
        problems = server.problems()
    assert len(problems) == 2 * 5  # steps x spin-reversal transforms
    assert {p["params"]["num_reads"] for p in problems} == {80}
    qubits = {tuple(sorted(p["labels"].tolist())) for p in problems}
    assert len(qubits) == 1 and 10 <= len(next(iter(qubits))) < 32  # the same chains each time, not the chip
