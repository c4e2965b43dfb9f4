"""QPUSampler end to end: the real dwave-cloud-client against the local SAPI server on 127.0.0.1.

Un-gauged samples reproduce exact marginals, beta_eff is tracked, bad input fails before anything
is submitted, and every fault is retried a bounded number of times or raised with the problem ids.
"""

import re
import time

import numpy as np
import pytest
from conftest import assert_within_sigma, local_solvers

import qvae_core as q

pytest.importorskip("dwave.cloud")
pytest.importorskip("dwave_networkx")
from dwave.cloud import Client  # noqa: E402
from dwave.cloud.exceptions import SolverAuthenticationError  # noqa: E402

from qvae_core import dwave as qd  # noqa: E402

BETA = 2.0  # the server's inverse temperature
CHIMERA = "local_chimera_1x2x4"
FAST = dict(timeout=20.0, retry_backoff=0.01)


@pytest.fixture
def server():
    with qd.SAPIServer(local_solvers(), beta=BETA, sweeps=300, seed=11) as srv:
        yield srv


def make_sampler(server, solver=CHIMERA, **kwargs):
    options = kwargs.pop("client_options", server.client_options())
    return qd.QPUSampler(solver, client_options=options, seed=3, **{**FAST, **kwargs})


def connected_qubits(solver, size):
    """`size` qubits grown breadth-first along couplers from the smallest label."""
    neighbours = {}
    for a, b in solver.properties["couplers"]:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    order, frontier = [], [min(solver.properties["qubits"])]
    while frontier and len(order) < size:
        v = frontier.pop(0)
        if v not in order:
            order.append(v)
            frontier.extend(sorted(neighbours.get(v, [])))
    return order


def submitted_posts(server):
    return server.requests.get("POST problems", 0)


# ---- correctness ------------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", [CHIMERA, "local_pegasus_2", "local_zephyr_1x2"])
def test_ungauged_samples_reproduce_exact_marginals_and_correlations(server, solver):
    with make_sampler(server, solver) as probe:  # pegasus, zephyr: a connected patch small enough to enumerate
        topology = None if solver == CHIMERA else qd.working_graph(probe.solver, connected_qubits(probe.solver, 14))
    with make_sampler(server, solver, beta_eff=BETA, topology=topology) as sampler:
        model = q.graphs.random_boltzmann_machine(sampler.topology, weight_scale=1.0, bias_scale=1.5, seed=4)
        np.testing.assert_array_equal(model.colors, np.unique(sampler.topology.colors, return_inverse=True)[1])
        num_samples = 10000
        z = sampler.sample(model, num_samples).astype(float)
    assert z.shape == (num_samples, sampler.topology.num_units)
    assert_within_sigma(z.mean(axis=0), q.exact.marginals(model), num_samples, "marginals")
    assert_within_sigma(z.T @ z / num_samples, q.exact.correlations(model), num_samples, "correlations")
    # the server saw five differently gauged problems: h' = g h_hw with g in {+-1}^n, g != 1
    h_hw = model.to_ising()[0] / BETA
    gauges = [p["linear"] / h_hw for p in server.problems()]
    assert len(gauges) == 5 and all(np.allclose(np.abs(g), 1) for g in gauges)
    assert len({tuple(np.sign(g)) for g in gauges}) == 5 and all(np.any(g < 0) for g in gauges)
    assert all(p["params"]["auto_scale"] is False and p["params"]["num_reads"] == 2000 for p in server.problems())


def test_the_marginal_check_detects_a_wrong_beta_eff(server):
    with make_sampler(server, beta_eff=1.0) as sampler:  # the server samples at 2.0
        model = q.graphs.random_boltzmann_machine(sampler.topology, weight_scale=1.0, bias_scale=1.5, seed=4)
        z = sampler.sample(model, 10000).astype(float)
    with pytest.raises(AssertionError):
        assert_within_sigma(z.mean(axis=0), q.exact.marginals(model), 10000, "marginals")


