"""Minor embedding (qvae_core.embedding): finding, verifying, saving, embedding, unembedding.

K_8 and an RBM 4x4 on Chimera C(2) and Pegasus P(2): the embeddings verify, a physical state with
intact chains has exactly the logical energy (offset kept), and with strong chains majority-voted
physical samples have the logical model's exact marginals and correlations while the chain-break
fraction goes to zero; with weak chains they do not, and the report shows it.
"""

import itertools

import numpy as np
import pytest
from conftest import all_states, assert_within_sigma

import qvae_core as q

pytest.importorskip("minorminer")
pytest.importorskip("dwave.embedding")
pytest.importorskip("dwave_networkx")
from qvae_core import embedding as E  # noqa: E402

TOPOLOGIES = {"chimera": lambda: q.graphs.chimera(2), "pegasus": lambda: q.graphs.pegasus(2)}


def k8(seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    edges = E.complete_edges(8)
    return q.BoltzmannMachine(rng.normal(0, scale, 8), edges, rng.normal(0, scale, len(edges)))


def rbm44(seed=1, scale=0.5):
    rng = np.random.default_rng(seed)
    return q.RBM(rng.normal(0, scale, (4, 4)), rng.normal(0, scale, 4), rng.normal(0, scale, 4))


def chimera_rbm_chains(topology):
    """Chains of two qubits for an RBM 4x4 on C(2): visible i = horizontal qubit i of cells (0,0) and
    (0,1), hidden j = vertical qubit j of cells (0,0) and (1,0) (dwave-networkx's linear labels:
    cell (r, c) holds 8(2r + c) + [0-3 vertical, 4-7 horizontal])."""
    visible = [[4 + i, 8 + 4 + i] for i in range(4)]
    hidden = [[j, 16 + j] for j in range(4)]
    return visible + hidden


def model_cases():
    """(name, model, embedding) for K_8 and the RBM on both topologies, plus the hand-made RBM chains."""
    cases = []
    for topo_name, make in TOPOLOGIES.items():
        topology = make()
        for model_name, model in (("K8", k8()), ("RBM4x4", rbm44())):
            cases.append((f"{model_name}-{topo_name}", model, E.find_embedding(model, topology, seed=1, timeout=10)))
    chimera = q.graphs.chimera(2)
    cases.append(("RBM4x4-chimera-chains2", rbm44(), E.Embedding(chimera, chimera_rbm_chains(chimera), rbm44().edges)))
    return cases


CASES = model_cases()


def correlations_from(samples, edges):
    s = samples.astype(float)
    return (s[:, edges[:, 0]] * s[:, edges[:, 1]]).mean(axis=0)


@pytest.mark.parametrize("name, model, embedding", CASES, ids=[c[0] for c in CASES])
def test_embeddings_verify_and_survive_a_round_trip(name, model, embedding, tmp_path):
    import minorminer.utils.diagnostic as diagnostic

    chains = {k: chain.tolist() for k, chain in enumerate(embedding.chains)}
    target = embedding.topology.nodes[embedding.topology.edges].tolist()
    source = np.asarray(model.edges).tolist()
    assert diagnostic.is_valid_embedding(chains, source, target)
    assert embedding.num_units == model.num_units and embedding.num_qubits == sum(map(len, embedding.chains))
    physical = embedding.physical_topology
    assert np.array_equal(physical.nodes, np.sort(np.concatenate(embedding.chains)))
    owner = embedding.owner
    intra = embedding.intra_chain
    assert np.array_equal(owner[physical.edges[intra, 0]], owner[physical.edges[intra, 1]])
    assert np.all(owner[physical.edges[~intra, 0]] != owner[physical.edges[~intra, 1]])
    loaded = E.Embedding.load(embedding.save(tmp_path / "emb"), topology=embedding.topology)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.chains, embedding.chains))
    assert np.array_equal(loaded.edges, embedding.edges) and loaded.topology.name == embedding.topology.name
    assert np.array_equal(loaded.physical_topology.edges, physical.edges)


@pytest.mark.parametrize("name, model, embedding", CASES, ids=[c[0] for c in CASES])
def test_intact_chains_have_exactly_the_logical_energy(name, model, embedding):
    embedded = E.embed(model, embedding, 1.7)
    states = all_states(model.num_units)
    physical = embedded.physical.energy(embedding.replicate(states)) + embedded.offset
    np.testing.assert_allclose(physical, model.energy(states), rtol=0, atol=1e-12)
    # docs/conventions.md, "Embedding energies": in spin form the intact chains add exactly -c per chain coupler
    h, edges, J, _ = embedded.physical.to_ising()
    spins = 2.0 * embedding.replicate(states) - 1.0
    chain_energy = (spins[:, edges[:, 0]] * spins[:, edges[:, 1]])[:, embedding.intra_chain] @ J[embedding.intra_chain]
    np.testing.assert_allclose(chain_energy, -1.7 * embedding.intra_chain.sum(), atol=1e-9)


