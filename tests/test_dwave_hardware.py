"""QPU limits, solver definitions, the qp wire format against dwave-cloud-client's coders, beta_eff estimators."""

import copy
import subprocess
import sys

import numpy as np
import pytest
from conftest import K_SIGMA, all_states
from scipy.stats import chi2

import qvae_core as q

pytest.importorskip("dwave_networkx")
from qvae_core import dwave as qd  # noqa: E402
from qvae_core.dwave import qp  # noqa: E402

ADVANTAGE = qd.qpu_solver("chimera", 1)["properties"]  # Advantage-like limits: anneal times [0.5, 2000] µs


class _Solver:
    """Stand-in for a dwave.cloud solver: a name and the served properties."""

    def __init__(self, definition):
        self.name = definition["identity"]["name"]
        self.properties = definition["properties"]


# ---- solver definitions and working graphs ------------------------------------------------------


@pytest.mark.parametrize(
    "topology, shape, nominal, active",
    [("chimera", 2, 32, 32), ("chimera", (1, 2, 3), 12, 12), ("pegasus", 3, 144, 128), ("zephyr", 2, 160, 160)],
)
def test_solver_definition_counts_nominal_and_active_qubits(topology, shape, nominal, active):
    props = qd.qpu_solver(topology, shape)["properties"]
    assert props["num_qubits"] == nominal
    assert len(props["qubits"]) == active
    assert props["topology"]["type"] == topology
    assert max(props["qubits"]) < nominal


def test_inactive_qubits_leave_the_working_graph_with_their_couplers():
    full = _Solver(qd.qpu_solver("chimera", 2))
    broken = _Solver(qd.qpu_solver("chimera", 2, inactive_qubits=[0, 17]))
    graph = qd.working_graph(broken)
    assert 0 not in graph.nodes and 17 not in graph.nodes and graph.num_units == 30
    assert broken.properties["num_qubits"] == 32
    expected = {tuple(sorted(c)) for c in full.properties["couplers"] if not {0, 17} & set(c)}
    assert {tuple(sorted(graph.nodes[e])) for e in graph.edges} == expected
    assert broken.properties["couplers"] and all(0 not in c and 17 not in c for c in broken.properties["couplers"])


def test_working_graph_has_its_family_colouring():
    solver = _Solver(qd.qpu_solver("zephyr", 2, inactive_qubits=[3, 40]))
    graph = qd.working_graph(solver)
    np.testing.assert_array_equal(graph.colors, np.delete(q.graphs.zephyr(2).colors, [3, 40]))
    assert q.BoltzmannMachine(np.zeros(graph.num_units), graph.edges, np.zeros(len(graph.edges)),
                              colors=graph.colors).num_colors == 4


def test_inactive_fraction_is_reproducible_and_counted():
    a = qd.qpu_solver("pegasus", 3, inactive_fraction=0.1, seed=4)
    b = qd.qpu_solver("pegasus", 3, inactive_fraction=0.1, seed=4)
    c = qd.qpu_solver("pegasus", 3, inactive_fraction=0.1, seed=5)
    assert a["properties"]["qubits"] == b["properties"]["qubits"] != c["properties"]["qubits"]
    assert len(a["properties"]["qubits"]) == 128 - round(0.1 * 128)
    assert a["identity"]["version"]["graph_id"] != c["identity"]["version"]["graph_id"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(topology="king", shape=2), "topology"),
        (dict(topology="pegasus", shape=(2, 2)), "shape"),
        (dict(topology="chimera", shape=0), "shape"),
        (dict(topology="chimera", shape=1, inactive_qubits=[99]), "inactive_qubits"),
        (dict(topology="chimera", shape=1, inactive_qubits=[1], inactive_fraction=0.1), "inactive_fraction"),
        (dict(topology="chimera", shape=1, inactive_fraction=1.0), "inactive_fraction"),
        (dict(topology="chimera", shape=1, inactive_fraction="0.5"), "inactive_fraction"),
        (dict(topology="chimera", shape=1, inactive_qubits=[1.7]), "inactive_qubits"),  # not qubit 1
        (dict(topology="chimera", shape=1, inactive_qubits=["3"]), "inactive_qubits"),
        (dict(topology="chimera", shape=1, inactive_qubits=list(range(8))), "no qubit"),
        (dict(topology="chimera", shape=2.0), "shape"),
        (dict(topology="chimera", shape=None), "shape"),
        (dict(topology="chimera", shape=1, qubits=[0, 1]), "qubits"),  # the server indexed past them
        (dict(topology="chimera", shape=1, h_range="abc"), "h_range"),
        (dict(topology="chimera", shape=1, num_reads_range=[5, 1]), "num_reads_range"),
    ],
)
def test_solver_definition_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        qd.qpu_solver(**kwargs)


