"""The local SAPI server's parts without HTTP: the QPU emulator (Boltzmann reads, answer shapes,
auto_scale), job validation (jobs.parse_job) and the problem store (order, seeds, faults, cancel)."""

import numpy as np
import pytest
from conftest import assert_within_sigma, ising_energy, local_solvers, qp_job

import qvae_core as q
from qvae_core.dwave.emulator import Problem, QPUEmulator, Sampleset
from qvae_core.dwave.faults import Faults
from qvae_core.dwave.jobs import JobError, parse_job
from qvae_core.dwave.solvers import LocalSolver
from qvae_core.dwave.store import ProblemStore

BETA = 1.5


@pytest.fixture(scope="module")
def chimera():
    return LocalSolver.from_definition(local_solvers()[0])  # C(1, 2), qubits 3 and 12 inactive


def ising_problem(solver, h, J, **params):
    """A Problem on every working qubit and coupler of `solver`."""
    qubits = np.arange(solver.qubits.shape[0])
    return Problem(solver, "ising", params, qubits, solver.couplers, h, J, h, J)


# ---- the emulator ------------------------------------------------------------------------------------


def test_emulator_reads_are_boltzmann_samples_at_beta(chimera):
    rng = np.random.default_rng(3)
    h, J = rng.uniform(-1.0, 1.0, 14), rng.uniform(-0.5, 0.5, len(chimera.couplers))
    num_reads = 10000
    answer = QPUEmulator(beta=BETA, sweeps=200).sample(
        ising_problem(chimera, h, J, num_reads=num_reads, answer_mode="raw", auto_scale=False), seed=5)
    z = answer.states.astype(float)
    assert z.shape == (num_reads, 14) and np.all(answer.num_occurrences == 1)
    np.testing.assert_allclose(answer.energies, ising_energy(h, chimera.couplers, J, 2 * z - 1), atol=1e-12)
    model, _ = q.BoltzmannMachine.from_ising(BETA * h, chimera.couplers, BETA * J)
    assert_within_sigma(z.mean(axis=0), q.exact.marginals(model), num_reads, "marginals")
    assert_within_sigma(z.T @ z / num_reads, q.exact.correlations(model), num_reads, "correlations")


def test_emulator_auto_scales_to_the_solver_ranges(chimera):
    """h = 8 on one qubit (h_range [-4, 4]): read at beta * h / 2, energies of the submitted h."""
    h, J = np.zeros(14), np.zeros(len(chimera.couplers))
    h[0] = 8.0
    num_reads = 4000
    answer = QPUEmulator(beta=0.25, sweeps=50).sample(
        ising_problem(chimera, h, J, num_reads=num_reads, answer_mode="raw"), seed=1)
    up = answer.states[:, 0].astype(float)
    assert_within_sigma(up.mean(), 1.0 / (1.0 + np.exp(2 * 0.25 * 4.0)), num_reads, "P(s_0 = +1)")
    np.testing.assert_array_equal(answer.energies, np.where(up > 0, 8.0, -8.0))


def test_emulator_answers_histograms_and_max_answers(chimera):
    rng = np.random.default_rng(4)
    h, J = rng.normal(size=14), rng.normal(size=len(chimera.couplers))
    emulator = QPUEmulator(beta=0.5, sweeps=20)
    answer = emulator.sample(ising_problem(chimera, h, J, num_reads=500), seed=2)
    assert answer.num_occurrences.sum() == 500 and len(np.unique(answer.states, axis=0)) == len(answer.states)
    assert np.all(np.diff(answer.energies) >= 0)
    cut = emulator.sample(ising_problem(chimera, h, J, num_reads=500, max_answers=3), seed=2)
    np.testing.assert_array_equal(cut.states, answer.states[:3])
    assert cut.timing == answer.timing and cut.timing["qpu_anneal_time_per_sample"] == 20.0
    half = answer.first_reads(250)
    assert half.num_occurrences.sum() == 250 and len(half.states) < len(answer.states)
    np.testing.assert_array_equal(half.states, answer.states[:len(half.states)])


def test_a_truncated_histogram_keeps_its_first_reads_even_when_one_answer_holds_more():
    # (an answer whose first state occurred more often than the reads kept once came back empty)
    answer = Sampleset(np.array([[1, 0], [0, 1]], np.int8), np.array([-1.0, 1.0]), np.array([6, 4]), {})
    first = answer.first_reads(5)
    np.testing.assert_array_equal(first.states, [[1, 0]])
    np.testing.assert_array_equal(first.num_occurrences, [5])
    assert first.first_reads(50).num_occurrences.sum() == 5
    np.testing.assert_array_equal(answer.first_reads(7).num_occurrences, [6, 1])


# ---- job validation ------------------------------------------------------------------------------------


