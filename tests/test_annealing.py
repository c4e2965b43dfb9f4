"""Population annealing against exact log Z and marginals; reproducibility; bad input."""

import numpy as np
import pytest
from scipy.stats import chi2
from conftest import assert_interrupted_quickly, assert_log_z, assert_within_sigma, random_bm, random_rbm

import qvae_core as q

K_LOGZ = 4.0  # reported standard errors allowed for log Z (the SE itself comes from 10 sub-populations)


def check_log_z(model, seed, **kwargs):
    exact = q.exact.log_z(model)
    res = q.anneal(model, seed=seed, **kwargs)
    assert_log_z(res.log_z, res.log_z_std, exact, cap=0.05, k=K_LOGZ)
    assert res.schedule[0] == 0.0 and res.schedule[-1] == 1.0 and np.all(np.diff(res.schedule) > 0)
    return res


@pytest.mark.parametrize(
    "nv, nh, seed",
    [(20, 64, 1), (12, 300, 2), (150, 14, 3), (16, 16, 4)],
    ids=["20x64", "12x300", "150x14", "16x16"],
)
def test_rbm_log_z_matches_exact(nv, nh, seed):
    res = check_log_z(random_rbm(nv, nh, scale=1.0, bias_scale=1.0, seed=seed), seed)
    assert res.samples.shape == (1000, nv + nh) and res.samples.dtype == np.uint8
    assert len(res.ess) == res.num_steps == len(res.rho) == len(res.families)
    assert np.all(res.rho >= 1.0) and res.rho[-1] < 1000 / 10  # R >> rho: equilibrated
    np.testing.assert_allclose(res.energies, model_energy(nv, nh, seed, res.samples), atol=1e-9)


def model_energy(nv, nh, seed, samples):
    return random_rbm(nv, nh, scale=1.0, bias_scale=1.0, seed=seed).energy(samples)


def test_chimera_bm_log_z_matches_exact():
    pytest.importorskip("dwave_networkx")
    bm = q.graphs.random_boltzmann_machine(q.graphs.chimera(1, 2), weight_scale=1.5, bias_scale=0.5, seed=2)
    check_log_z(bm, seed=3)


def test_sparse_random_bm_log_z_matches_exact():
    bm = random_bm(18, p_edge=0.25, seed=5)
    check_log_z(bm, seed=4)


def test_explicit_schedule():
    rbm = random_rbm(10, 20, seed=6)
    res = check_log_z(rbm, seed=7, schedule=np.linspace(0, 1, 801)[1:])
    assert res.num_steps == 800


@pytest.mark.parametrize("kind", ["rbm", "bm", "qbm"])
def test_final_population_matches_exact_marginals(kind):
    model = random_rbm(6, 10, scale=1.0, seed=8)
    if kind == "bm":
        model = model.to_boltzmann_machine()
    elif kind == "qbm":  # tau = 0 slices of the paths against diagonalisation (9 units)
        model = q.QBM(random_rbm(4, 5, scale=1.0, seed=8), 1.0)
    res = q.anneal(model, population=8000, seed=9)
    n_eff = int(8000 / res.rho[-1])  # resampled replicas are correlated within families
    assert_within_sigma(res.samples.mean(axis=0), q.exact.marginals(model), n_eff, "marginals")
    S = res.samples.astype(float)
    assert_within_sigma(S.T @ S / len(S), q.exact.correlations(model), n_eff, "correlations")


def test_log_z_check_has_power():
    """A run on a model whose log Z differs by about twice the allowed error fails the same check."""
    rbm = random_rbm(12, 30, seed=10)
    shifted = q.RBM(rbm.weights, rbm.visible_bias + 0.015, rbm.hidden_bias)
    gap = q.exact.log_z(shifted) - q.exact.log_z(rbm)
    assert 0.08 < gap < 0.12
    res = q.anneal(shifted, seed=1)
    assert_log_z(res.log_z, res.log_z_std, q.exact.log_z(shifted), cap=0.05, k=K_LOGZ)
    with pytest.raises(AssertionError):
        assert_log_z(res.log_z, res.log_z_std, q.exact.log_z(rbm), cap=0.05, k=K_LOGZ)


@pytest.mark.parametrize("kind", ["rbm", "qbm"])
def test_reported_log_z_errors_are_calibrated(kind):
    """Over 20 seeds the RMS error of log Z matches the RMS of the reported SEs: the ratio lies in the
    chi^2_20 band of false-alarm rate 2e-4 (a sqrt(10) too large SE, or a bias of 2 SEs, fails)."""
    model = random_rbm(8, 8, seed=12) if kind == "rbm" else q.QBM(random_rbm(4, 5, bias_scale=1.0, seed=7), 1.0)
    exact = q.exact.log_z(model)
    runs = [q.anneal(model, population=300, seed=seed) for seed in range(20)]
    err = np.array([r.log_z - exact for r in runs])
    se = np.array([r.log_z_std for r in runs])
    ratio = np.sqrt(np.mean(err**2) / np.mean(se**2))
    lo, hi = np.sqrt(chi2.ppf([1e-4, 1 - 1e-4], len(runs)) / len(runs))
    assert lo <= ratio <= hi, (ratio, lo, hi)