def test_beta_eff_is_tracked_by_pseudolikelihood(server):
    with make_sampler(server, beta_eff=1.0, beta_update=qd.PseudoLikelihood()) as sampler:
        model = q.graphs.random_boltzmann_machine(sampler.topology, weight_scale=1.0, seed=5)
        z = sampler.sample(model, 5000)
        hardware = sampler.last_hardware_model  # model / 1.0, as programmed
        np.testing.assert_allclose(hardware.bias, model.bias)
        stderr = qd.estimate_beta_pseudolikelihood(hardware, z).stderr
        assert abs(sampler.beta_eff - BETA) < 5 * stderr
        z = sampler.sample(model, 5000)  # now programmed with model / beta_eff: model samples
    assert_within_sigma(z.mean(axis=0), q.exact.marginals(model), 5000, "marginals")


def test_a_beta_update_that_fails_keeps_the_batch_and_beta_eff(server):
    with make_sampler(server, beta_eff=1.0, beta_update=lambda model, samples, beta: -951.0) as sampler:
        model = q.graphs.random_boltzmann_machine(sampler.topology, seed=5)
        with pytest.warns(RuntimeWarning, match="kept beta_eff = 1"):
            samples = sampler.sample(model, 50)
        assert samples.shape == (50, model.num_units) and sampler.beta_eff == 1.0


def test_beta_eff_is_tracked_by_the_appendix_c_update(server):
    with make_sampler(server, beta_eff=1.0, beta_update=qd.AppendixC(1.0, population=500, seed=1)) as sampler:
        model = q.graphs.random_boltzmann_machine(sampler.topology, weight_scale=1.0, seed=5)
        for _ in range(5):
            sampler.sample(model, 2000)
        assert abs(sampler.beta_eff - BETA) < 0.1


def test_paper_defaults_five_transforms_of_200_reads_and_pause_and_quench(server):
    with make_sampler(server, anneal_schedule=qd.PauseAndQuench()) as sampler:
        model = q.graphs.random_boltzmann_machine(sampler.topology, seed=6)
        samples = sampler.sample(model)
        assert samples.shape == (1000, 14) and samples.dtype == np.uint8
        assert len(sampler.last_problem_ids) == 5
    problems = server.problems()
    assert sorted(p["id"] for p in problems) == sorted(sampler.last_problem_ids)
    for p in problems:
        assert p["params"]["num_reads"] == 200 and p["params"]["answer_mode"] == "raw"
        assert p["params"]["anneal_schedule"] == [[0.0, 0.0], [1.0, 0.5], [11.0, 0.5], [11.25, 1.0]]


def test_reads_are_split_evenly_and_a_topology_restricts_the_qubits(server):
    with make_sampler(server) as sampler:
        cell = qd.working_graph(sampler.solver, qubits=[0, 1, 2, 4, 5, 6, 7])
    with make_sampler(server, topology=cell, num_spin_reversals=3) as sampler:
        model = q.graphs.random_boltzmann_machine(cell, seed=7)
        assert sampler.sample(model, 301).shape == (301, 7)
    problems = server.problems()
    assert sorted(p["params"]["num_reads"] for p in problems) == [100, 100, 101]
    assert all(p["labels"].tolist() == [0, 1, 2, 4, 5, 6, 7] for p in problems)


def test_values_beyond_the_ranges_are_clipped_with_a_warning_saying_how_much(server):
    with make_sampler(server, beta_eff=0.5) as sampler:
        topo = sampler.topology
        model = q.BoltzmannMachine(np.full(topo.num_units, 3.0), topo.edges, np.full(len(topo.edges), -3.0))
        h, _, J, _ = model.to_ising()
        h, J = np.abs(h / 0.5), np.abs(J / 0.5)  # programmed values before clipping
        expected = (f"clipped {(h > 4).sum()} of 14 h values outside h_range [-4.0, 4.0] (largest excess "
                    f"{h.max() - 4:.4g}) and {len(J)} of {len(J)} J values outside j_range [-1.0, 1.0] (largest excess 0.5)")
        assert 0 < (h > 4).sum() < 14
        with pytest.warns(qd.ClippingWarning, match=re.escape(expected)):
            sampler.sample(model, 10)
        hardware = sampler.last_hardware_model.to_ising()
    assert np.all(np.abs(hardware[0]) <= 4) and np.all(np.abs(hardware[2]) <= 1)
    assert all(np.all(np.abs(p["linear"]) <= 4) for p in server.problems())