@pytest.mark.parametrize("name, model, embedding", CASES, ids=[c[0] for c in CASES])
def test_physical_model_is_dwave_systems_embed_bqm(name, model, embedding):
    """Same h, J and offset as dwave-system's embed_bqm (spin smearing) of the model's Ising form."""
    import dimod
    import networkx as nx
    from dwave.embedding import embed_bqm

    h, edges, J, offset = model.to_ising()
    bqm = dimod.BinaryQuadraticModel.from_ising(dict(enumerate(h)), dict(zip(map(tuple, edges.tolist()), J)), offset)
    target = nx.Graph(embedding.topology.nodes[embedding.topology.edges].tolist())
    reference = embed_bqm(bqm, dict(enumerate(map(list, embedding.chains))), target, chain_strength=1.3)
    embedded = E.embed(model, embedding, 1.3)
    hp, ep, Jp, _ = embedded.physical.to_ising()
    labels = embedding.physical_topology.nodes
    for k, qubit in enumerate(labels):
        assert hp[k] == pytest.approx(reference.linear[int(qubit)], abs=1e-12)
    couplers = {tuple(sorted((int(labels[a]), int(labels[b])))): Jp[k] for k, (a, b) in enumerate(ep)}
    used = {tuple(sorted(pair)): value for pair, value in reference.quadratic.items()}
    assert couplers.keys() == used.keys()
    assert all(couplers[pair] == pytest.approx(value, abs=1e-12) for pair, value in used.items())
    # both are exact on intact chains: E_logical = H_target + target offset
    states = all_states(model.num_units)
    spins = 2.0 * embedding.replicate(states) - 1.0
    reference_energy = [reference.energy(dict(zip(labels.tolist(), s))) for s in spins[:64]]
    np.testing.assert_allclose(reference_energy, model.energy(states[:64]), atol=1e-12)


def _sample_unembedded(model, embedding, chain_strength, *, chains=4000, sweeps=3000, seed=2):
    embedded = E.embed(model, embedding, chain_strength)
    z = q.GibbsSampler(embedded.physical, chains, seed=seed).run(sweeps)
    return E.unembed(z, embedding, "majority_vote", seed=seed + 1)


STRONG = [c for c in CASES if c[0] in ("K8-chimera", "K8-pegasus", "RBM4x4-chimera-chains2")]


@pytest.mark.parametrize("name, model, embedding", STRONG, ids=[c[0] for c in STRONG])
def test_strong_chains_give_the_logical_distribution(name, model, embedding):
    """c = 3 (spin units): chains break in under 1% of the samples, fewer than at c = 2 and c = 1, and
    the majority-voted samples (4000 independent chains after 3000 sweeps) have the exact logical
    marginals and pair correlations within 5 standard errors."""
    fractions = [_sample_unembedded(model, embedding, c, chains=1000, sweeps=300).break_fraction for c in (1.0, 2.0)]
    strong = _sample_unembedded(model, embedding, 3.0)
    assert strong.samples.shape == (4000, model.num_units)
    assert fractions[0] > fractions[1] > strong.break_fraction and strong.break_fraction < 0.01
    assert strong.sample_break_fraction.shape == (4000,) and strong.chain_break_fraction.shape == (model.num_units,)
    assert_within_sigma(strong.samples.mean(axis=0), q.exact.marginals(model), 4000, f"{name} marginals")
    pairs = np.array(list(itertools.combinations(range(model.num_units), 2)))
    exact = q.exact.correlations(model)[pairs[:, 0], pairs[:, 1]]
    assert_within_sigma(correlations_from(strong.samples, pairs), exact, 4000, f"{name} correlations")


@pytest.mark.parametrize("name, model, embedding", STRONG[:2], ids=[c[0] for c in STRONG[:2]])
def test_weak_chains_break_and_bias_the_samples(name, model, embedding):
    weak = _sample_unembedded(model, embedding, 0.05, chains=4000, sweeps=200)
    assert weak.break_fraction > 0.2
    assert np.all(weak.chain_break_fraction > 0.1)  # every chain (all longer than one qubit) breaks often
    exact = q.exact.marginals(model)
    z = np.abs(weak.samples.mean(axis=0) - exact) / np.sqrt(exact * (1 - exact) / 4000)
    assert z.max() > 10, "weak chains should visibly bias the marginals"


# ---- unembedding ---------------------------------------------------------------------------------


