"""The exact QBM oracles against scipy.linalg.expm of the explicitly built Hamiltonian."""


import numpy as np
import pytest
from conftest import all_states, dense_hamiltonian, random_bm, random_rbm
from scipy.linalg import expm

import qvae_core as q


def reference(qbm):
    """(log Z, log<z|e^{-H}|z>, marginals, correlations, states) from expm of H = E - sum Gamma_l X_l."""
    H, S = dense_hamiltonian(qbm)
    diag = np.diag(expm(-H))
    z = diag.sum()
    p = diag / z
    return np.log(z), np.log(diag), p @ S, (S.T * p) @ S, S


def assert_matches_reference(qbm, atol=1e-10):
    lz, ld, marg, corr, S = reference(qbm)
    assert q.exact.log_z(qbm) == pytest.approx(lz, abs=atol)
    np.testing.assert_allclose(q.exact.log_diag(qbm, S), ld, atol=atol)
    np.testing.assert_allclose(q.exact.log_prob(qbm, S), ld - lz, atol=atol)
    np.testing.assert_allclose(q.exact.marginals(qbm), marg, atol=atol)
    np.testing.assert_allclose(q.exact.correlations(qbm), corr, atol=atol)


def dense_rbm_qbm():
    return q.QBM(random_rbm(2, 3, scale=1.2, bias_scale=0.8, seed=5), [0.7, 0.0, 1.3, 0.4, 2.0])


def dense_bm_qbm():
    return q.QBM(random_bm(6, p_edge=0.6, scale=1.5, seed=7), [0.5, 1.5, 0.0, 0.9, 2.5, 0.2])


def hidden_only_qbm():
    return q.QBM(random_rbm(3, 4, scale=1.5, seed=11), [0, 0, 0, 0.8, 0.0, 1.7, 0.3])


@pytest.mark.parametrize("make", [dense_rbm_qbm, dense_bm_qbm], ids=["rbm", "bm"])
def test_dense_diagonalisation_matches_expm(make):
    assert_matches_reference(make())


@pytest.mark.parametrize("c", [-2.0, 0.0, 1.5])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 3.0])
def test_single_unit_closed_form(c, gamma):
    qbm = q.QBM(q.BoltzmannMachine([c], np.zeros((0, 2), dtype=int), []), gamma)
    omega = np.hypot(c / 2, gamma)
    sinhc = np.sinh(omega) / omega if omega > 0 else 1.0
    diag = np.exp(c / 2) * (np.cosh(omega) + np.array([-1.0, 1.0]) * (c / 2) * sinhc)
    lz, ld, *_ = reference(qbm)
    assert np.log(np.exp(c / 2) * 2 * np.cosh(omega)) == pytest.approx(lz, abs=1e-12)
    np.testing.assert_allclose(np.log(diag), ld, atol=1e-12)
    assert_matches_reference(qbm, atol=1e-12)


def test_single_unit_is_stable_for_large_fields():
    for c in (-800.0, 800.0):
        qbm = q.QBM(q.BoltzmannMachine([c], np.zeros((0, 2), dtype=int), []), 1e-3)
        a, g = abs(c) / 2, 1e-3
        omega = np.hypot(a, g)
        # log<z|e^{-H}|z> = max(c, 0) + Gamma^2/(omega + a) + {0, log[Gamma^2 / (2 omega (omega + a))]}
        # for the lower / higher energy state, up to O(Gamma^2/omega^2) and O(e^{-800})
        low = max(c, 0.0) + g * g / (omega + a)
        high = low + np.log(g * g / (2 * omega * (omega + a)))
        ld = q.exact.log_diag(qbm, [[0], [1]])
        np.testing.assert_allclose(ld[int(c < 0)], high, rtol=1e-12)
        assert ld[int(c > 0)] == pytest.approx(low, abs=1e-11)
        assert q.exact.log_z(qbm) == pytest.approx(low, abs=1e-11)
    big = q.QBM(q.BoltzmannMachine([0.0, 3.0], np.zeros((0, 2), dtype=int), []), 500.0)  # the largest Gamma
    fields = np.array([0.0, 3.0])  # two independent qubits
    exact = [log_qubit_diag(fields, 500.0, np.array(z)).sum() for z in ((0, 0), (1, 1))]
    w = np.hypot(fields / 2, 500.0)
    log_z = np.sum(fields / 2 + w + np.log1p(np.exp(-2 * w)))
    np.testing.assert_allclose(q.exact.log_prob(big, [[0, 0], [1, 1]]), np.array(exact) - log_z, atol=1e-12)


