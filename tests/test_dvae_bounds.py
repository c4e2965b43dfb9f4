"""Bounds of a tiny DVAE against exact enumeration: the importance-weighted bound L_K rises with K
towards log p(x) and never exceeds it; for a QBM prior the Q-ELBO is the ELBO at Γ = 0 and below
it for Γ > 0 (Golden-Thompson)."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

import qvae_core as q  # noqa: E402
from conftest import K_SIGMA, all_states, assert_within_sigma  # noqa: E402
from qvae_core.dvae.evaluation import draw_noise, evaluate  # noqa: E402
from qvae_core.dvae.model import DVAE  # noqa: E402
from qvae_core.dvae.networks import DECODERS, ENCODERS  # noqa: E402
from qvae_core.dvae.posterior import HierarchicalPosterior  # noqa: E402
from qvae_core.dvae.priors import BernoulliPrior, RBMPrior  # noqa: E402
from qvae_core.dvae.smoothing import SMOOTHINGS  # noqa: E402

PIXELS = 6


def _tiny_dvae(smoothing="concrete", gamma=0.0, seed=0):
    """RBM 4+4 prior, two posterior groups, a linear decoder to 6 pixels; random weights, eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        prior = RBMPrior(4, 4, gamma)
        encoder = ENCODERS["mlp"](PIXELS, (1, PIXELS))
        posterior = HierarchicalPosterior(encoder, 8, 2, [16], SMOOTHINGS[smoothing](7.0))
        decoder = DECODERS["mlp"](8, [], PIXELS, (1, PIXELS))
        model = DVAE(posterior, decoder, prior).double()
        with torch.no_grad():
            for p in prior.parameters():
                p.copy_(torch.randn(p.shape, dtype=torch.float64))
            decoder.net[-1].weight.mul_(4.0)  # pixels that depend clearly on z
    return model.eval()


def _images(n, seed=1):
    return (np.random.default_rng(seed).random((n, PIXELS)) < 0.4).astype(np.float64)


def _exact_log_px(model, x):
    """log p(x) = logsumexp_z [log p(z) + log p(x|z)] over the 256 states (ζ = z at evaluation)."""
    n = model.prior.num_units
    z = torch.tensor(all_states(n), dtype=torch.float64)
    log_pz = -model.prior.energy(z) - q.exact.log_z(model.prior.numpy_model())
    logits = model.decoder(z)  # (256, pixels)
    x = torch.as_tensor(x)
    log_px_z = -torch.nn.functional.binary_cross_entropy_with_logits(
        logits[None].expand(len(x), -1, -1), x[:, None].expand(-1, len(z), -1), reduction="none").sum(2)
    return torch.logsumexp(log_pz[None] + log_px_z, 1).detach().numpy()


@torch.no_grad()
def test_importance_weighted_bound_rises_to_the_exact_log_likelihood():
    model = _tiny_dvae()
    log_z = q.exact.log_z(model.prior.numpy_model())
    replicas = 400
    for image in _images(2):
        exact = _exact_log_px(model, image[None])[0]
        bounds = []
        for k in (1, 10, 100, 1000):
            m = evaluate(model, np.repeat(image[None], replicas, 0), importance_samples=k, log_z=(log_z, 0.0), seed=k)
            assert m["ll"] <= exact + K_SIGMA * m["ll_stderr"], (k, m["ll"], exact)
            bounds.append((m["ll"], m["ll_stderr"]))
        for (low, low_se), (high, high_se) in zip(bounds, bounds[1:]):
            assert high - low > -K_SIGMA * math.hypot(low_se, high_se)  # never falls back
        (l1, se1), (l1000, se1000) = bounds[0], bounds[-1]
        assert l1000 - l1 > K_SIGMA * math.hypot(se1, se1000)  # rises
        assert exact - l1000 < 0.1 * (exact - l1), (exact, bounds)  # and closes most of the gap


@torch.no_grad()
def test_elbo_is_the_one_sample_bound_and_below_log_likelihood():
    """Spike-and-exponential model, log Z by population annealing: ELBO = L_1 <= L_100."""
    model = _tiny_dvae("spike-exp", seed=3)
    images = np.repeat(_images(1, seed=4), 300, 0)
    one = evaluate(model, images, importance_samples=1, seed=0)
    many = evaluate(model, images, importance_samples=100, seed=0)
    assert one["elbo"] == pytest.approx(one["ll"])
    assert abs(one["log_z"] - q.exact.log_z(model.prior.numpy_model())) <= K_SIGMA * one["log_z_std"]
    assert many["ll"] - one["elbo"] > K_SIGMA * math.hypot(one["elbo_stderr"], many["ll_stderr"])


