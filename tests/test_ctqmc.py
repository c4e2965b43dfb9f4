"""Continuous-time QMC against exact diagonalisation and closed forms (docs/conventions.md)."""

import threading

import numpy as np
import pytest
from scipy.stats import chi2
from conftest import (
    K_SIGMA, all_states, assert_interrupted_quickly, assert_log_diag, assert_log_z, assert_same_checkpoint,
    assert_within_sigma, dense_hamiltonian, pooled_se, random_bm, random_rbm,
)

import qvae_core as q

NUM_CHAINS = 20010  # even, and 10 past a multiple of the 16-chain chunks: the last chunk is partial


def random_qbm(nv, nh, gamma, seed, *, zero_gamma_unit=True):
    rbm = random_rbm(nv, nh, scale=1.0, bias_scale=1.0, seed=seed)
    g = np.full(nv + nh, float(gamma))
    if zero_gamma_unit:
        g[1] = 0.0  # units without a field are common in practice
    return q.QBM(rbm, g)


def dense_sigma_x(qbm):
    """<sigma^x_l> = Tr(rho X_l) for every unit, rho = e^{-H}/Z by dense diagonalisation."""
    H, _ = dense_hamiltonian(qbm)
    n = qbm.num_units
    lam, U = np.linalg.eigh(H)
    rho = (U * np.exp(-(lam - lam.min()))) @ U.T
    rho /= np.trace(rho)
    index = np.arange(2**n)
    return np.array([rho[index, index ^ (1 << (n - 1 - l))].sum() for l in range(n)])


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0])
def test_tau0_samples_match_exact_diagonalisation(gamma):
    qbm = random_qbm(4, 5, gamma, seed=int(gamma * 10))
    sampler = q.PathIntegralSampler(qbm, NUM_CHAINS, seed=1)
    S = sampler.run(200).astype(float)
    assert_within_sigma(S.mean(axis=0), q.exact.marginals(qbm), NUM_CHAINS, "marginals")
    assert_within_sigma(S.T @ S / NUM_CHAINS, q.exact.correlations(qbm), NUM_CHAINS, "correlations")


def test_kink_density_is_gamma_times_sigma_x():
    qbm = random_qbm(3, 4, 1.0, seed=3)
    sampler = q.PathIntegralSampler(qbm, NUM_CHAINS, seed=2)
    sampler.run(200)
    kinks = sampler.kink_counts.astype(float)
    expected = qbm.gamma * np.abs(dense_sigma_x(qbm))
    se = kinks.std(axis=0) / np.sqrt(NUM_CHAINS) + 1e-12
    assert np.all(np.abs(kinks.mean(axis=0) - expected) <= K_SIGMA * se), (kinks.mean(axis=0), expected)
    assert np.all(kinks[:, 1] == 0) and np.all(kinks % 2 == 0)  # no field, no kinks; periodic


def test_samples_detect_a_wrong_gamma():
    qbm = random_qbm(4, 5, 1.0, seed=4)
    S = q.PathIntegralSampler(qbm, NUM_CHAINS, seed=3).run(200).astype(float)
    other = q.QBM(qbm.model, qbm.gamma * 1.3)
    with pytest.raises(AssertionError):
        assert_within_sigma(S.mean(axis=0), q.exact.marginals(other), NUM_CHAINS, "marginals")


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0])
def test_quantum_log_z_matches_exact(gamma):
    qbm = random_qbm(5, 5, gamma, seed=int(gamma * 100))
    exact = q.exact.log_z(qbm)
    res = q.anneal(qbm, seed=5)
    assert_log_z(res.log_z, res.log_z_std, exact, cap=0.03)
    assert res.mean_kinks_per_unit > 0


def test_log_diag_matches_exact_for_random_and_high_energy_states():
    qbm = random_qbm(4, 5, 1.0, seed=7)
    S = all_states(9)
    E = qbm.energy(S)
    rng = np.random.default_rng(0)
    pick = np.concatenate([rng.choice(len(S), 6, replace=False), np.argsort(E)[-4:]])  # + highest energies
    est, se = q.log_diag(qbm, S[pick], seed=8)
    exact = q.exact.log_diag(qbm, S[pick])
    assert_log_diag(est, se, exact)
    assert np.all(est >= -E[pick] - 3 * pooled_se(se))  # Golden-Thompson: <z|e^{-H}|z> >= e^{-E(z)}