def test_working_graph_restricted_to_qubits_is_the_induced_subgraph():
    solver = _Solver(qd.qpu_solver("chimera", 2, inactive_qubits=[5]))
    graph = qd.working_graph(solver, qubits=[7, 0, 4, 5 + 1])
    assert graph.nodes.tolist() == [0, 4, 6, 7]
    couplers = {tuple(sorted(c)) for c in solver.properties["couplers"]}
    induced = {(a, b) for a in graph.nodes for b in graph.nodes if (a, b) in couplers}
    assert {tuple(graph.nodes[e]) for e in graph.edges} == induced
    for qubits in ([5], [0.9, 4.2], ["0", "4"]):  # inactive, or labels that are not integers
        with pytest.raises(ValueError, match="qubits"):
            qd.working_graph(solver, qubits=qubits)


def test_working_graph_refuses_what_is_not_a_structured_solver():
    good = qd.qpu_solver("chimera", 1)["properties"]
    odd = [
        {}, {"qubits": [0, 1]}, {**good, "qubits": [0, 1.7, 4]}, {**good, "qubits": [0, 0, 1]},
        {**good, "qubits": [-1, 0]}, {**good, "couplers": [[0, 4, 5]]}, {**good, "qubits": ["a"]},
    ]
    for properties in odd:
        with pytest.raises(ValueError, match="solver"):
            qd.working_graph(type("Solver", (), {"name": "odd", "properties": properties})())
    with pytest.raises(ValueError, match="solver"):
        qd.working_graph(None)
    plain = qd.working_graph(type("Solver", (), {"name": "x", "properties": {**good, "topology": None}})())
    assert plain.colors is None and plain.num_units == 8  # no family named: DSatur colours it later
    with pytest.raises(ValueError, match="qubits"):
        qd.working_graph(_Solver(qd.qpu_solver("chimera", 1)), qubits=5)


@pytest.mark.parametrize("name", ["readout_thermalization", "programming_thermalization", "annealing_time"])
def test_timing_parameters_are_numbers_within_their_ranges(name):
    props = qd.qpu_solver("chimera", 1)["properties"]
    lo, hi = props[f"{name}_range"]
    qd.hardware.check_timing({name: hi}, props)
    qd.hardware.check_timing({name: np.int64(int(hi))}, props)  # numpy numbers are numbers
    for value in (lo - 1, hi * 2, "x", True):  # a negative readout time divided by zero in max_num_reads
        with pytest.raises(ValueError, match=name):
            qd.hardware.check_timing({name: value}, props)


# ---- anneal schedules and reads -----------------------------------------------------------------


def test_pause_and_quench_is_the_papers_schedule_at_the_fastest_quench():
    points = qd.PauseAndQuench().points(ADVANTAGE)
    assert points == [[0.0, 0.0], [1.0, 0.5], [11.0, 0.5], [11.25, 1.0]]
    assert qd.validate_anneal_schedule(points, ADVANTAGE) == points
    assert qd.PauseAndQuench(pause_time=0.0, quench_time=2.0).points(ADVANTAGE) == [[0.0, 0.0], [1.0, 0.5], [3.0, 1.0]]
    with pytest.raises(ValueError, match="slope"):  # the paper's 10 ns quench is too fast for this solver
        qd.validate_anneal_schedule(qd.PauseAndQuench(quench_time=0.01).points(ADVANTAGE), ADVANTAGE)


@pytest.mark.parametrize(
    "field, value", [("s_pause", 0.0), ("s_pause", 1.0), ("s_pause", "0.5"), ("ramp_time", 0.0), ("pause_time", -1.0),
                     ("quench_time", 0.0)]
)
def test_pause_and_quench_rejects_bad_fields(field, value):
    with pytest.raises(ValueError, match=field):
        qd.PauseAndQuench(**{field: value})


