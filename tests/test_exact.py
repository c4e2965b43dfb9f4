"""The exact oracles against brute-force enumeration of every state."""


import numpy as np
import pytest
from conftest import all_states, random_bm, random_rbm

import qvae_core as q


def energy(model, S):
    """E(z) written out from the parameters (not the compiled model the oracles use)."""
    S = S.astype(float)
    if isinstance(model, q.RBM):
        v, h = S[:, : model.num_visible], S[:, model.num_visible :]
        return -(v @ model.visible_bias + h @ model.hidden_bias + np.einsum("si,ij,sj->s", v, model.weights, h))
    i, j = model.edges.T
    return -(S @ model.bias + (S[:, i] * S[:, j]) @ model.weights)


def brute(model):
    S = all_states(model.num_units)
    logw = -energy(model, S)
    lz = np.logaddexp.reduce(logw)
    p = np.exp(logw - lz)
    return lz, p @ S, (S.T * p) @ S, S, logw - lz


def check_against_brute_force(model):
    lz, marg, corr, S, logp = brute(model)
    assert q.exact.log_z(model) == pytest.approx(lz, abs=1e-10)
    np.testing.assert_allclose(q.exact.marginals(model), marg, atol=1e-12)
    np.testing.assert_allclose(q.exact.correlations(model), corr, atol=1e-12)
    np.testing.assert_allclose(q.exact.log_prob(model, S), logp, atol=1e-10)


@pytest.mark.parametrize("nv, nh", [(3, 5), (5, 3), (4, 4), (1, 7)])
def test_rbm_exact_matches_brute_force(nv, nh):
    rbm = random_rbm(nv, nh, scale=1.5, seed=nv * 10 + nh)
    check_against_brute_force(rbm)


def test_bm_exact_matches_brute_force():
    bm = random_bm(7, p_edge=0.5, scale=2.0, seed=3)
    check_against_brute_force(bm)


def test_log_z_of_independent_units_is_closed_form():
    rbm = q.RBM(np.zeros((3, 200)), np.array([0.5, -1.0, 2.0]), np.linspace(-3, 3, 200))
    expected = np.logaddexp(0, rbm.visible_bias).sum() + np.logaddexp(0, rbm.hidden_bias).sum()
    assert q.exact.log_z(rbm) == pytest.approx(expected, abs=1e-9)


def test_enumeration_in_several_chunks():
    rbm = random_rbm(8, 8, scale=1.0, seed=4)
    bm = rbm.to_boltzmann_machine()  # 2^16 states in 4 chunks of 2^14, energies of the graph
    S = np.random.default_rng(0).integers(0, 2, (50, 16))
    assert q.exact.log_z(bm) == pytest.approx(q.exact.log_z(rbm), abs=1e-10)  # one layer summed out
    np.testing.assert_allclose(q.exact.marginals(bm), q.exact.marginals(rbm), atol=1e-12)
    np.testing.assert_allclose(q.exact.correlations(bm), q.exact.correlations(rbm), atol=1e-12)
    np.testing.assert_allclose(q.exact.log_prob(bm, S), q.exact.log_prob(rbm, S), atol=1e-10)


def test_large_rbm_enumerates_only_the_small_layer():
    rbm = random_rbm(12, 300, scale=0.3, seed=1)  # 2^12 terms although n = 312
    swapped = q.RBM(rbm.weights.T, rbm.hidden_bias, rbm.visible_bias)  # the same machine, layers swapped
    order = np.r_[np.arange(12, 312), np.arange(12)]  # swapped's units in rbm's numbering
    assert q.exact.log_z(rbm) == pytest.approx(q.exact.log_z(swapped), abs=1e-9)
    np.testing.assert_allclose(q.exact.marginals(rbm)[order], q.exact.marginals(swapped), atol=1e-12)
    np.testing.assert_allclose(q.exact.correlations(rbm)[np.ix_(order, order)], q.exact.correlations(swapped),
                               atol=1e-12)


def test_refuses_too_many_units():
    with pytest.raises(ValueError, match="MAX_ENUMERATED_UNITS"):
        q.exact.log_z(random_rbm(25, 30))
    bm = q.BoltzmannMachine(np.zeros(25), np.zeros((0, 2), dtype=int), [])
    with pytest.raises(ValueError, match="MAX_ENUMERATED_UNITS"):
        q.exact.marginals(bm)


def test_rejects_other_models():
    with pytest.raises(ValueError, match="model"):
        q.exact.log_z("not a model")
