"""Wake-sleep gradients of a tiny Helmholtz machine (3 binary pixels, hidden layers of 2 and 2) equal
their exact expectations (paper 004 Eq. 8–9 and 15–18), computed by enumerating every state, for a
dense prior and for a gray-box physical prior (K_2 embedded with chains of two qubits)."""

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("minorminer")
import qvae_core as q  # noqa: E402
from qvae_core import embedding as E  # noqa: E402
from qvae_core.qahm.model import HelmholtzMachine  # noqa: E402
from qvae_core.qahm.priors import DensePrior, GrayBoxPrior  # noqa: E402
from qvae_core.qahm.train import wake_sleep_losses  # noqa: E402

K_SIGMA = 5.0
DATA = np.array([[1, -1, 1], [1, 1, -1], [-1, -1, 1], [1, 1, 1]], dtype=float)  # Q_S: uniform over these


def spins(n):
    return np.array(list(itertools.product([-1.0, 1.0], repeat=n)))


def layer_probability(u, field):
    """π(u | ·) = Π σ(2 u_i x_i) of ±1 rows u against fields x (Eq. 14)."""
    return np.prod(1.0 / (1.0 + np.exp(-2.0 * u * field)), axis=-1)


def params(linear):
    return linear.weight.detach().double().numpy(), linear.bias.detach().double().numpy()


def exact_gradients(model, prior_states, prior_probability, prior_feature, positive_feature):
    """Exact ∇G (generator, prior) and ∇R (recognition) by enumeration.

    prior_states: the sampled model's ±1 states with probabilities prior_probability; prior_feature(s)
    the prior energy's gradient features at those states (∂H/∂θ); positive_feature(u2) the same at
    the replicas of logical states; the logical u2 of each sampled state comes with its probability
    through `to_logical_distribution` below (majority vote with fair ties for the gray box)."""
    B0, b0 = params(model.recognition[0])
    B1, b1 = params(model.recognition[1])
    A1, a1 = params(model.generation[0])
    A0, a0 = params(model.pixels)
    U = spins(2)
    grads = {name: np.zeros_like(p.detach().double().numpy()) for name, p in model.named_parameters()}
    # wake: E_{Q_S(v) Q(u1|v) Q(u2|u1)}
    for v in DATA:
        q1 = layer_probability(U, B0 @ v + b0)
        for u1, p1 in zip(U, q1):
            q2 = layer_probability(U, B1 @ u1 + b1)
            for u2, p2 in zip(U, q2):
                w = p1 * p2 / len(DATA)
                d0 = v - np.tanh(A0 @ u1 + a0)
                grads["pixels.weight"] += w * np.outer(d0, u1)
                grads["pixels.bias"] += w * d0
                d1 = u1 - np.tanh(A1 @ u2 + a1)
                grads["generation.0.weight"] += w * np.outer(d1, u2)
                grads["generation.0.bias"] += w * d1
                for name, feature in positive_feature(u2).items():
                    grads[f"prior.{name}"] -= w * feature  # Eq. 8-9: -<dH>_Q ...
    for s, p in zip(prior_states, prior_probability):
        for name, feature in prior_feature(s).items():
            grads[f"prior.{name}"] += p * feature  # ... + <dH>_rho
    # sleep: E_{P(u2) P(u1|u2) P(v|u1)} of d ln Q(u|v)
    V = spins(3)
    for u2, pu in logical_distribution(model, prior_states, prior_probability).items():
        u2 = np.array(u2)
        for u1, p1 in zip(U, layer_probability(U, A1 @ u2 + a1)):
            for v, pv in zip(V, layer_probability(V, A0 @ u1 + a0)):
                w = pu * p1 * pv
                r0 = u1 - np.tanh(B0 @ v + b0)
                grads["recognition.0.weight"] += w * np.outer(r0, v)
                grads["recognition.0.bias"] += w * r0
                r1 = u2 - np.tanh(B1 @ u1 + b1)
                grads["recognition.1.weight"] += w * np.outer(r1, u1)
                grads["recognition.1.bias"] += w * r1
    return grads


def logical_distribution(model, states, probability):
    """P(u2) of the sampled states mapped to logical ones: as they are (dense) or by majority vote,
    a tie (a broken chain of two) going either way with probability 1/2 (gray box)."""
    prior = model.prior
    result = {}
    if prior.embedding is None:
        for s, p in zip(states, probability):
            result[tuple(s)] = result.get(tuple(s), 0.0) + p
        return result
    for s, p in zip(states, probability):
        choices = []
        for k in range(prior.num_units):
            votes = s[prior.embedding.chain_positions(k)].sum()
            choices.append([np.sign(votes)] if votes != 0 else [-1.0, 1.0])
        for u in itertools.product(*choices):
            result[u] = result.get(u, 0.0) + p / np.prod([len(c) for c in choices])
    return result