# ---- configuration --------------------------------------------------------------------------------


def test_explicit_client_and_feature_filters(server):
    with Client(**server.client_options()) as client:
        sampler = qd.QPUSampler({"topology__type": "pegasus"}, client=client, **FAST)
        assert sampler.solver.name == "local_pegasus_2" and sampler.topology.num_units == 40
        sampler.close()  # not ours: the client stays open
        assert len(client.get_solvers()) == 3


def test_configured_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("DWAVE_API_ENDPOINT", server.endpoint)
    monkeypatch.setenv("DWAVE_API_TOKEN", "env-token")
    monkeypatch.setenv("DWAVE_API_SOLVER", '{"name": "local_zephyr_1x2"}')
    with qd.QPUSampler(client_options={"config_file": False, "cache_enabled": False}, **FAST) as sampler:
        assert sampler.solver.name == "local_zephyr_1x2"
        assert sampler.client.config.polling_timeout is None  # the sampler's deadline alone applies


# ---- validation before anything is submitted ----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(beta_eff=0.0), "beta_eff"),
        (dict(beta_eff=float("nan")), "beta_eff"),
        (dict(num_spin_reversals=0), "num_spin_reversals"),
        (dict(timeout=0), "timeout"),
        (dict(max_retries=-1), "max_retries"),
        (dict(retry_backoff=-1.0), "retry_backoff"),
        (dict(beta_update=2.0), "beta_update"),
        (dict(solver=3), "solver"),
        (dict(anneal_schedule=[[0, 0], [0.1, 1]]), "anneal_schedule"),
        (dict(anneal_schedule=[[0, 0], [20, 1]], solver_params={"annealing_time": 20.0}), "annealing_time"),
        (dict(solver_params={"annealing_time": 5000.0}), "annealing_time"),
        (dict(solver_params={"num_reads": 5}), "set by the sampler"),
        (dict(solver_params={"tempo": 5}), "not a parameter"),
        (dict(solver_params={"readout_thermalization": -20.0}), "readout_thermalization"),
        (dict(anneal_schedule=qd.PauseAndQuench(), client_options=[1, 2]), "client_options"),
        (dict(topology=q.graphs.chimera(1)), "topology"),
    ],
)
def test_bad_arguments_raise_value_error_and_submit_nothing(server, kwargs, match):
    kwargs = dict(kwargs)
    options = kwargs.pop("client_options", server.client_options())
    with pytest.raises(ValueError, match=match):
        qd.QPUSampler(kwargs.pop("solver", CHIMERA), client_options=options, **{**FAST, **kwargs})
    assert submitted_posts(server) == 0


@pytest.mark.parametrize(
    "make_model, num_samples, sampler_kwargs, match",
    [
        (lambda t: q.RBM(np.zeros((2, 2)), np.zeros(2), np.zeros(2)), 10, {}, "model"),
        (lambda t: q.BoltzmannMachine(np.zeros(5), np.zeros((0, 2)), []), 10, {}, "units"),
        (lambda t: q.BoltzmannMachine(np.zeros(t.num_units), [[0, 1]], [1.0]), 10, {}, "edge"),  # 0 and 1 share a shore
        (lambda t: q.graphs.random_boltzmann_machine(t), 4, {}, "num_samples"),
        (lambda t: q.graphs.random_boltzmann_machine(t), 0, {}, "num_samples"),
        (lambda t: q.graphs.random_boltzmann_machine(t), 5 * 500,
         {"solver_params": {"annealing_time": 2000.0}}, "allows 1 to 499"),
    ],
)
def test_bad_samples_requests_raise_value_error_and_submit_nothing(server, make_model, num_samples, sampler_kwargs,
                                                                    match):
    with make_sampler(server, **sampler_kwargs) as sampler:
        with pytest.raises(ValueError, match=match):
            sampler.sample(make_model(sampler.topology), num_samples)
    assert submitted_posts(server) == 0