def _first_draws(model, images, seed):
    """The draws evaluate() makes for K = 1 (each image's first draw from its own stream)."""
    x = torch.as_tensor(images, dtype=next(model.parameters()).dtype)
    noise = torch.stack([draw_noise(seed, i, 0, 1, model.prior.num_units, x.dtype) for i in range(len(x))], dim=2)
    d = model.draws(x, 1, noise=noise.flatten(1, 2))
    return (d.log_px - d.log_q)[0].numpy(), d.z[0].to(torch.uint8).numpy()


@torch.no_grad()
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_q_elbo_is_below_the_true_elbo(gamma):
    model = _tiny_dvae("spike-exp", gamma=gamma, seed=5)
    qbm = model.prior.numpy_model()
    images = _images(150, seed=6)
    log_z = q.exact.log_z(qbm)
    m = evaluate(model, images, log_z=(log_z, 0.0), seed=7)
    assert "ll" not in m and m["gamma"] == gamma
    rest, states = _first_draws(model, images, seed=7)
    exact_log_diag = q.exact.log_diag(qbm, states)
    classical = -qbm.energy(states)
    assert np.all(exact_log_diag >= classical - 1e-12)  # <z|e^{-H}|z> >= e^{-E(z)} per draw
    np.testing.assert_allclose(m["q_elbo"], np.mean(rest + classical - log_z), rtol=1e-6)
    exact_elbo = np.mean(rest + exact_log_diag - log_z)
    assert abs(m["elbo"] - exact_elbo) <= K_SIGMA * m["elbo_log_diag_stderr"] + 1e-9, (m["elbo"], exact_elbo)
    assert m["elbo"] - m["q_elbo"] > K_SIGMA * m["elbo_log_diag_stderr"]


@torch.no_grad()
def test_q_elbo_equals_the_elbo_at_zero_field():
    """Γ = 0: log<z|e^{-H}|z> = -E(z) and log Tr e^{-H} = log Z exactly; at Γ = 1e-3 evaluate()'s
    Q-ELBO and true ELBO agree with each other and with the classical ELBO of the same weights."""
    classical = _tiny_dvae("spike-exp", seed=8)
    images = _images(100, seed=9)
    rest, states = _first_draws(classical, images, seed=10)
    rbm = classical.prior.numpy_model()
    zero_field = q.QBM(rbm, 0.0)
    np.testing.assert_allclose(q.exact.log_diag(zero_field, states), -rbm.energy(states), rtol=1e-12)
    assert q.exact.log_z(zero_field) == pytest.approx(q.exact.log_z(rbm), rel=1e-12)
    elbo = evaluate(classical, images, importance_samples=1, log_z=(q.exact.log_z(rbm), 0.0), seed=10)["elbo"]

    weak = _tiny_dvae("spike-exp", gamma=1e-3, seed=8)
    m = evaluate(weak, images, log_z=(q.exact.log_z(weak.prior.numpy_model()), 0.0), seed=10)
    tolerance = K_SIGMA * m["elbo_log_diag_stderr"] + 1e-5  # O(Γ²) shifts are ~1e-6
    assert abs(m["elbo"] - m["q_elbo"]) <= tolerance
    assert abs(m["q_elbo"] - elbo) <= 1e-5


@torch.no_grad()
@pytest.mark.parametrize("num_importance, num_draws", [(1, 2), (4, 3)])
def test_training_objective_estimates_the_bound_less_log_z(num_importance, num_draws):
    """DVAE.objective (spike-and-exponential, whose stand-in for z has the exact value) + log Z is an
    unbiased estimate of L_K: the ELBO for K = 1 through its analytic-last-step form, and the
    importance-weighted bound for K > 1, both compared with evaluate()'s direct estimates."""
    model = _tiny_dvae("spike-exp", seed=11)
    log_z = q.exact.log_z(model.prior.numpy_model())
    image = torch.as_tensor(_images(1, seed=12))
    gen = torch.Generator().manual_seed(13)
    kd = {"num_importance": num_importance, "num_draws": num_draws}
    batches = np.array([model.objective(image.repeat(200, 1), **kd, generator=gen).item() for _ in range(60)]) - log_z
    reference = evaluate(model, image.repeat(6000, 1).numpy(), importance_samples=num_importance,
                         log_z=(log_z, 0.0), seed=14)
    se = math.hypot(batches.std(ddof=1) / math.sqrt(len(batches)), reference["ll_stderr"])
    assert abs(batches.mean() - reference["ll"]) <= K_SIGMA * se, (batches.mean(), reference["ll"], se)