def test_reproducible_for_any_thread_count():
    rbm = random_rbm(30, 40, seed=11)
    a = q.anneal(rbm, population=300, seed=5, num_threads=1)
    b = q.anneal(rbm, population=300, seed=5, num_threads=2)
    assert a.log_z == b.log_z
    np.testing.assert_array_equal(a.samples, b.samples)
    np.testing.assert_array_equal(a.schedule, b.schedule)
    c = q.anneal(rbm, population=300, seed=6)
    assert c.log_z != a.log_z
    bm = rbm.to_boltzmann_machine()
    d = q.anneal(bm, population=100, seed=5, num_threads=1)
    e = q.anneal(bm, population=100, seed=5, num_threads=2)
    assert d.log_z == e.log_z
    np.testing.assert_array_equal(d.samples, e.samples)


@pytest.mark.parametrize("kind", ["graph", "qbm", "rbm"])
def test_adaptive_steps_reach_the_target_ess(kind):
    """Each step but the last (cut at t = 1) is chosen for ESS = target_ess: exactly where the
    log-weights are linear in dt (energies of a graph, path energy integrals of a QBM); for an RBM
    the summed-out layer makes them curve, which the linear step misses by a small fraction of 1 - ESS."""
    rbm = random_rbm(10, 20, seed=6)
    model = {"graph": rbm.to_boltzmann_machine(), "qbm": q.QBM(random_rbm(4, 5, seed=6), 1.0), "rbm": rbm}[kind]
    res = q.anneal(model, seed=7, target_ess=0.99)
    shortfall = (1 - res.ess[:-1]) / (1 - 0.99)
    assert res.num_steps > 5 and res.ess[-1] >= 0.99 - 1e-9
    np.testing.assert_allclose(shortfall, 1.0, atol=1e-6 if kind != "rbm" else 0.05)


def test_combine_log_z_is_log_mean_exp():
    logs = [10.0, 10.5, 9.0]
    combined, se = q.combine_log_z(logs)
    assert combined == pytest.approx(np.log(np.mean(np.exp(logs))), abs=1e-12)
    z = np.exp(logs)
    assert se == pytest.approx(np.std(z / z.mean(), ddof=1) / np.sqrt(3), rel=1e-12)  # SE of mean Z, relative
    shifted, shifted_se = q.combine_log_z(np.array(logs) + 990.0)  # Z ~ e^1000 overflows: no exp of logs
    assert shifted == pytest.approx(combined + 990.0, abs=1e-10) and shifted_se == pytest.approx(se, rel=1e-12)
    runs = [q.anneal(random_rbm(3, 3), population=100, seed=s) for s in (1, 2)]
    assert q.combine_log_z(runs) == q.combine_log_z([r.log_z for r in runs])
    single, single_se = q.combine_log_z(runs[:1])
    assert single == runs[0].log_z and np.isnan(single_se)  # no spread to estimate from
    for bad in ([1.0, np.nan], [], None, 1.0, ["a"], "12", b"12", {"1": 2}, ["1.5", "2.5"], [10**400], [True]):
        with pytest.raises(ValueError, match="results"):
            q.combine_log_z(bad)


@pytest.mark.parametrize(
    "model",
    [random_rbm(200, 200, scale=0.3, seed=0), random_bm(200, p_edge=0.05), q.QBM(random_rbm(64, 64, scale=0.1), 1.0)],
    ids=["rbm", "graph", "qbm"],
)
def test_ctrl_c_stops_annealing(model):
    assert_interrupted_quickly(lambda: q.anneal(model, population=2000, sweeps_per_step=50, target_ess=0.99999,
                                                seed=0))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"population": 1}, "population"),
        ({"population": 0}, "population"),
        ({"population": 2**62}, "population: .* 1 TiB"),
        ({"schedule": [0.5, 0.4, 1.0]}, "schedule"),
        ({"schedule": [0.2, 0.2, 1.0]}, "schedule"),
        ({"schedule": [0.5, 0.9]}, "schedule"),
        ({"schedule": [-0.1, 0.5, 1.0]}, "schedule"),
        ({"schedule": [0.5, 1.0, 1.5]}, "schedule"),
        ({"schedule": [0.5, np.nan, 1.0]}, "schedule"),
        ({"schedule": [0.0]}, "schedule"),
        ({"schedule": [0.3, 0.6, 1.0], "max_steps": 2}, "max_steps = 2"),  # refused before it runs
        ({"schedule": [0.5 + 1j, 1.0]}, "schedule"),
        ({"target_ess": 1.0}, "target_ess"),
        ({"target_ess": None}, "target_ess: expected a number"),
        ({"target_ess": np.nan}, "target_ess"),
        ({"sweeps_per_step": -1}, "sweeps_per_step"),
        ({"num_subpopulations": 0}, "num_subpopulations"),
        ({"population": 10, "num_subpopulations": 6}, "num_subpopulations"),
        ({"seed": -5}, "seed"),
    ],
)
def test_anneal_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        q.anneal(random_rbm(3, 3), **kwargs)


def test_anneal_rejects_other_models():
    with pytest.raises(ValueError, match="model"):
        q.anneal(np.zeros((3, 3)))