@pytest.mark.parametrize(
    "schedule, match",
    [
        ([[0, 0]], "2 to 12 points"),
        ([[float(t), t / 12] for t in range(13)], "2 to 12 points"),
        ([[1, 0], [2, 1]], "starts at"),
        ([[0, 0.2], [2, 1]], "starts at"),
        ([[0, 1], [5, 0.5], [10, 1]], "reverse"),
        ([[0, 0], [2, 0.5], [2, 1]], "strictly increasing"),
        ([[0, 0], [2, 0.6], [4, 0.5], [6, 1]], "non-decreasing"),
        ([[0, 0], [2, 1.2], [4, 1.0]], "non-decreasing"),
        ([[0, 0], [2, 0.9]], "s = 1"),
        ([[0, 0], [2500, 1]], "longer than"),
        ([[0, 0], [0.4, 1]], "slope"),
        ([[0, 0], [1, 0.5], [1.1, 1]], "slope"),
        ([[0, 0, 0], [1, 1, 1]], "pairs"),
        ([[0, 0], [1, float("nan")]], "NaN"),
        ("fast", "numeric"),
    ],
)
def test_bad_anneal_schedules_are_refused(schedule, match):
    with pytest.raises(ValueError, match="anneal_schedule") as info:
        qd.validate_anneal_schedule(schedule, ADVANTAGE)
    assert match in str(info.value)


def test_schedules_need_a_solver_that_accepts_them():
    props = dict(ADVANTAGE, parameters={k: v for k, v in ADVANTAGE["parameters"].items() if k != "anneal_schedule"})
    with pytest.raises(ValueError, match="does not accept"):
        qd.validate_anneal_schedule([[0, 0], [20, 1]], props)


def test_max_num_reads_follows_the_problem_duration_limit():
    assert qd.max_num_reads({}, ADVANTAGE) == 10000
    assert qd.max_num_reads({"annealing_time": 2000.0}, ADVANTAGE) == int((1e6 - 1000) / 2000)
    params = {"anneal_schedule": [[0, 0], [1000.0, 1]], "readout_thermalization": 1000.0,
              "programming_thermalization": 0.0}
    assert qd.max_num_reads(params, ADVANTAGE) == 500


# ---- the qp wire format against dwave-cloud-client ------------------------------------------------


@pytest.fixture(scope="module")
def cloud_solver():
    from dwave.cloud.solver import StructuredSolver

    return StructuredSolver(client=None, data=qd.qpu_solver("pegasus", 2, inactive_qubits=[14]))


def test_problems_encoded_by_the_client_decode_exactly(cloud_solver):
    from dwave.cloud.coders import encode_problem_as_qp

    rng = np.random.default_rng(0)
    qubits = sorted(cloud_solver.nodes)
    used = set(rng.choice(qubits, size=25, replace=False).tolist())
    linear = {v: float(rng.normal()) for v in used}
    linear[min(used)] = 0.0  # a used qubit with zero bias is still used
    quadratic = {(a, b): float(rng.normal()) for a, b in cloud_solver.undirected_edges if a in used and b in used}
    data = encode_problem_as_qp(cloud_solver, linear, quadratic, offset=1.5)
    props = cloud_solver.properties
    position = {v: k for k, v in enumerate(props["qubits"])}
    couplers = np.array([[position[a], position[b]] for a, b in props["couplers"]])
    decoded = qp.decode_problem(data, couplers, len(props["qubits"]))
    labels = np.asarray(props["qubits"])[decoded.qubits]
    assert labels.tolist() == [v for v in props["qubits"] if v in used]
    assert dict(zip(labels.tolist(), decoded.linear.tolist())) == linear
    pairs = [tuple(props["couplers"][k]) for k in decoded.couplers]
    received = {tuple(sorted(p)): v for p, v in zip(pairs, decoded.quadratic)}
    assert received == {tuple(sorted(k)): v for k, v in quadratic.items()}
    assert decoded.offset == 1.5