def test_hidden_only_field_matches_expm_and_dense():
    qbm = hidden_only_qbm()
    assert_matches_reference(qbm)
    as_bm = q.QBM(qbm.model.to_boltzmann_machine(), qbm.gamma)  # no closed form: diagonalised
    S = all_states(qbm.num_units)
    assert q.exact.log_z(qbm) == pytest.approx(q.exact.log_z(as_bm), abs=1e-10)
    np.testing.assert_allclose(q.exact.log_diag(qbm, S), q.exact.log_diag(as_bm, S), atol=1e-10)
    np.testing.assert_allclose(q.exact.correlations(qbm), q.exact.correlations(as_bm), atol=1e-10)


def test_visible_only_field_matches_expm():
    assert_matches_reference(q.QBM(random_rbm(4, 3, scale=1.5, seed=12), [0.6, 0.0, 1.1, 2.0, 0, 0, 0]))


def log_qubit_diag(c, gamma, z):
    """log<z|e^{-H}|z> of one qubit H = -c z - Gamma X, cancellation-free: with a = c/2,
    w = hypot(a, Gamma), x = (2z - 1) a / w, it is a + w + log((1 + x)/2 + (1 - x)/2 e^{-2w}), where
    the smaller of 1 +- x is Gamma^2 / (w (w + |a|))."""
    a = c / 2
    w = np.hypot(a, gamma)
    big = 1 + np.abs(a) / w
    small = gamma**2 / (w * (w + np.abs(a)))
    along = (2 * z - 1) * a >= 0  # z on the side its field favours: 1 + x is the big one
    one_plus, one_minus = np.where(along, big, small), np.where(along, small, big)
    return a + w + np.log(one_plus / 2 + one_minus / 2 * np.exp(-2 * w))


def hidden_only_reference(rbm, gamma_hidden, states):
    """(log Z, log_diag(states)) of an RBM with Gamma on the hidden layer only, from the single-qubit
    closed forms given each visible state (Z = sum_v e^{a.v} prod_j 2 e^{c_j/2} cosh w_j, c = b + vW)."""
    V = all_states(rbm.num_visible).astype(float)
    c = rbm.hidden_bias + V @ rbm.weights
    w = np.hypot(c / 2, gamma_hidden)
    per_v = V @ rbm.visible_bias + np.sum(c / 2 + w + np.log1p(np.exp(-2 * w)), axis=1)
    log_z = per_v.max() + np.log(np.exp(per_v - per_v.max()).sum())
    v, h = states[:, : rbm.num_visible], states[:, rbm.num_visible :]
    c = rbm.hidden_bias + v @ rbm.weights
    return log_z, v @ rbm.visible_bias + log_qubit_diag(c, gamma_hidden, h).sum(axis=1)


def test_qubit_reference_agrees_with_expm():
    for c, gamma in ((-2.0, 0.5), (1.5, 3.0), (0.3, 1.0)):
        diag = np.diag(expm(np.array([[0.0, gamma], [gamma, c]])))  # -H in the basis (z=0, z=1)
        np.testing.assert_allclose(log_qubit_diag(c, gamma, np.array([0, 1])), np.log(diag), atol=1e-12)


