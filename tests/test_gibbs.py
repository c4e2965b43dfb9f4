"""Block-Gibbs chains against the exact distribution, reproducibility, Ctrl-C, bad input."""

import numpy as np
import pytest
from conftest import assert_interrupted_quickly, assert_same_checkpoint, assert_within_sigma, random_bm, random_rbm

import qvae_core as q

NUM_CHAINS = 20010  # independent chains: their final states are independent samples; even, and 10 past
# a multiple of the 16-chain chunks, so the last chunk is partial


def check_against_exact(model, sampler_kwargs, burn_in):
    sampler = q.GibbsSampler(model, NUM_CHAINS, **sampler_kwargs)
    S = sampler.run(burn_in).astype(float)
    assert_within_sigma(S.mean(axis=0), q.exact.marginals(model), NUM_CHAINS, "marginals")
    assert_within_sigma(S.T @ S / NUM_CHAINS, q.exact.correlations(model), NUM_CHAINS, "correlations")


@pytest.mark.parametrize("nv, nh, scale", [(6, 4, 1.0), (5, 9, 1.0), (8, 8, 0.6), (3, 40, 0.5)])
def test_rbm_samples_match_exact(nv, nh, scale):
    check_against_exact(random_rbm(nv, nh, scale=scale, seed=nv + nh), {"seed": 11}, burn_in=300)


@pytest.mark.parametrize("nv, nh", [(70, 45), (33, 100)])
def test_one_sweep_draws_the_exact_conditionals(nv, nh):
    """Layers too large to enumerate, spanning several packed words and partial tiles: from a fixed
    state, a sweep draws h ~ p(h|v0) = sigmoid(b + v0 W), then v ~ p(v|h) = sigmoid(a + W h).
    Chains alternate between two start states, checked apart, so a chain reading another's
    layer would fail."""
    rbm = random_rbm(nv, nh, scale=0.4, seed=nv)
    starts = np.random.default_rng(nh).integers(0, 2, (2, nv + nh), dtype=np.uint8)
    S = q.GibbsSampler(rbm, NUM_CHAINS, seed=2, initial_state=np.tile(starts, (NUM_CHAINS // 2, 1))).run(1)
    sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    n = NUM_CHAINS // 2
    for group, start in enumerate(starts):
        v, h = S[group::2, :nv].astype(float), S[group::2, nv:].astype(float)
        assert_within_sigma(h.mean(axis=0), sigmoid(rbm.hidden_bias + start[:nv] @ rbm.weights), n, "h")
        # Each v_c is Bernoulli(p_c) given its h_c: v - p averages to zero with variance below p(1-p)/N.
        p = sigmoid(rbm.visible_bias + h @ rbm.weights.T)
        assert_within_sigma(v.mean(axis=0), p.mean(axis=0), n, "v")


def test_chimera_bm_with_strong_couplings_matches_exact():
    pytest.importorskip("dwave_networkx")
    topo = q.graphs.chimera(1, 2)  # 16 units, K_{4,4} cells joined by inter-cell couplers
    bm = q.graphs.random_boltzmann_machine(topo, weight_scale=1.5, bias_scale=0.5, seed=3)
    assert bm.num_colors == 2
    check_against_exact(bm, {"seed": 5}, burn_in=1000)


def _dense_graph_bm():
    """Not bipartite."""
    return random_bm(10, p_edge=0.4, bias_scale=0.5, seed=9)


def test_non_bipartite_bm_matches_exact():
    bm = _dense_graph_bm()
    assert bm.num_colors > 2
    check_against_exact(bm, {"seed": 6}, burn_in=500)


def test_gibbs_detects_a_wrong_distribution():
    """The statistical check has power: samples of one model fail against another model."""
    rbm = random_rbm(6, 4, seed=10)
    other = q.RBM(rbm.weights, rbm.visible_bias + 0.3, rbm.hidden_bias)
    S = q.GibbsSampler(rbm, NUM_CHAINS, seed=1).run(300).astype(float)
    with pytest.raises(AssertionError):
        assert_within_sigma(S.mean(axis=0), q.exact.marginals(other), NUM_CHAINS, "marginals")


@pytest.mark.parametrize(
    "model",
    [random_rbm(37, 45, seed=1), random_rbm(5, 200, seed=2)],
    ids=["rbm", "rbm-wide"],
)
def test_same_seed_same_states_for_any_thread_count(model):
    runs = []
    for threads in (1, 2, 2, None):
        s = q.GibbsSampler(model, 77, seed=42, num_threads=threads)
        s.run(3)
        runs.append(s.run(20))
    for other in runs[1:]:
        np.testing.assert_array_equal(runs[0], other)
    different = q.GibbsSampler(model, 77, seed=43).run(23)
    assert not np.array_equal(runs[0], different)


def test_graph_same_seed_same_states_for_any_thread_count():
    bm = random_bm(40, p_edge=0.1, seed=0)
    a = q.GibbsSampler(bm, 50, seed=7, num_threads=1).run(30)
    b = q.GibbsSampler(bm, 50, seed=7, num_threads=2).run(30)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, q.GibbsSampler(bm, 50, seed=8).run(30))


def test_runs_compose_and_state_persists():
    rbm = random_rbm(10, 12, seed=4)
    a = q.GibbsSampler(rbm, 33, seed=1)
    a.run(5)
    a.run(7)
    b = q.GibbsSampler(rbm, 33, seed=1)
    np.testing.assert_array_equal(a.state, b.run(12))
    assert a.run(0).shape == (33, 22)
    np.testing.assert_array_equal(a.run(0), a.state)


def test_initial_state_is_used_and_not_modified():
    rbm = q.RBM(np.zeros((3, 2)), np.full(3, -30.0), np.full(2, 30.0))
    init = np.ones((4, 5), dtype=np.uint8)
    s = q.GibbsSampler(rbm, 4, seed=0, initial_state=init)
    np.testing.assert_array_equal(s.state, init)
    np.testing.assert_array_equal(s.run(1), np.tile([0, 0, 0, 1, 1], (4, 1)))
    assert init.sum() == 20
    bm = rbm.to_boltzmann_machine()
    g = q.GibbsSampler(bm, 4, seed=0, initial_state=init.astype(bool))
    np.testing.assert_array_equal(g.state, init)


def test_set_model_continues_the_chains():
    rbm = random_rbm(4, 4, seed=1)
    s = q.GibbsSampler(rbm, 10, seed=0)
    s.run(3)
    s.set_model(q.RBM(np.zeros((4, 4)), np.full(4, 40.0), np.full(4, -40.0)))
    np.testing.assert_array_equal(s.run(1), np.tile([1] * 4 + [0] * 4, (10, 1)))
    with pytest.raises(ValueError, match="model"):
        s.set_model(random_rbm(5, 3))


@pytest.mark.parametrize("model", [random_rbm(64, 64), random_bm(200, p_edge=0.05)], ids=["rbm", "graph"])
def test_ctrl_c_stops_a_long_run_quickly(model):
    sampler = q.GibbsSampler(model, 1000, seed=0)
    assert_interrupted_quickly(lambda: sampler.run(10**9))
    assert sampler.state.shape == (1000, model.num_units)  # chains are intact and usable
    sampler.run(1)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_chains": 0}, "num_chains"),
        ({"num_chains": -3}, "num_chains"),
        ({"num_chains": 2**62}, "num_chains: .* 1 TiB"),  # named, not a failed allocation
        ({"num_chains": 2.5}, "num_chains"),
        ({"num_chains": 2, "initial_state": np.full((2, 5), 2)}, "initial_state"),
        ({"num_chains": 2, "initial_state": np.zeros((3, 5))}, "initial_state"),
        ({"num_chains": 2, "initial_state": np.zeros((2, 4))}, "initial_state"),
        ({"num_chains": 2, "seed": -1}, "seed"),
        ({"num_chains": 2, "seed": 1.5}, "seed"),
        ({"num_chains": 2, "num_threads": 0}, "num_threads"),
    ],
)
def test_sampler_bad_input(kwargs, name):
    rbm = random_rbm(2, 3)
    num_chains = kwargs.pop("num_chains")
    with pytest.raises(ValueError, match=name):
        q.GibbsSampler(rbm, num_chains, **kwargs)