def test_jobs_become_problems_on_the_working_graph(chimera):
    solvers = {chimera.name: chimera}
    a, b = (int(v) for v in chimera.qubits[chimera.couplers[0]])
    problem = parse_job(qp_job(chimera, {a: 0.5, b: -0.25}, {(a, b): 1.0}, num_reads=3), solvers)
    np.testing.assert_array_equal(problem.labels, [a, b])
    np.testing.assert_array_equal(problem.edges, [[0, 1]])
    assert problem.h.tolist() == [0.5, -0.25] and problem.J.tolist() == [1.0] and problem.num_reads == 3
    # QUBO x^T Q x = sum h s + J s s + c with s = 2x - 1: h_a = Q_aa/2 + Q_ab/4, J = Q_ab/4
    qubo = parse_job(qp_job(chimera, {a: 0.5, b: -0.25}, {(a, b): 1.0}, type="qubo"), solvers)
    np.testing.assert_allclose(qubo.h, [0.5, 0.125])
    np.testing.assert_allclose(qubo.J, [0.25])
    assert qubo.linear.tolist() == [0.5, -0.25]


@pytest.mark.parametrize("change, code, match", [
    (dict(solver="nope"), 404, "not found"),
    (dict(solver={"name": "local_chimera_1x2x4", "version": {"graph_id": "other"}}), 404, "no working graph"),
    (dict(type="bqm"), 400, "not supported"),
    (dict(params={"num_reads": 0}), 400, "num_reads"),
    (dict(params={"auto_scale": False, "num_reads": 1}, h=9.0), 400, "h_range"),
    (dict(data={"format": "bq"}), 400, "qp"),
])
def test_refused_jobs_raise_job_errors_with_the_http_status(chimera, change, code, match):
    change = dict(change)
    h = change.pop("h", 0.5)
    job = qp_job(chimera, {int(chimera.qubits[0]): h}, {})
    job.update(change)
    with pytest.raises(JobError, match=match) as info:
        parse_job(job, {chimera.name: chimera})
    assert info.value.code == code


# ---- the problem store ---------------------------------------------------------------------------------


def finished(store, document, timeout=20.0):
    (status,) = store.poll([document["id"]], timeout)
    return status


def test_the_store_answers_reproducibly_and_applies_problem_faults(chimera):
    h, J = np.full(14, 0.1), np.zeros(len(chimera.couplers))
    answers = []
    for _ in range(2):
        faults = Faults()
        store = ProblemStore(QPUEmulator(beta=1.0, sweeps=10), faults, seed=9, max_poll_wait=30.0)
        try:
            first = store.submit(ising_problem(chimera, h, J, num_reads=20), label="a", data={})
            assert first["status"] == "PENDING" and first["label"] == "a"
            assert finished(store, first)["status"] == "COMPLETED"
            answers.append(store.document(store.find(first["id"]), with_answer=True)["answer"])
            faults.inject("failed")
            failed = finished(store, store.submit(ising_problem(chimera, h, J), label=None, data={}))
            assert failed["status"] == "FAILED" and "injected failure" in failed["error_message"]
            faults.inject("slow", delay=30.0)
            slow = store.submit(ising_problem(chimera, h, J), label=None, data={})
            assert finished(store, slow, timeout=0.2)["status"] in ("PENDING", "IN_PROGRESS")
            assert store.cancel(slow["id"])["status"] == "CANCELLED"
            assert store.cancel(slow["id"])["error_code"] == 409 and store.cancel("x")["error_code"] == 404
            assert [s["status"] for s in store.summaries()] == ["COMPLETED", "FAILED", "CANCELLED"]
            assert faults.served == {"failed": 1, "slow": 1}
        finally:
            store.close()
    assert answers[0] == answers[1]  # same seed, same problems


def answers_of(store, problems, order, faults=None, fault=None):
    """The answers to `problems` submitted one at a time in `order` (each answered before the next;
    `fault` injected before the first), as {index: [answers in the order submitted]}."""
    answers = {}
    if fault:
        faults.inject(fault)
    for k in order:
        document = finished(store, store.submit(problems[k], label=None, data={}))
        record = store.find(document["id"])
        answers.setdefault(k, []).append((record.status, store.document(record, with_answer=True).get("answer")))
    return answers


def test_answers_depend_on_the_problem_and_the_seed_not_on_the_submission_order(chimera):
    # A client's problems may reach the server in any order (dwave-cloud-client posts them from
    # five threads); a retried problem is submitted again after the others.
    rng = np.random.default_rng(6)
    problems = [ising_problem(chimera, rng.uniform(-1, 1, 14), rng.uniform(-1, 1, len(chimera.couplers)),
                              num_reads=20, answer_mode="raw", auto_scale=False) for _ in range(3)]
    runs = []
    for order, fault in [([0, 1, 2, 0], None), ([2, 0, 1, 0], None), ([0, 0, 2, 1, 0], "failed"),
                         ([1, 1, 0, 2, 0], "truncated")]:
        faults = Faults()
        store = ProblemStore(QPUEmulator(beta=1.0, sweeps=10), faults, seed=9, max_poll_wait=30.0)
        try:
            answers = answers_of(store, problems, order, faults, fault)
        finally:
            store.close()
        if fault:  # the first attempt lost its answer to the fault, the second got the answer it would have had
            status, answer = answers[order[0]].pop(0)
            assert status == ("FAILED" if fault == "failed" else "COMPLETED")
        assert all(status == "COMPLETED" for k in answers for status, _ in answers[k])
        runs.append({k: [answer for _, answer in answers[k]] for k in answers})
    assert all(run == runs[0] for run in runs[1:])
    assert runs[0][0][0] != runs[0][0][1]  # the same problem again: a fresh answer