def test_factorised_large_qbm_is_exact():
    """W = 0: every unit is one qubit, so log Z and log_diag have closed forms at any size."""
    rng = np.random.default_rng(9)
    nv, nh = 40, 60
    rbm = q.RBM(np.zeros((nv, nh)), rng.normal(0, 1, nv), rng.normal(0, 1, nh))
    qbm = q.QBM(rbm, rng.uniform(0, 2, nv + nh))
    res = q.anneal(qbm, seed=1)
    assert_log_z(res.log_z, res.log_z_std, q.exact.log_z(qbm), cap=0.03, k=4)
    states = rng.integers(0, 2, (3, nv + nh), dtype=np.uint8)
    est, se = q.log_diag(qbm, states, seed=2)
    assert_log_diag(est, se, q.exact.log_diag(qbm, states))
    S = q.PathIntegralSampler(qbm, 4000, seed=3).run(100).astype(float)
    assert_within_sigma(S.mean(axis=0), q.exact.marginals(qbm), 4000, "marginals")


def test_gamma_on_hidden_layer_only_is_exact_at_10x200():
    rbm = random_rbm(10, 200, scale=0.3, bias_scale=0.5, seed=10)
    qbm = q.QBM(rbm, np.r_[np.zeros(10), np.full(200, 1.0)])
    res = q.anneal(qbm, seed=3)
    exact = q.exact.log_z(qbm)
    assert_log_z(res.log_z, res.log_z_std, exact, cap=0.05)
    states = q.PathIntegralSampler(qbm, 5, seed=4).run(50)
    est, se = q.log_diag(qbm, states, seed=5)
    assert_log_diag(est, se, q.exact.log_diag(qbm, states))


@pytest.mark.parametrize("model", [random_rbm(5, 6, seed=11), random_bm(10, p_edge=0.4, seed=11)], ids=["rbm", "graph"])
def test_gamma_zero_reproduces_the_classical_model(model):
    qbm = q.QBM(model, 0.0)
    res = q.anneal(qbm, seed=6)
    assert_log_z(res.log_z, res.log_z_std, q.exact.log_z(model), cap=0.03, k=4)
    sampler = q.PathIntegralSampler(qbm, NUM_CHAINS, seed=7)
    S = sampler.run(100).astype(float)
    assert sampler.mean_kinks_per_unit == 0.0 and res.mean_kinks_per_unit == 0.0
    assert_within_sigma(S.mean(axis=0), q.exact.marginals(model), NUM_CHAINS, "marginals")
    assert_within_sigma(S.T @ S / NUM_CHAINS, q.exact.correlations(model), NUM_CHAINS, "correlations")
    states = S[:4].astype(np.uint8)
    est, _ = q.log_diag(qbm, states, seed=1)
    np.testing.assert_array_equal(est, -model.energy(states))  # no kinks: exactly -E(z)


def test_reported_log_diag_errors_are_calibrated():
    """Over 64 states the RMS error of log_diag matches the RMS of its reported SEs: the ratio lies
    in the chi^2_64 band of false-alarm rate 2e-4 (a 3x too large or too small SE fails)."""
    qbm = random_qbm(4, 5, 1.0, seed=7)
    S = all_states(9)[::8]
    est, se = q.log_diag(qbm, S, seed=9)
    ratio = np.sqrt(np.mean((est - q.exact.log_diag(qbm, S)) ** 2) / np.mean(se**2))
    lo, hi = np.sqrt(chi2.ppf([1e-4, 1 - 1e-4], len(S)) / len(S))
    assert lo <= ratio <= hi, (ratio, lo, hi)


def test_log_z_within_the_quantum_bounds():
    qbm = random_qbm(6, 8, 1.0, seed=12, zero_gamma_unit=False)
    classical = q.exact.log_z(qbm.model)
    res = q.anneal(qbm, seed=9)
    upper = classical + np.log(np.cosh(qbm.gamma)).sum()
    assert classical - 3 * res.log_z_std <= res.log_z <= upper + 3 * res.log_z_std


