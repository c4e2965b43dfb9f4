"""Shared helpers for statistical tests: k-sigma comparisons against exact values."""

from __future__ import annotations

import _thread
import base64
import threading
import time
from itertools import product

import numpy as np
import pytest

import qvae_core as q

# Number of standard errors allowed per compared quantity. With a few hundred comparisons per
# test, 5 sigma keeps the false-alarm probability of a correct sampler below 1e-4 per test.
K_SIGMA = 5.0


def assert_within_sigma(estimate, exact, n_samples, name, *, k=K_SIGMA):
    """|estimate - exact| <= k * SE for Bernoulli means, SE = sqrt(p(1-p)/N) (p floored at 1/N)."""
    estimate, exact = np.asarray(estimate, float), np.asarray(exact, float)
    var = np.maximum(exact * (1.0 - exact), 1.0 / n_samples)
    se = np.sqrt(var / n_samples)
    z = np.abs(estimate - exact) / se
    worst = np.unravel_index(np.argmax(z), z.shape)
    assert z.max() <= k, (
        f"{name}: worst deviation {z.max():.2f} SE at {worst}: "
        f"estimate {estimate[worst]:.5f} vs exact {exact[worst]:.5f} (N={n_samples})"
    )


def assert_log_z(estimate, std, exact, *, cap, k=K_SIGMA):
    """An annealing log Z within `cap` nats of the exact value (the issues' bars: 0.03 for QBMs,
    0.05 otherwise) and within k of its reported SE.

    `std` comes from 10 sub-populations, so err/std is t-distributed with 9 dof: k = 5 is a
    false-alarm rate of 7e-4 per comparison (not the normal 6e-7), k = 4 (some tests) 3e-3. That
    the SE itself is right is checked apart, against the spread over seeds (test_annealing)."""
    err = estimate - exact
    assert abs(err) <= cap, f"log Z off by {err:.4f} (SE {std:.4f}), more than {cap}"
    assert abs(err) <= k * std, f"log Z off by {err / std:.1f} SE"


def pooled_se(se):
    """One standard error for a batch of log_diag estimates: the RMS of their per-state SEs."""
    return float(np.sqrt(np.mean(np.asarray(se) ** 2)))


def assert_log_diag(estimate, se, exact, *, cap=0.05, k=K_SIGMA):
    """Every log_diag estimate within `cap` nats of exact and within k standard errors pooled over
    the batch (each state's SE comes from 10 sub-populations: t-distributed with 9 dof, too noisy
    alone for a k-sigma check)."""
    err = np.asarray(estimate) - np.asarray(exact)
    pooled = pooled_se(se)
    assert np.all(np.abs(err) <= cap), err
    assert np.all(np.abs(err) <= k * pooled), err / pooled


def assert_same_checkpoint(actual, expected):
    """Two sampler checkpoints hold the same arrays under the same keys."""
    assert actual.keys() == expected.keys()
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


def all_states(n):
    """All 2^n binary states, (2^n, n) uint8, the first unit most significant."""
    return np.array(list(product([0, 1], repeat=n)), dtype=np.uint8)


def ising_energy(h, edges, J, spins, offset=0.0):
    """sum_i h_i s_i + sum_k J_k s_{i_k} s_{j_k} + offset for each row of `spins` (+-1)."""
    s = np.asarray(spins, dtype=float)
    return s @ h + (s[:, edges[:, 0]] * s[:, edges[:, 1]]) @ J + offset


def dense_hamiltonian(qbm):
    """(H, S): H = E(z) - sum_l Gamma_l X_l as a dense matrix on the basis S = all_states(n), built
    from the definition (X_l flips unit l, which is bit n - 1 - l of the basis index)."""
    n = qbm.num_units
    S = all_states(n)
    H = np.diag(qbm.model.energy(S))
    index = np.arange(2**n)
    for l, g in enumerate(qbm.gamma):
        H[index, index ^ (1 << (n - 1 - l))] -= g
    return H, S


def assert_interrupted_quickly(call, *, within=1.0):
    """Ctrl-C 0.3 s into `call` raises KeyboardInterrupt out of it within `within` seconds."""
    timer = threading.Timer(0.3, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            call()
    finally:
        timer.cancel()
    late = time.perf_counter() - start - 0.3
    assert late < within, f"stopped {late:.2f} s after Ctrl-C"


def local_solvers():
    """The simulated QPU solvers the SAPI server tests serve: Chimera with two inactive qubits,
    Pegasus and Zephyr."""
    from qvae_core import dwave as qd

    return [qd.qpu_solver("chimera", (1, 2), inactive_qubits=[3, 12]), qd.qpu_solver("pegasus", 2),
            qd.qpu_solver("zephyr", (1, 2))]


def qp_job(solver, linear, quadratic, *, type="ising", **params):
    """A SAPI job for a LocalSolver in the qp format, as dwave-cloud-client encodes it: `linear` by
    qubit label, `quadratic` by label pair (couplers among the used qubits left out are 0)."""
    lin = np.array([linear.get(int(v), np.nan) for v in solver.qubits])
    used = ~np.isnan(lin)
    pairs = solver.qubits[solver.couplers]
    quad = [quadratic.get((int(a), int(b)), quadratic.get((int(b), int(a)), 0.0))
            for (a, b), k in zip(pairs, solver.couplers) if used[k].all()]
    data = {"format": "qp", "lin": base64.b64encode(lin.astype("<f8").tobytes()).decode(),
            "quad": base64.b64encode(np.asarray(quad, "<f8").tobytes()).decode()}
    return {"solver": solver.name, "type": type, "data": data, "params": params}


def random_bm(n, *, p_edge, scale=1.0, bias_scale=1.0, seed=0):
    """A BoltzmannMachine with each pair coupled with probability p_edge, weights N(0, scale^2)."""
    rng = np.random.default_rng(seed)
    edges = np.array([(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < p_edge])
    return q.BoltzmannMachine(rng.normal(0, bias_scale, n), edges.reshape(-1, 2), rng.normal(0, scale, len(edges)))


def random_rbm(nv, nh, *, scale=1.0, bias_scale=0.5, seed=0):
    rng = np.random.default_rng(seed)
    return q.RBM(rng.normal(0, scale, (nv, nh)), rng.normal(0, bias_scale, nv), rng.normal(0, bias_scale, nh))


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    """Requests to the local SAPI server stay on loopback even where a proxy is configured."""
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