@pytest.mark.parametrize("problem_type", ["ising", "qubo"])
def test_answers_encoded_by_the_server_decode_exactly_in_the_client(cloud_solver, problem_type):
    from dwave.cloud.coders import decode_qp, decode_qp_numpy

    rng = np.random.default_rng(1)
    labels = np.array(sorted(rng.choice(sorted(cloud_solver.nodes), size=13, replace=False)))
    bits = rng.integers(0, 2, size=(7, 13), dtype=np.uint8)
    energies = rng.normal(size=7)
    counts = rng.integers(1, 5, size=7)
    num_variables = cloud_solver.properties["num_qubits"]
    answer = qp.encode_answer(bits, labels, energies, counts, num_variables, {"qpu_access_time": 1.0})
    message = {"type": problem_type, "answer": answer}
    decoded = {name: decode(copy.deepcopy(message)) for name, decode in
               (("numpy", lambda m: decode_qp_numpy(m, return_matrix=True)), ("python", decode_qp))}
    expected = 2 * bits.astype(int) - 1 if problem_type == "ising" else bits
    for result in decoded.values():
        solutions = np.asarray(result["solutions"])
        assert solutions.shape == (7, num_variables)
        assert np.array_equal(solutions[:, labels], expected)
        assert np.array_equal(np.asarray(result["energies"]), energies)
        assert np.array_equal(np.asarray(result["num_occurrences"]), counts)
        assert list(result["active_variables"]) == labels.tolist()
    unused = np.setdiff1d(np.arange(num_variables), labels)
    assert np.all(decoded["numpy"]["solutions"][:, unused] == (0 if problem_type == "ising" else 3))


