"""Priors: energies in the package's sign convention, the positive-phase estimator, and the
cross-entropy gradient "positive minus negative phase" against exact enumeration, with every
negative-phase sampler (block-Gibbs PCD, PA, CT-QMC PCD, quantum PA)."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import qvae_core as q  # noqa: E402
from qvae_core.dvae.priors import BernoulliPrior, GraphPrior, RBMPrior  # noqa: E402
from qvae_core.dvae.samplers import PersistentChains, PopulationAnnealing  # noqa: E402

from conftest import all_states, assert_log_z, assert_within_sigma  # noqa: E402


def _randomise(prior, scale=1.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in prior.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen))
    return prior


def _all_states(n):
    return torch.tensor(all_states(n), dtype=torch.float64)


def _priors():
    chimera = q.graphs.chimera(1, 1)
    return {
        "rbm": _randomise(RBMPrior(4, 5).double()),
        "chimera": _randomise(GraphPrior(chimera.num_units, chimera.edges).double()),
        "bernoulli": _randomise(BernoulliPrior(6).double()),
    }


@pytest.mark.parametrize("kind", ["rbm", "chimera", "bernoulli"])
def test_energy_matches_the_numpy_model(kind):
    prior = _priors()[kind]
    states = _all_states(prior.num_units)
    np.testing.assert_allclose(prior.energy(states).detach().numpy(),
                               prior.numpy_model().energy(states.numpy().astype(np.uint8)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["rbm", "chimera", "bernoulli"])
def test_expected_energy_of_binary_states_is_the_energy(kind):
    """With q = post = z (a draw that is already discrete) the estimator is E(z) for any grouping."""
    prior = _priors()[kind]
    z = _all_states(prior.num_units)
    for groups in (1, 2, 3):
        sizes = [len(g) for g in np.array_split(np.arange(prior.num_units), groups)]
        group = torch.repeat_interleave(torch.arange(groups), torch.tensor(sizes))
        np.testing.assert_allclose(prior.expected_energy(z, z, group).detach().numpy(),
                                   prior.energy(z).detach().numpy(), rtol=1e-12, atol=1e-12)


def test_rbm_estimator_equals_the_edgewise_rule():
    """The RBM's masked products implement the same pairing rule as the graph prior's edge list."""
    rbm = _priors()["rbm"]
    graph = GraphPrior(rbm.num_units, rbm.numpy_model().edges).double()
    with torch.no_grad():
        graph.bias.copy_(torch.cat([rbm.visible_bias, rbm.hidden_bias]))
        graph.weights.copy_(rbm.weights.flatten())
    gen = torch.Generator().manual_seed(1)
    qs, post = torch.rand((2, 7, rbm.num_units), generator=gen, dtype=torch.float64)
    for group in (torch.tensor([0, 0, 1, 1, 0, 1, 2, 2, 2]), torch.tensor([2, 1, 0, 0, 1, 2, 0, 1, 1])):
        np.testing.assert_allclose(rbm.expected_energy(qs, post, group).detach().numpy(),
                                   graph.expected_energy(qs, post, group).detach().numpy(), rtol=1e-12)


def test_bernoulli_cross_entropy_is_analytic():
    """E_q[E(z)] + log Z = -Σ q log p + (1 - q) log(1 - p) (paper 000 Eq. B2)."""
    prior = _priors()["bernoulli"]
    qs = torch.rand(5, prior.num_units, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    group = torch.zeros(prior.num_units, dtype=torch.long)
    p = torch.sigmoid(prior.bias)
    expected = -(qs * torch.log(p) + (1 - qs) * torch.log(1 - p)).sum(1)
    got = prior.expected_energy(qs, qs, group) + prior.log_partition_surrogate(None)
    np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-12)
    assert prior.log_partition() == pytest.approx((np.logaddexp(0, prior.bias.detach().numpy()).sum(), 0.0))


def _features(prior, z):
    """∂E/∂θ flattened to [-z z^T pairs..., -z] as Bernoulli variables (products of binary units)."""
    z = torch.as_tensor(z, dtype=torch.float64)
    if isinstance(prior, RBMPrior):
        v, h = z[:, : prior.num_visible], z[:, prior.num_visible :]
        return torch.cat([(v[:, :, None] * h[:, None, :]).flatten(1), v, h], 1)
    i, j = prior.edges[:, 0], prior.edges[:, 1]
    return torch.cat([z[:, i] * z[:, j], z], 1)


def _exact_moments(prior):
    """E_p[features] from qvae_core.exact (QBM: the diagonal distribution <z|e^{-H}|z>/Z)."""
    model = prior.numpy_model()
    corr = q.exact.correlations(model)
    if isinstance(prior, RBMPrior):
        nv = prior.num_visible
        return np.concatenate([corr[:nv, nv:].ravel(), np.diag(corr)])
    edges = prior.edges.numpy()
    return np.concatenate([corr[edges[:, 0], edges[:, 1]], np.diag(corr)])


def _parameters(prior):
    return [prior.weights, prior.visible_bias, prior.hidden_bias] if isinstance(prior, RBMPrior) else \
        [prior.weights, prior.bias]


@pytest.mark.parametrize(
    "kind, gamma, sampler",
    [
        ("rbm", 0.0, PersistentChains(20_000, 100, seed=3)),
        ("rbm", 0.0, PopulationAnnealing(20_000, 5, seed=4)),
        ("chimera", 0.0, PersistentChains(20_000, 100, seed=5)),
        ("rbm", 1.0, PersistentChains(20_000, 100, seed=6)),
        ("rbm", 1.0, PopulationAnnealing(20_000, 2, seed=7)),
        ("chimera", 1.0, PersistentChains(20_000, 100, seed=9)),
    ],
    ids=["rbm-pcd", "rbm-pa", "chimera-pcd", "qbm-ctqmc-pcd", "qbm-ctqmc-pa", "chimera-qbm-ctqmc-pcd"],
)
def test_cross_entropy_gradient_is_positive_minus_negative_phase(kind, gamma, sampler):
    """∂/∂θ [mean_b E(z_b) + log Z] = mean_b ∂E(z_b) - E_p[∂E]: autograd of the exact log Z gives
    the first form; the surrogate with sampled model states must match it to k standard errors.
    For a QBM the negative phase is E_p[∂E] under the quantum distribution (paper 000 Eq. 36)."""
    prior = _priors()[kind]
    prior.gamma = gamma
    if kind == "rbm":  # a small RBM, so the QBM can be diagonalised
        prior = _randomise(RBMPrior(3, 4, gamma).double(), seed=8)
    params = _parameters(prior)
    posterior_z = _all_states(prior.num_units)[::7]  # any fixed positive-phase states

    if gamma == 0:  # exact gradient by autograd through log Z = logsumexp(-E) over all states
        exact_ce = prior.energy(posterior_z).mean() + torch.logsumexp(-prior.energy(_all_states(prior.num_units)), 0)
        exact_grad = torch.cat([g.flatten() for g in torch.autograd.grad(exact_ce, params)]).numpy()
        positive = torch.cat([g.flatten() for g in torch.autograd.grad(prior.energy(posterior_z).mean(), params)])
        # pos - neg with the exact negative phase E_p[∂E] = -E_p[features]
        np.testing.assert_allclose(exact_grad, positive.numpy() + _exact_moments(prior), rtol=1e-10, atol=1e-12)

    samples = sampler.sample(prior.numpy_model())
    surrogate = prior.energy(posterior_z).mean() + prior.log_partition_surrogate(torch.from_numpy(samples).double())
    grad = torch.cat([g.flatten() for g in torch.autograd.grad(surrogate, params)])
    positive = torch.cat([g.flatten() for g in torch.autograd.grad(prior.energy(posterior_z).mean(), params)])
    negative_moments = (grad - positive).numpy()  # = mean over samples of the features
    np.testing.assert_allclose(negative_moments, _features(prior, samples).mean(0).numpy(), rtol=1e-12, atol=1e-12)
    assert_within_sigma(negative_moments, _exact_moments(prior), len(samples), f"{kind} gamma={gamma}")


def test_log_partition_by_annealing_matches_exact():
    for prior in (_randomise(RBMPrior(4, 5).double()), _randomise(RBMPrior(3, 3, gamma=1.5).double(), seed=2)):
        log_z, log_z_std = prior.log_partition(population=4000, seed=1)
        exact = q.exact.log_z(prior.numpy_model())
        assert_log_z(log_z, log_z_std, exact, cap=0.05)


def test_qbm_numpy_model_and_bad_gamma():
    prior = RBMPrior(2, 3, gamma=0.7)
    model = prior.numpy_model()
    assert isinstance(model, q.QBM) and np.all(model.gamma == 0.7)
    assert isinstance(RBMPrior(2, 3).numpy_model(), q.RBM)
    with pytest.raises(ValueError, match="gamma"):
        RBMPrior(2, 3, gamma=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        RBMPrior(2, 3, gamma=math.inf)


@pytest.mark.parametrize("kind, latent, topology", [
    ("chimera", "1,2", lambda: q.graphs.chimera(1, 2)), ("pegasus", "2", lambda: q.graphs.pegasus(2)),
    ("zephyr", "1,2", lambda: q.graphs.zephyr(1, 2)), ("rbm", "3x5", None), ("bernoulli", "7", None),
])
def test_prior_kinds_build_from_their_latent_spec(kind, latent, topology):
    from qvae_core.dvae.priors import PRIORS

    spec = PRIORS[kind]
    prior = spec.build(spec.sizes(latent), 0.0)
    if topology is not None:
        expected = topology()
        assert prior.num_units == expected.num_units
        np.testing.assert_array_equal(prior.numpy_model().edges, expected.edges)
    else:
        assert prior.num_units == (8 if kind == "rbm" else 7)
    with pytest.raises(ValueError, match="latent"):
        spec.sizes("3x5x7" if kind == "rbm" else "0")


@pytest.mark.parametrize("gamma, kind, sweeps", [(0.0, q.GibbsSampler, 200), (1.0, q.PathIntegralSampler, 20)])
def test_persistent_chains_default_to_200_gibbs_or_20_ct_qmc_sweeps(monkeypatch, gamma, kind, sweeps):
    asked = []
    run = kind.run
    monkeypatch.setattr(kind, "run", lambda self, n: asked.append(n) or run(self, n))
    model = RBMPrior(3, 4, gamma).double().numpy_model()
    PersistentChains(10, seed=1).sample(model)
    PersistentChains(10, 7, seed=1).sample(model)  # a count given is kept
    assert asked == [sweeps, 7]