def ising_probabilities(states, h, edges, J):
    energy = states @ h + (states[:, edges[:, 0]] * states[:, edges[:, 1]]) @ J
    weights = np.exp(-(energy - energy.min()))
    return weights / weights.sum()


def dense_case():
    prior = DensePrior(2)
    with torch.no_grad():
        prior.h.copy_(torch.tensor([0.4, -0.7]))
        prior.J.copy_(torch.tensor([0.9]))
    states = spins(2)
    probability = ising_probabilities(states, np.array([0.4, -0.7]), np.array([[0, 1]]), np.array([0.9]))
    features = lambda s: {"h": s, "J": np.array([s[0] * s[1]])}  # noqa: E731
    return prior, states, probability, features, features


def gray_box_case():
    topology = q.graphs.chimera(1)
    embedding = E.Embedding(topology, [[0, 4], [1, 5]], [[0, 1]])  # chains of two, two couplers between them
    prior = GrayBoxPrior(embedding, chain_strength=0.6)
    rng = np.random.default_rng(4)
    h, J = rng.normal(0, 0.5, 4), prior.J.detach().double().numpy() + rng.normal(0, 0.4, prior.J.shape[0])
    with torch.no_grad():
        prior.h.copy_(torch.from_numpy(h))
        prior.J.copy_(torch.from_numpy(J))
    edges, owner = prior.edges.numpy(), prior.owner.numpy()
    states = spins(4)
    probability = ising_probabilities(states, h, edges, J)
    physical = lambda s: {"h": s, "J": s[edges[:, 0]] * s[edges[:, 1]]}  # noqa: E731
    replicated = lambda u: physical(u[owner])  # noqa: E731  Eq. 20
    return prior, states, probability, physical, replicated


@pytest.fixture
def one_thread():
    """Tiny tensors: torch's thread pool costs more than the arithmetic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("case", [dense_case, gray_box_case], ids=["dense", "gray-box"])
def test_wake_sleep_gradients_equal_their_exact_expectations(case, one_thread):
    prior, states, probability, sampled_feature, positive_feature = case()
    torch.manual_seed(3)
    model = HelmholtzMachine(3, 0, [2, 2], prior, binary_pixels=True).double()
    with torch.no_grad():
        for p in model.parameters():
            if p is not prior.h and p is not prior.J:
                p.copy_(torch.randn(p.shape, dtype=torch.float64) * 0.8)
    exact = exact_gradients(model, states, probability, sampled_feature, positive_feature)

    rng = np.random.default_rng(0)
    generator = torch.Generator().manual_seed(1)
    pixels = torch.from_numpy(np.repeat(DATA, 100, axis=0))  # Q_S exactly: each image 100 times
    classes = torch.zeros(pixels.shape[0], 0, dtype=torch.float64)
    binary = ((states + 1) / 2).astype(np.uint8)
    rounds = 200
    estimates = {name: [] for name in exact}
    for r in range(rounds):
        drawn = binary[rng.choice(len(states), size=400, p=probability)]  # exact prior samples
        wake, sleep = wake_sleep_losses(model, pixels, classes, drawn, generator, seed=r)
        model.zero_grad()
        (wake + sleep).backward()
        for name, p in model.named_parameters():
            estimates[name].append(-p.grad.double().numpy().copy())  # the estimator of +∇G, +∇R
    for name, values in estimates.items():
        values = np.array(values)
        mean, se = values.mean(axis=0), values.std(axis=0, ddof=1) / np.sqrt(rounds)
        z = np.abs(mean - exact[name]) / np.maximum(se, 1e-12)
        assert z.max() <= K_SIGMA, f"{name}: {z.max():.1f} SE off (estimate {mean}, exact {exact[name]})"
        assert np.abs(exact[name]).max() > 1e-3  # every gradient is non-trivial in this model


def test_prior_energy_is_the_ising_form_of_its_binary_model():
    """The ±1 prior and its {0,1} BoltzmannMachine differ by a constant: the same distribution."""
    prior = DensePrior(4)
    with torch.no_grad():
        prior.h.copy_(torch.tensor([0.3, -0.2, 0.5, 0.1]))
        prior.J.copy_(torch.linspace(-0.5, 0.6, 6))
    u = spins(4)
    z = ((u + 1) / 2).astype(np.uint8)
    difference = prior.energy(torch.from_numpy(u).float()).detach().double().numpy() - prior.numpy_model().energy(z)
    np.testing.assert_allclose(difference, difference[0], atol=1e-5)
    log_p = prior.log_prob_bound(torch.from_numpy(u).float(), q.exact.log_z(prior.numpy_model())).numpy()
    np.testing.assert_allclose(np.exp(log_p).sum(), 1.0, atol=1e-5)