@pytest.mark.parametrize(
    "data, match",
    [
        ({"format": "bq", "lin": "", "quad": ""}, "qp"),
        ({"format": "qp", "lin": "***", "quad": ""}, "base64"),
        ({"format": "qp", "lin": "AAAA", "quad": ""}, "whole number"),
        ({"format": "qp", "lin": qp._encode_array([1.0, 2.0], "<f8"), "quad": ""}, "one per qubit"),
        ({"format": "qp", "lin": qp._encode_array([1.0, 2.0, 3.0], "<f8"), "quad": ""}, "couplers"),
        ({"format": "qp", "lin": qp._encode_array([1.0, np.inf, np.nan], "<f8"),
          "quad": qp._encode_array([1.0], "<f8")}, "finite"),
    ],
)
def test_malformed_problem_data_is_refused(data, match):
    couplers = np.array([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match=match):
        qp.decode_problem(data, couplers, 3)


# ---- beta_eff ---------------------------------------------------------------------------------


def _samples_at(model, beta, num, seed, sweeps=300):
    hot = q.BoltzmannMachine(beta * model.bias, model.edges, beta * model.weights)
    return q.GibbsSampler(hot, num, seed=seed).run(sweeps)


@pytest.fixture(scope="module")
def chimera_model():
    return q.graphs.random_boltzmann_machine(q.graphs.chimera(2), weight_scale=0.7, bias_scale=0.5, seed=8)


def test_pseudolikelihood_recovers_beta_within_its_standard_error(chimera_model):
    estimate = qd.estimate_beta_pseudolikelihood(chimera_model, _samples_at(chimera_model, 2.5, 4000, seed=1))
    assert 0 < estimate.stderr
    assert abs(estimate.value - 2.5) < 5 * estimate.stderr
    other = qd.estimate_beta_pseudolikelihood(chimera_model, _samples_at(chimera_model, 2.0, 4000, seed=2))
    assert abs(other.value - 2.5) > 5 * other.stderr  # the check has power


def test_pseudolikelihood_standard_error_matches_the_spread_of_estimates(chimera_model):
    estimates = [qd.estimate_beta_pseudolikelihood(chimera_model, _samples_at(chimera_model, 1.5, 500, seed=s))
                 for s in range(12)]
    spread = np.std([e.value for e in estimates], ddof=1)
    reported = np.sqrt(np.mean([e.stderr**2 for e in estimates]))
    lo, hi = np.sqrt(chi2.ppf([1e-4, 1 - 1e-4], len(estimates) - 1) / (len(estimates) - 1))  # false alarm 2e-4
    assert lo < spread / reported < hi, (spread / reported, lo, hi)


def test_pseudolikelihood_without_a_finite_maximum_and_bad_input():
    model = q.BoltzmannMachine([1.0, 2.0], [[0, 1]], [0.5])
    assert qd.estimate_beta_pseudolikelihood(model, np.ones((10, 2))) == (np.inf, np.inf)  # all local minima
    assert qd.estimate_beta_pseudolikelihood(model, np.zeros((10, 2))) == (-np.inf, np.inf)
    assert qd.PseudoLikelihood()(model, np.ones((10, 2)), 1.5) == 1.5  # uninformative: beta_eff kept
    with pytest.raises(ValueError, match="samples"):
        qd.estimate_beta_pseudolikelihood(model, [[0, 2]])
    with pytest.raises(ValueError, match="model"):
        qd.estimate_beta_pseudolikelihood(q.RBM(np.ones((1, 1)), [0.0], [0.0]), [[0, 1]])


def _energy_moments(model, beta):
    """(E_beta[E], Var_beta[E]) over all 2^n states."""
    energies = model.energy(all_states(model.num_units))
    w = np.exp(-beta * (energies - energies.min()))
    w /= w.sum()
    mean = energies @ w
    return mean, w @ (energies - mean) ** 2


def _mle_beta(model, samples):
    """The exact maximum-likelihood beta, E_beta[E] = mean E(samples), by bisection, and its standard
    error 1 / sqrt(N Var_beta[E]) (Fisher information of the exponential family in beta)."""
    target = model.energy(samples).mean()
    lo, hi = 0.1, 10.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _energy_moments(model, mid)[0] > target else (lo, mid)
    beta = 0.5 * (lo + hi)
    return beta, 1.0 / np.sqrt(len(samples) * _energy_moments(model, beta)[1])


def test_appendix_c_updates_converge_to_the_maximum_likelihood_beta():
    model = q.graphs.random_boltzmann_machine(q.graphs.chimera(1, 2), weight_scale=0.8, bias_scale=0.5, seed=3)
    samples = _samples_at(model, 1.6, 4000, seed=4)
    target, target_se = _mle_beta(model, samples)
    assert abs(target - 1.6) <= K_SIGMA * target_se
    tracker = qd.AppendixC(learning_rate=0.4, population=1000, seed=5)  # lr ~ 1 / Var(E): near-Newton steps
    beta, path = 0.8, []
    for _ in range(12):
        beta = tracker(model, samples, beta)
        path.append(beta)
    # Converged after 6 steps, the path fluctuates about the MLE with the noise of each step's
    # annealed E_beta[E]: its mean is within k SEs of its own spread (t with 5 dof: 0.4% at k = 5).
    settled = np.array(path[-6:])
    assert abs(settled.mean() - target) <= K_SIGMA * settled.std(ddof=1) / np.sqrt(len(settled))
    with pytest.raises(ValueError, match="learning_rate"):
        qd.appendix_c_update(model, samples, 1.0, 0.0)
    with pytest.raises(ValueError, match="population"):  # 10 sub-populations of at least 2
        qd.AppendixC(0.1, population=10)
    with pytest.raises(ValueError, match="beta"):
        qd.appendix_c_update(model, samples, -1.0, 0.1)


def test_pseudolikelihood_tracker_smooths(chimera_model):
    samples = _samples_at(chimera_model, 2.0, 1000, seed=6)
    estimate = qd.estimate_beta_pseudolikelihood(chimera_model, samples).value
    assert qd.PseudoLikelihood()(chimera_model, samples, 1.0) == pytest.approx(estimate)
    assert qd.PseudoLikelihood(smoothing=0.75)(chimera_model, samples, 1.0) == pytest.approx(0.25 * estimate + 0.75)
    assert qd.PseudoLikelihood(max_relative_stderr=1e-6)(chimera_model, samples, 1.0) == 1.0  # too noisy
    with pytest.raises(ValueError, match="smoothing"):
        qd.PseudoLikelihood(smoothing=1.0)
    with pytest.raises(ValueError, match="max_relative_stderr"):
        qd.PseudoLikelihood(max_relative_stderr=0.0)


def test_importing_the_package_and_its_cli_does_not_import_the_cloud_client():
    code = (
        "import argparse, sys; import qvae_core.dwave, qvae_core.dwave.cli as cli; "
        "cli.register(argparse.ArgumentParser().add_subparsers()); "
        "assert 'dwave.cloud' not in sys.modules and 'requests' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, timeout=60)