def test_reproducible_for_any_thread_count():
    qbm = random_qbm(7, 9, 1.0, seed=13)
    a = q.PathIntegralSampler(qbm, 37, seed=3, num_threads=1).run(20)
    b = q.PathIntegralSampler(qbm, 37, seed=3, num_threads=2).run(20)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, q.PathIntegralSampler(qbm, 37, seed=4).run(20))
    r1 = q.anneal(qbm, population=100, seed=1, num_threads=1)
    r2 = q.anneal(qbm, population=100, seed=1, num_threads=2)
    assert r1.log_z == r2.log_z
    np.testing.assert_array_equal(r1.samples, r2.samples)
    states = a[:3]
    d1, _ = q.log_diag(qbm, states, population=50, seed=2, num_threads=1)
    d2, _ = q.log_diag(qbm, states, population=50, seed=2, num_threads=2)
    np.testing.assert_array_equal(d1, d2)


def test_initial_state_and_set_model():
    qbm = q.QBM(q.RBM(np.zeros((2, 3)), np.full(2, 40.0), np.full(3, -40.0)), 0.0)
    init = np.zeros((4, 5), dtype=np.uint8)
    s = q.PathIntegralSampler(qbm, 4, seed=0, initial_state=init)
    np.testing.assert_array_equal(s.state, init)
    np.testing.assert_array_equal(s.run(1), np.tile([1, 1, 0, 0, 0], (4, 1)))
    s.set_model(q.QBM(q.RBM(np.zeros((2, 3)), np.full(2, -40.0), np.full(3, 40.0)), 0.0))
    np.testing.assert_array_equal(s.run(1), np.tile([0, 0, 1, 1, 1], (4, 1)))
    with pytest.raises(ValueError, match="qbm"):
        s.set_model(q.QBM(random_rbm(3, 3), 1.0))


@pytest.mark.parametrize("model", [random_rbm(64, 64, scale=0.1), random_bm(128, p_edge=0.05, scale=0.3)],
                         ids=["rbm", "graph"])
def test_ctrl_c_stops_sampling_and_log_diag(model):
    qbm = q.QBM(model, 1.0)
    sampler = q.PathIntegralSampler(qbm, 1000, seed=0)
    assert_interrupted_quickly(lambda: sampler.run(10**9))
    assert_interrupted_quickly(lambda: q.log_diag(qbm, np.zeros((50, 128)), population=2000, seed=0))


def test_calls_from_several_threads_wait_for_each_other():
    """`run` releases the GIL. A checkpoint taken meanwhile from another thread waits for the run
    instead of reading worldlines in the middle of a sweep (that crashed). And a sampler's energy
    integrals, which use the thread pool, can be read while a log_diag holds it in another thread."""
    qbm = q.QBM(random_rbm(16, 16, scale=0.3), 20.0)  # many kinks: lists reallocated every sweep
    sampler = q.PathIntegralSampler(qbm, 64, seed=1, num_threads=1)
    sampler.run(1)
    before = sampler.checkpoint()
    taken, errors, finished = [], [], threading.Event()

    def checkpoints():  # as many as it can until the run has finished (unserialised: hundreds, mid-sweep)
        try:
            while not finished.is_set():
                taken.append(sampler.checkpoint())
        except Exception as exc:  # noqa: BLE001 - any error fails the test below
            errors.append(exc)

    reader = threading.Thread(target=checkpoints)
    reader.start()
    sampler.run(300)
    finished.set()
    reader.join(timeout=60)
    assert not reader.is_alive() and not errors and taken
    after = sampler.checkpoint()
    for checkpoint in taken:  # each taken before the run or after it, never in the middle of a sweep
        same = [all(np.array_equal(checkpoint[key], whole[key]) for key in whole) for whole in (before, after)]
        assert any(same), "a checkpoint taken during the run"

    small = q.PathIntegralSampler(q.QBM(random_rbm(3, 3), 1.0), 8, seed=2)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (q.log_diag(qbm, np.zeros((64, 32)), population=50, seed=3),
                                              done.set()))
    worker.start()
    while not done.is_set() and worker.is_alive():
        small.energy_integrals  # noqa: B018 - the read is the test
    worker.join(timeout=60)
    assert done.is_set(), "log_diag deadlocked with energy_integrals"