def line_embedding():
    """Two chains on C(1): unit 0 = qubits {0, 4, 1} (a path through the cell), unit 1 = {5, 2}."""
    topology = q.graphs.chimera(1)
    return E.Embedding(topology, [[0, 4, 1], [5, 2]], [[0, 1]])


def test_unembedding_methods_and_chain_break_report():
    emb = line_embedding()
    labels = emb.physical_topology.nodes.tolist()  # [0, 1, 2, 4, 5]

    def physical(values):  # {label: bit} -> row in physical unit order
        return [values[label] for label in labels]

    rows = np.array([
        physical({0: 1, 4: 1, 1: 1, 5: 0, 2: 0}),  # both intact: (1, 0)
        physical({0: 1, 4: 0, 1: 1, 5: 1, 2: 1}),  # chain 0 broken, 2 of 3 ones: majority 1
        physical({0: 0, 4: 0, 1: 0, 5: 1, 2: 0}),  # chain 1 broken, a tie
    ], dtype=np.uint8)
    vote = E.unembed(rows, emb, seed=0)
    np.testing.assert_array_equal(vote.samples[:2], [[1, 0], [1, 1]])
    assert vote.samples[2, 0] == 0
    np.testing.assert_array_equal(vote.broken, [[False, False], [True, False], [False, True]])
    np.testing.assert_allclose(vote.sample_break_fraction, [0, 0.5, 0.5])
    np.testing.assert_allclose(vote.chain_break_fraction, [1 / 3, 1 / 3])
    assert vote.break_fraction == pytest.approx(2 / 6)
    kept = E.unembed(rows, emb, "discard")
    np.testing.assert_array_equal(kept.rows, [0])
    np.testing.assert_array_equal(kept.samples, [[1, 0]])
    assert kept.broken.shape == (3, 2)