def _two_unit_dvae(smoothing, seed):
    """RBM 1+1 prior, one latent unit per posterior group (so group 2 reads ζ_1), a linear decoder
    to 3 pixels; random weights of order 1."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        prior = RBMPrior(1, 1)
        posterior = HierarchicalPosterior(ENCODERS["mlp"](3, (1, 3)), 2, 2, [], SMOOTHINGS[smoothing](3.0))
        model = DVAE(posterior, DECODERS["mlp"](2, [], 3, (1, 3)), prior).double()
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, dtype=torch.float64))
    return model.eval()


def _quadrature_bound(model, x, num_importance, kl_weight, nodes=12):
    """L_K = E[log mean_k w_k] computed without sampling: a sum over every z of the K draws and
    Gauss-Legendre quadrature over the smoothing noise, one latent unit per posterior group.
    Spike: z_l = 1 has probability q_l and ζ_l = log(1 + s(e^β - 1))/β, s ~ U(0, 1) (the
    smoothing's Eq. 25 with ρ = 1 - q + q s); z_l = 0 has ζ_l = 0. Overlapping: ζ_l = F⁻¹(ρ_l) of
    the mixture, then z_l with probability P(z_l = 1 | ζ_l). Differentiable in every parameter."""
    smoothing, heads = model.smoothing, model.posterior.heads
    n, k = len(heads), num_importance
    points, weights = np.polynomial.legendre.leggauss(nodes)
    s = torch.cartesian_prod(*[torch.tensor((points + 1) / 2)] * (n * k))  # (M, n·K)
    w = torch.tensor(np.prod(np.array(np.meshgrid(*[weights / 2] * (n * k), indexing="ij")).reshape(n * k, -1), 0))
    configs = torch.tensor(all_states(n * k), dtype=torch.float64)
    s, w = s.repeat(len(configs), 1), w.repeat(len(configs))
    z = configs.repeat_interleave(len(points) ** (n * k), 0)  # (C·M, n·K)
    features = model.posterior.encoder(x).expand(len(s), -1)
    prob, log_w = torch.ones(len(s), dtype=torch.float64), []
    for draw in range(k):
        zetas, log_q = [], 0.0
        for g, head in enumerate(heads):
            logit = head(torch.cat([features, *zetas], 1))[:, 0]
            zg, sg = z[:, draw * n + g], s[:, draw * n + g]
            if smoothing.name == "spike-exp":
                q_g = torch.sigmoid(logit)
                prob = prob * torch.where(zg > 0, q_g, 1 - q_g)
                zeta = zg * torch.log1p(sg * math.expm1(smoothing.beta)) / smoothing.beta
            else:
                zeta = smoothing(logit[:, None], sg[:, None], torch.zeros_like(sg)[:, None]).zeta[:, 0]
                up = torch.sigmoid(logit + smoothing.component_log_pdf(zeta, 1) - smoothing.component_log_pdf(zeta, 0))
                prob = prob * torch.where(zg > 0, up, 1 - up)
            log_q = log_q + zg * torch.nn.functional.logsigmoid(logit) + (1 - zg) * torch.nn.functional.logsigmoid(-logit)
            zetas.append(zeta[:, None])
        log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
            model.decoder(torch.cat(zetas, 1)), x.expand(len(s), -1), reduction="none").sum(1)
        z_draw = z[:, draw * n : (draw + 1) * n]
        log_w.append(log_px - kl_weight * (model.prior.energy(z_draw) + log_q))
    bound = torch.logsumexp(torch.stack(log_w), 0) - math.log(k)
    return (w * prob * bound).sum()


@pytest.mark.parametrize("smoothing", ["spike-exp", "overlap-exp"])
def test_importance_weighted_gradient_is_exact_in_expectation(smoothing):
    """For K > 1 the training objective's value and gradient (every parameter: prior, both posterior
    heads, decoder) average to L_K and its gradient computed by quadrature: the discrete z enter
    the gradient through exact flip differences, not a linearisation."""
    model = _two_unit_dvae(smoothing, seed=21)
    x = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)
    kd = {"num_importance": 2, "kl_weight": 0.7}
    params = list(model.parameters())
    exact = _quadrature_bound(model, x, kd["num_importance"], kd["kl_weight"])
    exact_grad = torch.cat([g.flatten() for g in torch.autograd.grad(exact, params)]).numpy()
    gen = torch.Generator().manual_seed(22)
    values, grads = [], []
    for _ in range(40):
        objective = model.objective(x, num_draws=5000, generator=gen, **kd)
        values.append(objective.item())
        grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(objective, params)]).numpy())
    values, grads = np.array(values), np.array(grads)
    value_se = values.std(ddof=1) / math.sqrt(len(values))
    assert abs(values.mean() - exact.item()) <= K_SIGMA * value_se, (values.mean(), exact.item(), value_se)
    se = grads.std(0, ddof=1) / math.sqrt(len(grads))  # 0 for weights of a zero pixel: then exact
    worst = np.argmax(np.abs(grads.mean(0) - exact_grad) - K_SIGMA * se)
    assert np.all(np.abs(grads.mean(0) - exact_grad) <= K_SIGMA * se + 1e-12), (
        worst, grads.mean(0)[worst], exact_grad[worst], se[worst])


@torch.no_grad()
def test_evaluate_refuses_bad_arguments():
    model = _tiny_dvae()
    images = _images(2)
    log_z = (q.exact.log_z(model.prior.numpy_model()), 0.0)
    cases = [
        (dict(importance_samples=2.0), "importance_samples"), (dict(importance_samples=0), "importance_samples"),
        (dict(log_z=1.0), "log_z"), (dict(log_z=(np.nan, 0.1)), "log_z"), (dict(log_z=(1.0, -0.1)), "log_z"),
        (dict(log_z_population=5), "log_z_population"), (dict(seed=1.5), "seed"),
    ]
    for kwargs, name in cases:
        with pytest.raises(ValueError, match=name):
            evaluate(model, images, **{"log_z": log_z, **kwargs})
    for bad in (np.zeros((3, 100)), np.full_like(images, 0.5)):  # another width, not binary
        with pytest.raises(ValueError, match="images"):
            evaluate(model, bad, log_z=log_z)
    with pytest.raises(ValueError, match="model"):
        evaluate(None, images, log_z=log_z)



def _exact_samples(prior, num, seed):
    """`num` exact samples of the prior's p(z) (enumeration), (num, n) float64."""
    states = torch.tensor(all_states(prior.num_units), dtype=torch.float64)
    p = torch.softmax(-prior.energy(states).detach(), 0).numpy()
    return states[np.random.default_rng(seed).choice(len(states), num, p=p)]