def test_hidden_only_field_scales_to_large_hidden_layers():
    S = np.random.default_rng(0).integers(0, 2, (20, 210))
    gamma = np.linspace(0.0, 2.0, 200)
    for scale in (0.5, 100.0):  # fields of order 1, and fields of hundreds (no cancellation allowed)
        rbm = random_rbm(10, 200, scale=scale, bias_scale=min(scale, 0.5), seed=13)
        qbm = q.QBM(rbm, np.r_[np.zeros(10), gamma])
        log_z, log_diag = hidden_only_reference(rbm, gamma, S)
        assert q.exact.log_z(qbm) == pytest.approx(log_z, rel=1e-12, abs=1e-10)
        np.testing.assert_allclose(q.exact.log_diag(qbm, S), log_diag, rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(q.exact.log_prob(qbm, S), log_diag - log_z, rtol=1e-12, atol=1e-9)
        assert q.exact.log_z(rbm) <= log_z <= q.exact.log_z(rbm) + np.log(np.cosh(gamma)).sum()
        assert np.all(log_diag >= -rbm.energy(S) - 1e-9)
        marg, corr = q.exact.marginals(qbm), q.exact.correlations(qbm)
        assert marg.shape == (210,) and np.all((marg >= 0) & (marg <= 1))
        np.testing.assert_allclose(corr, corr.T, atol=1e-14)  # symmetric and diagonal = marginals by
        np.testing.assert_allclose(np.diag(corr), marg, atol=1e-14)  # construction: a guard on the layout


@pytest.mark.parametrize(
    "model",
    [
        q.RBM(np.zeros((2, 3)), [0.5, -1.0], [2.0, 0.0, -0.3]),
        q.BoltzmannMachine([0.4, -2.0, 1.0, 0.0], np.zeros((0, 2), dtype=int), []),
        q.BoltzmannMachine([0.4, -2.0, 1.0], [[0, 1], [1, 2]], [0.0, 0.0]),
    ],
    ids=["rbm", "bm-no-edges", "bm-zero-weights"],
)
def test_uncoupled_units_factorise(model):
    qbm = q.QBM(model, np.linspace(0.0, 1.5, model.num_units))
    assert_matches_reference(qbm)
    bias = np.r_[model.visible_bias, model.hidden_bias] if isinstance(model, q.RBM) else model.bias
    no_edges = np.zeros((0, 2), dtype=int)
    single = [q.QBM(q.BoltzmannMachine([b], no_edges, []), g) for b, g in zip(bias, qbm.gamma)]
    assert q.exact.log_z(qbm) == pytest.approx(sum(q.exact.log_z(s) for s in single), abs=1e-12)


@pytest.mark.parametrize(
    "model",
    [random_rbm(3, 4, seed=2), random_rbm(5, 2, seed=3), random_bm(6, p_edge=0.6, scale=1.5, seed=4)],
    ids=["rbm", "rbm-swapped", "bm"],
)
def test_zero_field_is_the_classical_model(model):
    qbm = q.QBM(model, 0.0)
    S = all_states(model.num_units)
    assert q.exact.log_z(qbm) == q.exact.log_z(model)
    np.testing.assert_array_equal(q.exact.marginals(qbm), q.exact.marginals(model))
    np.testing.assert_array_equal(q.exact.correlations(qbm), q.exact.correlations(model))
    np.testing.assert_array_equal(q.exact.log_prob(qbm, S), q.exact.log_prob(model, S))
    np.testing.assert_array_equal(q.exact.log_diag(qbm, S), -model.energy(S))


@pytest.mark.parametrize("make", [dense_rbm_qbm, dense_bm_qbm, hidden_only_qbm], ids=["rbm", "bm", "hidden"])
def test_bounds_and_normalisation(make):
    qbm = make()
    S = all_states(qbm.num_units)
    lz_q, lz_cl = q.exact.log_z(qbm), q.exact.log_z(qbm.model)
    assert lz_cl < lz_q <= lz_cl + np.log(np.cosh(qbm.gamma)).sum()
    assert np.all(q.exact.log_diag(qbm, S) >= -qbm.energy(S) - 1e-12)  # Golden-Thompson
    assert np.exp(q.exact.log_prob(qbm, S)).sum() == pytest.approx(1.0, abs=1e-12)


def test_refuses_large_coupled_qbm():
    with pytest.raises(ValueError, match="MAX_DIAGONALISED_UNITS = 12"):
        q.exact.log_z(q.QBM(random_rbm(6, 7), 0.5))
    chain = q.BoltzmannMachine(np.zeros(13), [(i, i + 1) for i in range(12)], np.ones(12))
    with pytest.raises(ValueError, match="MAX_DIAGONALISED_UNITS"):
        q.exact.marginals(q.QBM(chain, 0.5))


@pytest.mark.parametrize("fn", [q.exact.log_diag, q.exact.log_prob])
def test_rejects_bad_states(fn):
    qbm = dense_rbm_qbm()
    with pytest.raises(ValueError, match="states"):
        fn(qbm, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="states"):
        fn(qbm, [[0, 1, 2, 0, 1]])
    with pytest.raises(ValueError, match="model"):
        fn("not a model", [[0, 1]])