@pytest.mark.parametrize(
    "gamma",
    [-0.5, np.nan, np.inf, np.ones(3), np.ones((2, 8)), [0.5] * 6 + [-1.0, 0.5], 500.5, np.full(8, 1 + 1j), "1"],
    ids=["negative", "nan", "inf", "length", "rank", "one-negative", "above-500", "complex", "string"],
)
def test_bad_gamma(gamma):
    with pytest.raises(ValueError, match="gamma"):
        q.QBM(random_rbm(4, 4), gamma)


def test_gamma_at_its_bound_starts_from_the_exact_reference():
    """At Gamma = 500 (the largest allowed) the reference start draws Poisson(Gamma) kinks conditioned
    on even per unit (e^{-Gamma} must not underflow): ~Gamma per unit, with variance Gamma; one
    resampling step to the (weakly coupled) model leaves 2000 / rho independent paths of 2 units."""
    res = q.anneal(q.QBM(random_rbm(1, 1, scale=0.1, bias_scale=0.1), 500.0), population=2000, num_subpopulations=1,
                   sweeps_per_step=0, schedule=[1.0], seed=0)
    se = np.sqrt(500.0 / (2 * 2000 / res.rho[-1]))
    assert abs(res.mean_kinks_per_unit - 500.0) <= K_SIGMA * se


def test_bad_states_and_arguments():
    qbm = q.QBM(random_rbm(2, 3), 1.0)
    for states in (np.zeros((2, 4)), np.full((1, 5), 2), np.full((1, 5), 0.5)):
        with pytest.raises(ValueError, match="states"):
            q.log_diag(qbm, states)
    with pytest.raises(ValueError, match="qbm"):
        q.log_diag(qbm.model, np.zeros((1, 5)))
    with pytest.raises(ValueError, match="population"):
        q.log_diag(qbm, np.zeros((1, 5)), population=1)
    with pytest.raises(ValueError, match="qbm"):
        q.PathIntegralSampler(qbm.model, 10)
    with pytest.raises(ValueError, match="num_chains"):
        q.PathIntegralSampler(qbm, 0)
    with pytest.raises(ValueError, match="initial_state"):
        q.PathIntegralSampler(qbm, 2, initial_state=np.full((2, 5), 3))
    # the compiled layer refuses non-binary bytes itself (its kernels index tables with them)
    with pytest.raises(ValueError, match="initial_state: values must be 0 or 1"):
        q._core.QmcRbmChains(qbm._compiled, 2, 0, np.full((2, 5), 3, dtype=np.uint8))
    with pytest.raises(ValueError, match="states: values must be 0 or 1"):
        q._core.log_diag_qmc_rbm(qbm._compiled, np.full((1, 5), 2, dtype=np.uint8), 10, 0, 5, 0.999, 2, 100, 1)
    with pytest.raises(ValueError, match="model"):
        q.QBM("rbm", 1.0)


def random_graph_qbm(kind, gamma, seed):
    if kind == "chimera":
        pytest.importorskip("dwave_networkx")
        bm = q.graphs.random_boltzmann_machine(q.graphs.chimera(1, 1), weight_scale=1.0, bias_scale=1.0, seed=seed)
    else:
        bm = random_bm(9, p_edge=0.4, seed=seed)
    g = np.full(bm.num_units, float(gamma))
    g[0] = 0.0
    return q.QBM(bm, g)