def test_majority_vote_ties_are_seeded_and_fair():
    emb = line_embedding()
    labels = emb.physical_topology.nodes.tolist()
    tie = np.array([[{0: 0, 4: 0, 1: 0, 5: 1, 2: 0}[label] for label in labels]] * 4000, dtype=np.uint8)
    a, b, c = (E.unembed(tie, emb, seed=s).samples[:, 1] for s in (5, 5, 6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert_within_sigma(a.mean(), 0.5, 4000, "tie-break frequency")


def test_weighted_random_follows_the_chain_votes():
    emb = line_embedding()
    labels = emb.physical_topology.nodes.tolist()
    row = [{0: 1, 4: 0, 1: 1, 5: 1, 2: 0}[label] for label in labels]  # chain 0: 2 of 3 ones, chain 1: 1 of 2
    picked = E.unembed(np.array([row] * 6000, dtype=np.uint8), emb, "weighted_random", seed=1).samples
    assert_within_sigma(picked.mean(axis=0), [2 / 3, 1 / 2], 6000, "weighted random")
    again = E.unembed(np.array([row] * 6000, dtype=np.uint8), emb, "weighted_random", seed=1).samples
    np.testing.assert_array_equal(picked, again)


def test_uniform_torque_compensation_is_dwave_systems():
    import dimod
    from dwave.embedding.chain_strength import uniform_torque_compensation

    model = k8(seed=3)
    h, edges, J, offset = model.to_ising()
    bqm = dimod.BinaryQuadraticModel.from_ising(dict(enumerate(h)), dict(zip(map(tuple, edges.tolist()), J)), offset)
    emb = CASES[0][2]
    rule = E.uniform_torque_compensation(2.0)
    assert rule(model, emb) == pytest.approx(uniform_torque_compensation(bqm, prefactor=2.0))
    embedded = E.embed(model, emb, rule)
    assert embedded.chain_strength == pytest.approx(rule(model, emb))
    assert np.all(embedded.physical.to_ising()[2][emb.intra_chain] == pytest.approx(-embedded.chain_strength))


def test_clique_embedding_needs_a_family_for_a_renamed_topology():
    topology = q.graphs.chimera(2)._replace(name="my chip")
    emb = E.find_embedding(k8(), topology, seed=0)  # no family: minorminer's heuristic
    assert emb.num_units == 8
    clique = E.find_embedding(k8(), topology, family={"type": "chimera", "shape": [2, 2, 4]}, method="clique")
    assert set(clique.chain_lengths.tolist()) == {3}
    with pytest.raises(ValueError, match="family"):
        E.find_embedding(k8(), topology, method="clique")


def test_small_cliques_avoid_the_busclique_abort():
    """minorminer 0.2.22's busclique kills the process for K_3, K_4 on Chimera (t = 4) and K_5 to K_8 on
    Zephyr (t = 4): those go to the heuristic, and an explicit clique request is refused."""
    for topology, k in ((q.graphs.chimera(2), 4), (q.graphs.zephyr(2), 6)):
        model = q.BoltzmannMachine(np.zeros(k), E.complete_edges(k), np.zeros(k * (k - 1) // 2))
        assert E.find_embedding(model, topology, seed=0).num_units == k
        with pytest.raises(ValueError, match="method: busclique aborts"):
            E.find_embedding(model, topology, method="clique")


def test_seeded_search_is_reproducible():
    topology = q.graphs.pegasus(2)
    a, b = (E.find_embedding(k8(), topology, seed=4, method="heuristic", timeout=10) for _ in range(2))
    assert all(np.array_equal(x, y) for x, y in zip(a.chains, b.chains))


# ---- bad input -----------------------------------------------------------------------------------


def test_an_embedding_of_another_topology_is_refused(tmp_path):
    emb = CASES[0][2]
    path = emb.save(tmp_path / "k8")
    with pytest.raises(ValueError, match="topology: .* belongs to topology 'chimera\\(2,2,4\\)'"):
        E.Embedding.load(path, topology=q.graphs.chimera(3))
    with pytest.raises(ValueError, match="chains\\[.*\\]: qubit .* is not a qubit of topology"):
        E.Embedding(q.graphs.chimera(1), emb.chains, emb.edges)
    with pytest.raises(ValueError, match="topology: .* is not a subgraph of a pegasus"):
        E.find_embedding(k8(), q.graphs.chimera(2)._replace(name="pegasus(2)"), method="clique")


def test_broken_overlapping_and_incomplete_chains_are_refused():
    topology = q.graphs.chimera(1)
    with pytest.raises(ValueError, match="chains\\[0\\]: .*not connected.*broken chain"):
        E.Embedding(topology, [[0, 1], [4]], [[0, 1]])  # qubits 0 and 1 share no coupler
    with pytest.raises(ValueError, match="chains: qubit 4 is in chains 0 and 1"):
        E.Embedding(topology, [[0, 4], [4, 1]], [[0, 1]])
    with pytest.raises(ValueError, match="edges: logical edge \\(0, 1\\) has no coupler"):
        E.Embedding(topology, [[0], [1]], [[0, 1]])
    with pytest.raises(ValueError, match="chains\\[1\\]: a chain needs at least one qubit"):
        E.Embedding(topology, [[0], []], np.zeros((0, 2)))
    with pytest.raises(ValueError, match="chains\\[0\\]: lists a qubit twice"):
        E.Embedding(topology, [[0, 4, 0]], np.zeros((0, 2)))


def test_models_larger_than_the_topology_are_refused():
    big = q.BoltzmannMachine(np.zeros(9), E.complete_edges(9), np.zeros(36))
    with pytest.raises(ValueError, match="model: 9 units, more than the 8 qubits"):
        E.find_embedding(big, q.graphs.chimera(1))
    k6 = q.BoltzmannMachine(np.zeros(6), E.complete_edges(6), np.zeros(15))
    with pytest.raises(ValueError, match="topology: busclique found no clique embedding of K_6"):
        E.find_embedding(k6, q.graphs.chimera(1))  # a Chimera cell holds K_5 at most
    with pytest.raises(ValueError, match="topology: minorminer.find_embedding found no embedding"):
        E.find_embedding(k6, q.graphs.chimera(1), method="heuristic", timeout=1)


@pytest.mark.parametrize("strength", [0.0, -1.0, float("nan"), float("inf"), "strong", lambda m, e: 0.0])
def test_non_positive_chain_strengths_are_refused(strength):
    name, model, emb = CASES[0]
    with pytest.raises(ValueError, match="chain_strength"):
        E.embed(model, emb, strength)


def test_mismatched_models_and_samples_are_refused(tmp_path):
    _, model, emb = CASES[0]
    with pytest.raises(ValueError, match="model: 16 units, the embedding has 8 chains"):
        E.embed(q.BoltzmannMachine(np.zeros(16), np.zeros((0, 2)), np.zeros(0)), emb, 1.0)
    rbm_emb = CASES[1][2]
    with pytest.raises(ValueError, match="model: edge \\(0, 1\\) is not an edge of the embedding's logical graph"):
        E.embed(model, rbm_emb, 1.0)  # K_8's edges on an RBM's embedding
    with pytest.raises(ValueError, match="samples: expected shape"):
        E.unembed(np.zeros((3, 5), np.uint8), emb)
    with pytest.raises(ValueError, match="method"):
        E.unembed(np.zeros((3, emb.num_qubits), np.uint8), emb, "minimize_energy")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz: not an embedding file"):
        E.Embedding.load(bad)
    with pytest.raises(ValueError, match="model: expected an RBM or a BoltzmannMachine"):
        E.find_embedding("K8", q.graphs.chimera(2))