def test_authentication_errors_are_not_retried(server):
    server.token = "secret"
    with pytest.raises(SolverAuthenticationError):
        make_sampler(server, client_options=server.client_options(token="wrong"))
    assert submitted_posts(server) == 0


# ---- faults ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["rate-limit", "server-error", "poll-error", "failed", "truncated", "slow"])
def test_transient_faults_are_retried(server, fault):
    server.inject(fault, 2, delay=3.0 if fault == "slow" else 0.0)
    with make_sampler(server, timeout=1.0 if fault == "slow" else 20.0) as sampler:
        model = q.graphs.random_boltzmann_machine(sampler.topology, seed=8)
        samples = sampler.sample(model, 100)
    assert samples.shape == (100, 14)
    assert server.faults_served == {fault: 2}


@pytest.mark.parametrize("fault", ["failed", "truncated"])
def test_a_retried_transform_changes_no_sample(fault):
    # The retry of transform 1 reaches the server after transforms 2-5: the samples of this batch
    # and of the next are still those of a run without the fault.
    runs = []
    for inject in (False, True):
        with qd.SAPIServer(local_solvers(), beta=BETA, sweeps=20, seed=11) as server:
            if inject:
                server.inject(fault)
            with make_sampler(server) as sampler:
                model = q.graphs.random_boltzmann_machine(sampler.topology, seed=8)
                runs.append([sampler.sample(model, 100) for _ in range(2)])
                assert len(sampler.last_problem_ids) == 5
            assert server.faults_served == ({fault: 1} if inject else {})
            assert len(server.problems()) == 10 + inject
    for clean, retried in zip(*runs):
        np.testing.assert_array_equal(clean, retried)


@pytest.mark.parametrize(
    "fault, sampler_kwargs, match",
    [
        ("failed", {}, "SolverFailureError: injected failure"),
        ("truncated", {}, "holds 10 reads, 20 were asked"),
        ("slow", {"timeout": 0.3}, "no answer within timeout = 0.3 s"),
        ("rate-limit", {}, "429|Too many requests"),
    ],
)
def test_persistent_faults_raise_with_the_problem_ids_after_bounded_retries(server, fault, sampler_kwargs, match):
    server.inject(fault, 1000, delay=30.0 if fault == "slow" else 0.0)
    start = time.monotonic()
    with make_sampler(server, max_retries=2, **sampler_kwargs) as sampler:
        model = q.graphs.random_boltzmann_machine(sampler.topology, seed=9)
        with pytest.raises(qd.QPUSamplingError, match=match) as info:
            sampler.sample(model, 100)
    assert time.monotonic() - start < 10
    error = info.value
    assert "3 attempt(s)" in str(error) and "after retries" in str(error)
    if fault == "rate-limit":  # refused at submission: no problem ids exist
        assert error.problem_ids == [] and "none assigned" in str(error)
    else:
        assert len(error.problem_ids) == 3 and all(pid in str(error) for pid in error.problem_ids)
        known = {p["id"]: p["status"] for p in server.problems()}
        expected = {"failed": "FAILED", "truncated": "COMPLETED", "slow": "CANCELLED"}[fault]
        assert all(known[pid] == expected for pid in error.problem_ids)


def test_non_retryable_errors_raise_at_once_with_the_problem_ids(server):
    with make_sampler(server, solver_params={"x_unknown": 1}) as sampler:  # the server refuses the parameter
        model = q.graphs.random_boltzmann_machine(sampler.topology, seed=10)
        with pytest.raises(qd.QPUSamplingError, match=r"non-retryable error \(1 attempt\(s\)\).*unknown parameter"):
            sampler.sample(model, 100)


def test_an_unreachable_server_is_retried_then_raised(server):
    options = server.client_options(http_retry_total=1)  # keep urllib3's own connection retries short
    with make_sampler(server, max_retries=1, client_options=options) as sampler:
        model = q.graphs.random_boltzmann_machine(sampler.topology, seed=12)
        server.stop()
        start = time.monotonic()
        # urllib3 files refused connections under timeouts, hence RequestTimeout
        with pytest.raises(qd.QPUSamplingError, match="RequestTimeout|ConnectionError"):
            sampler.sample(model, 100)
        assert time.monotonic() - start < 10