def _balanced_pair(kl_balance):
    """The tiny DVAE (spike smoothing) and a copy with KL balancing of weight ε = kl_balance."""
    model = _tiny_dvae("spike-exp")
    balanced = DVAE(model.posterior, model.decoder, model.prior, kl_balance=kl_balance)
    return model, balanced


def test_group_kl_splits_the_kl_exactly():
    """Σ_g KL_g = -H(q) + E_q[E(z)] draw by draw, and with the coupling between groups shared half
    and half the split of a prior without couplings is each group's own entropy and bias terms."""
    model, _ = _balanced_pair(0.1)
    x = torch.as_tensor(_images(50))
    s = model.posterior(x, torch.Generator().manual_seed(20))
    whole = -s.entropy() + model.prior.expected_energy(torch.sigmoid(s.logits), s.post, model.posterior.group)
    parts = model.group_kl(s)
    assert parts.shape == (50, 2)
    np.testing.assert_allclose(parts.sum(1).detach().numpy(), whole.detach().numpy(), rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        model.prior.weights.zero_()
    q_ = torch.sigmoid(s.logits)
    own = -(q_ * torch.nn.functional.logsigmoid(s.logits) + (1 - q_) * torch.nn.functional.logsigmoid(-s.logits))
    bias = torch.cat([model.prior.visible_bias, model.prior.hidden_bias])
    expected = torch.stack([(-q_ * bias - own)[:, :4].sum(1), (-q_ * bias - own)[:, 4:].sum(1)], 1)
    np.testing.assert_allclose(model.group_kl(s).detach().numpy(), expected.detach().numpy(), atol=1e-12)


def test_kl_balancing_applies_only_during_warm_up_and_reduces_to_the_elbo():
    x = torch.as_tensor(_images(40))
    model, balanced = _balanced_pair(0.1)
    _, flat = _balanced_pair(1e12)  # ε >> the KLs: every α_g -> 1

    def value(m, kl_weight):
        return m.objective(x, kl_weight=kl_weight, generator=torch.Generator().manual_seed(21)).item()

    assert value(balanced, 0.5) == pytest.approx(value(model, 0.5), abs=1e-12)  # no negative phase yet: α_g = 1
    samples = _exact_samples(model.prior, 500, seed=3)
    balanced.prior.log_partition_surrogate(samples)  # (the prior is shared: flat and model see it too)
    assert value(balanced, 1.0) == value(model, 1.0)  # γ = 1: the exact ELBO (patent [0171])
    assert value(flat, 0.5) == pytest.approx(value(model, 0.5), abs=1e-9)
    assert abs(value(balanced, 0.5) - value(model, 0.5)) > 1e-3  # the balancing changes the warm-up objective
    s = balanced.posterior(x, torch.Generator().manual_seed(21))
    alpha = balanced._balance(s)
    assert alpha.sum().item() == pytest.approx(2.0) and torch.all(alpha > 0) and not alpha.requires_grad
    log_px = balanced._log_px(s.zeta, x)
    manual = (log_px - 0.5 * (balanced.group_kl(s) * alpha).sum(1)).mean().item()
    assert value(balanced, 0.5) == pytest.approx(manual, abs=1e-12)


def test_kl_balancing_weights_are_each_groups_kl_to_its_prior_marginal():
    """α̂_g - ε = E_batch[KL(q(z_g|x) || p(z_g))] (patent [0170]) where p(z_g) is known exactly: a
    prior without couplings, whose group marginal is Π_l σ(b_l), so that the group's KL is its part
    of the ELBO's KL (group_kl) plus its units' share Σ_l softplus(b_l) of log Z."""
    x = torch.as_tensor(_images(40))
    _, balanced = _balanced_pair(0.1)
    prior = balanced.prior
    with torch.no_grad():
        prior.weights.zero_()
        prior.sample_marginal_logits.copy_(torch.cat([prior.visible_bias, prior.hidden_bias]))
    s = balanced.posterior(x, torch.Generator().manual_seed(22))
    bias = torch.cat([prior.visible_bias, prior.hidden_bias]).detach()
    group_log_z = torch.stack([F.softplus(bias[:4]).sum(), F.softplus(bias[4:]).sum()])
    exact = balanced.group_kl(s).detach().mean(0) + group_log_z + 0.1
    np.testing.assert_allclose(balanced._balance(s).numpy(), (2 * exact / exact.sum()).numpy(), rtol=1e-12)

    bernoulli = DVAE(balanced.posterior, balanced.decoder, BernoulliPrior(8).double(), kl_balance=0.1)
    with torch.no_grad():
        bernoulli.prior.bias.copy_(bias)
    np.testing.assert_allclose(bernoulli._balance(s).numpy(), (2 * exact / exact.sum()).numpy(), rtol=1e-12)


def test_the_prior_marginals_come_from_the_last_negative_phase():
    """Krichevsky-Trofimov estimates of P(z_l = 1) from the samples, within K_SIGMA standard errors of
    the exact marginals (enumeration); a checkpoint written before they existed loads without them."""
    model, _ = _balanced_pair(0.1)
    prior = model.prior
    assert prior.marginal_logits() is None
    exact = torch.as_tensor(q.exact.marginals(prior.numpy_model()))
    num = 20000
    samples = _exact_samples(prior, num, seed=5)
    prior.log_partition_surrogate(samples)
    ones = samples.sum(0)
    np.testing.assert_allclose(prior.marginal_logits().numpy(), torch.log((ones + 0.5) / (num - ones + 0.5)).numpy())
    assert_within_sigma(torch.sigmoid(prior.marginal_logits()).numpy(), exact.numpy(), num, "marginals")

    old = {k: v for k, v in model.state_dict().items() if "sample_marginal_logits" not in k}
    model.load_state_dict(old)
    assert prior.marginal_logits() is None


def test_kl_balance_is_refused_where_it_does_not_apply():
    from qvae_core.dvae.config import TrainConfig

    with pytest.raises(ValueError, match="kl_balance"):
        TrainConfig(kl_balance=-0.1)
    with pytest.raises(ValueError, match="kl_balance"):
        TrainConfig(kl_balance=0.1, relaxation="mean-field", smoothing="power", beta_start=2.0)
    with pytest.raises(ValueError, match="kl_balance"):
        _balanced_pair(math.nan)