def test_run_bad_input_and_model_type():
    s = q.GibbsSampler(random_rbm(2, 3), 2, seed=0)
    for bad in (-1, 1.5, "3", 2**70):
        with pytest.raises(ValueError, match="num_sweeps"):
            s.run(bad)
    with pytest.raises(ValueError, match="model"):
        q.GibbsSampler(np.zeros((2, 2)), 2)


@pytest.mark.parametrize("model", [random_rbm(5, 7, seed=3), _dense_graph_bm()], ids=["rbm", "graph"])
def test_checkpoint_restore_continues_exactly(model, tmp_path):
    """A sampler restored from a checkpoint (through an .npz file, under another seed) draws exactly
    what the checkpointed one draws next; the checkpoint is not modified."""
    a = q.GibbsSampler(model, 40, seed=1)
    a.run(3)
    np.savez(tmp_path / "chains.npz", **a.checkpoint())
    expected = [a.run(5), a.run(2)]
    b = q.GibbsSampler(model, 40, seed=99)
    with np.load(tmp_path / "chains.npz") as saved:
        checkpoint = dict(saved)
    copy = {k: v.copy() for k, v in checkpoint.items()}
    b.restore(checkpoint)
    np.testing.assert_array_equal(b.run(5), expected[0])
    np.testing.assert_array_equal(b.run(2), expected[1])
    assert_same_checkpoint(checkpoint, copy)  # restore does not modify its input


def test_checkpoint_bad_input():
    sampler = q.GibbsSampler(random_rbm(3, 4), 20, seed=0)
    good = sampler.checkpoint()
    sampler.run(3)  # now unlike `good`, so a restore that wrote part of a bad checkpoint would show
    current = sampler.checkpoint()
    zero_lane = good["streams"].copy()
    zero_lane[0, [0, 16, 32, 48]] = 0  # lane 0 of stream 0: all four state words
    cases = [
        ([1, 2], "mapping"),
        ({"state": good["state"]}, "missing streams"),
        ({**good, "state": good["state"][:5]}, "state"),
        ({**good, "state": good["state"] * 2}, "state"),
        ({**good, "streams": good["streams"][:1]}, "streams"),
        ({**good, "streams": good["streams"].astype(np.int64) - 2**40}, "streams"),
        ({**good, "streams": good["streams"].astype(float)}, "streams"),
        ({**good, "streams": zero_lane}, "all zero"),
    ]
    for checkpoint, message in cases:
        with pytest.raises(ValueError, match=message):
            sampler.restore(checkpoint)
    assert_same_checkpoint(sampler.checkpoint(), current)  # a failed restore changes nothing