@pytest.mark.parametrize("kind", ["chimera", "dense-graph"])
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_graph_qbm_matches_exact(kind, gamma):
    qbm = random_graph_qbm(kind, gamma, seed=int(10 * gamma))
    assert qbm.model.num_colors == (2 if kind == "chimera" else 3)
    S = q.PathIntegralSampler(qbm, NUM_CHAINS, seed=1).run(200).astype(float)
    assert_within_sigma(S.mean(axis=0), q.exact.marginals(qbm), NUM_CHAINS, "marginals")
    assert_within_sigma(S.T @ S / NUM_CHAINS, q.exact.correlations(qbm), NUM_CHAINS, "correlations")
    res = q.anneal(qbm, seed=2)
    exact = q.exact.log_z(qbm)
    assert_log_z(res.log_z, res.log_z_std, exact, cap=0.03)
    states = S[:4].astype(np.uint8)
    est, se = q.log_diag(qbm, states, seed=3)
    assert_log_diag(est, se, q.exact.log_diag(qbm, states))


def test_graph_qbm_without_edges_is_one_block_and_exact():
    """No edges: one colour class, so one block whose sources are the empty set of other kinks."""
    rng = np.random.default_rng(12)
    bm = q.BoltzmannMachine(rng.normal(0, 1, 5), np.zeros((0, 2), dtype=np.int64), np.zeros(0))
    qbm = q.QBM(bm, [1.0, 0.5, 0.0, 2.0, 1.0])
    assert bm.num_colors == 1
    S = q.PathIntegralSampler(qbm, NUM_CHAINS, seed=1).run(100).astype(float)
    assert_within_sigma(S.mean(axis=0), q.exact.marginals(qbm), NUM_CHAINS, "marginals")
    assert_within_sigma(S.T @ S / NUM_CHAINS, q.exact.correlations(qbm), NUM_CHAINS, "correlations")
    res = q.anneal(qbm, seed=2)
    assert_log_z(res.log_z, res.log_z_std, q.exact.log_z(qbm), cap=0.03)


def test_graph_qbm_reproducible_for_any_thread_count():
    qbm = random_graph_qbm("dense-graph", 1.0, seed=4)
    a = q.PathIntegralSampler(qbm, 40, seed=3, num_threads=1).run(15)
    b = q.PathIntegralSampler(qbm, 40, seed=3, num_threads=2).run(15)
    np.testing.assert_array_equal(a, b)
    r1 = q.anneal(qbm, population=64, seed=1, num_threads=1)
    r2 = q.anneal(qbm, population=64, seed=1, num_threads=2)
    assert r1.log_z == r2.log_z


@pytest.mark.parametrize("kind", ["rbm", "dense-graph"])
def test_checkpoint_restore_continues_exactly(kind):
    """Worldlines, tau = 0 slices and random streams make a checkpoint that a sampler with another
    seed continues bit for bit."""
    qbm = q.QBM(random_rbm(4, 5, seed=2), 1.0) if kind == "rbm" else random_graph_qbm("dense-graph", 1.0, seed=4)
    a = q.PathIntegralSampler(qbm, 30, seed=1)
    a.run(10)
    checkpoint = a.checkpoint()
    assert checkpoint["kink_offsets"][-1] == len(checkpoint["kink_times"]) == a.kink_counts.sum() > 0
    expected, kinks = a.run(6), a.kink_counts
    b = q.PathIntegralSampler(qbm, 30, seed=77)
    b.restore(checkpoint)
    np.testing.assert_array_equal(b.run(6), expected)
    np.testing.assert_array_equal(b.kink_counts, kinks)


def test_checkpoint_bad_kinks():
    qbm = q.QBM(random_rbm(3, 3, seed=5), 1.5)
    sampler = q.PathIntegralSampler(qbm, 4, seed=0)
    sampler.run(20)
    good = sampler.checkpoint()
    sampler.run(3)  # now unlike `good`, so a restore that wrote part of a bad checkpoint would show
    current = sampler.checkpoint()
    offsets, times, units = good["kink_offsets"], good["kink_times"], good["kink_units"]
    assert offsets[1] >= 2 and units[0] // 3 == units[1] // 3  # chain 0 starts with two kinks of one block
    odd = {**good, "kink_offsets": np.r_[offsets[0], offsets[1:] - 1], "kink_times": times[1:], "kink_units": units[1:]}
    late = {**good, "kink_times": np.where(np.arange(len(times)) == 0, 1.0, times)}
    swapped = {**good, "kink_times": np.r_[times[1], times[0], times[2:]]}
    far = {**good, "kink_units": np.where(np.arange(len(units)) == 0, 6, units)}
    cases = [
        (odd, "odd number"),
        (late, r"outside \[0, 1\)"),
        (swapped, "not increasing"),
        (far, "out of range"),
        ({**good, "kink_offsets": offsets[:-1]}, "kink_offsets"),
        ({**good, "kink_offsets": offsets + 1}, "offsets"),
        # chain 0 would read past the arrays: refused before any kink is read
        ({**good, "kink_offsets": np.r_[0, offsets[-1] + 2, offsets[2:]]}, "offsets decrease at chain 1"),
        ({**good, "kink_times": np.where(np.arange(len(times)) == 0, np.nan, times)}, "kink_times"),
        ({k: v for k, v in good.items() if k != "kink_units"}, "missing kink_units"),
    ]
    for checkpoint, message in cases:
        with pytest.raises(ValueError, match=message):
            sampler.restore(checkpoint)
    assert_same_checkpoint(sampler.checkpoint(), current)  # a failed restore changes nothing


def _scaled(model, factor):
    if isinstance(model, q.RBM):
        return q.RBM(factor * model.weights, factor * model.visible_bias, factor * model.hidden_bias)
    return q.BoltzmannMachine(factor * model.bias, model.edges, factor * model.weights, colors=model.colors)


def _path_energy(model, state, times, units):
    """int_0^1 E(z(tau)) dtau of one worldline, walking its kinks in time order."""
    order = np.argsort(times)
    z, total, last = state.copy(), 0.0, 0.0
    for t, u in zip(times[order], units[order]):
        total += (t - last) * model.energy(z[None])[0]
        z[u] ^= 1
        last = t
    return total + (1.0 - last) * model.energy(z[None])[0]


@pytest.mark.parametrize("kind", ["rbm", "dense-graph"])
def test_energy_integrals_match_the_worldlines_and_exact_energy(kind):
    """RBMs get int E dtau from the walk itself, graphs compute it on demand: both equal the integral
    along the exported kinks, and their mean is <E(sigma^z)> of exact diagonalisation within 5 SE."""
    qbm = q.QBM(random_rbm(4, 5, seed=2), 1.0) if kind == "rbm" else random_graph_qbm("dense-graph", 1.0, seed=4)
    sampler = q.PathIntegralSampler(qbm, NUM_CHAINS, seed=5)
    sampler.run(200)
    energies = sampler.energy_integrals
    c = sampler.checkpoint()
    for i in range(20):
        lo, hi = c["kink_offsets"][i], c["kink_offsets"][i + 1]
        expected = _path_energy(qbm.model, c["state"][i], c["kink_times"][lo:hi], c["kink_units"][lo:hi])
        # the RBM walk sums float32 segment areas; graphs integrate on demand in double
        assert energies[i] == pytest.approx(expected, rel=1e-5 if kind == "rbm" else 1e-9)
    doubled = q.QBM(_scaled(qbm.model, 2.0), qbm.gamma)
    sampler.set_model(doubled)  # the same worldlines weigh differently: recomputed when asked for
    for i in range(3):
        lo, hi = c["kink_offsets"][i], c["kink_offsets"][i + 1]
        expected = _path_energy(doubled.model, c["state"][i], c["kink_times"][lo:hi], c["kink_units"][lo:hi])
        assert sampler.energy_integrals[i] == pytest.approx(expected, rel=1e-9)
    h, edges, j, offset = qbm.model.to_ising()  # E(z) in spins s = 2z - 1
    m, cor = q.exact.marginals(qbm), q.exact.correlations(qbm)
    spin, pair = 2 * m - 1, 4 * cor[edges[:, 0], edges[:, 1]] - 2 * m[edges[:, 0]] - 2 * m[edges[:, 1]] + 1
    exact = offset + h @ spin + j @ pair
    assert abs(energies.mean() - exact) <= K_SIGMA * energies.std() / np.sqrt(NUM_CHAINS)
