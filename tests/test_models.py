"""Energies, the Ising form and its inverse, topologies, and argument validation of the models."""


import numpy as np
import pytest
from conftest import all_states, ising_energy, random_rbm

import qvae_core as q


def brute_rbm_energy(rbm, S):
    v, h = S[:, : rbm.num_visible].astype(float), S[:, rbm.num_visible :].astype(float)
    return -(v @ rbm.visible_bias) - (h @ rbm.hidden_bias) - np.einsum("bi,ij,bj->b", v, rbm.weights, h)


def bm_with_edges(n, num_edges, seed=0):
    """A BoltzmannMachine on n units with exactly num_edges random couplers, N(0, 1) parameters."""
    rng = np.random.default_rng(seed)
    pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n)])
    edges = pairs[rng.choice(len(pairs), num_edges, replace=False)]
    return q.BoltzmannMachine(rng.normal(size=n), edges, rng.normal(size=num_edges))


def test_rbm_energy_matches_definition():
    rbm = random_rbm(3, 4, seed=1)
    S = all_states(7)
    np.testing.assert_allclose(rbm.energy(S), brute_rbm_energy(rbm, S), rtol=0, atol=1e-12)
    assert rbm.num_units == 7 and rbm.energy(S[5]).shape == (1,)


def test_bm_energy_matches_definition():
    bm = bm_with_edges(6, 9, seed=2)
    S = all_states(6)
    z = S.astype(float)
    expected = -(z @ bm.bias) - (z[:, bm.edges[:, 0]] * z[:, bm.edges[:, 1]]) @ bm.weights
    np.testing.assert_allclose(bm.energy(S), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("model", [random_rbm(3, 4, seed=3), bm_with_edges(7, 12, seed=4)], ids=["rbm", "bm"])
def test_to_ising_is_exact_including_offset(model):
    S = all_states(model.num_units)
    h, edges, J, offset = model.to_ising()
    assert offset != 0.0
    np.testing.assert_allclose(ising_energy(h, edges, J, 2.0 * S - 1, offset), model.energy(S), rtol=0, atol=1e-12)


def test_from_ising_round_trip():
    rbm = random_rbm(3, 4, seed=5)
    back, constant = q.RBM.from_ising(*rbm.to_ising(), num_visible=3)
    assert constant == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(back.weights, rbm.weights, atol=1e-12)
    np.testing.assert_allclose(back.visible_bias, rbm.visible_bias, atol=1e-12)
    np.testing.assert_allclose(back.hidden_bias, rbm.hidden_bias, atol=1e-12)
    bm = bm_with_edges(6, 8, seed=6)
    back, constant = q.BoltzmannMachine.from_ising(*bm.to_ising())
    assert constant == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(back.bias, bm.bias, atol=1e-12)
    np.testing.assert_allclose(back.weights, bm.weights, atol=1e-12)


def test_from_ising_keeps_the_constant():
    rng = np.random.default_rng(7)
    h, edges, J = rng.normal(size=5), np.array([[0, 1], [1, 2], [3, 4], [0, 4]]), rng.normal(size=4)
    model, constant = q.BoltzmannMachine.from_ising(h, edges, J, 1.25)
    S = all_states(5)
    np.testing.assert_allclose(model.energy(S) + constant, ising_energy(h, edges, J, 2.0 * S - 1, 1.25), atol=1e-12)


def test_rbm_as_boltzmann_machine_has_the_same_energy():
    rbm = random_rbm(4, 3, seed=8)
    S = all_states(7)
    bm = rbm.to_boltzmann_machine()
    np.testing.assert_allclose(bm.energy(S), rbm.energy(S), atol=1e-12)
    assert bm.num_colors == 2


@pytest.mark.parametrize(
    "make, units, family_colors, dsatur_colors",
    [(lambda: q.graphs.chimera(2), 32, 2, 2), (lambda: q.graphs.pegasus(3), 128, 4, 4),
     (lambda: q.graphs.zephyr(2), 160, 4, 5)],
    ids=["chimera", "pegasus", "zephyr"],
)
def test_topologies_and_colorings(make, units, family_colors, dsatur_colors):
    """A family graph carries dwave-networkx's colouring, which its Boltzmann machines use as blocks;
    DSatur, for other graphs, needs a fifth colour on Zephyr."""
    pytest.importorskip("dwave_networkx")
    topo = make()
    assert topo.num_units == units
    assert np.all(np.diff(topo.nodes) > 0)
    for colors, count in [(topo.colors, family_colors), (q.graphs.coloring(topo.num_units, topo.edges), dsatur_colors)]:
        assert np.all(colors[topo.edges[:, 0]] != colors[topo.edges[:, 1]])
        assert colors.max() + 1 == count
    bm = q.graphs.random_boltzmann_machine(topo, seed=0)
    assert bm.num_units == units
    np.testing.assert_array_equal(bm.colors, topo.colors)


def test_family_colouring_of_a_subgraph_and_of_any_networkx_graph():
    dnx = pytest.importorskip("dwave_networkx")
    import networkx as nx

    full = dnx.zephyr_graph(2)
    part = q.graphs.from_networkx(full.subgraph(range(0, 160, 3)))  # keeps the family attributes
    np.testing.assert_array_equal(part.colors, q.graphs.zephyr(2).colors[::3])
    assert q.graphs.from_networkx(nx.cycle_graph(5)).colors is None
    edited = dnx.chimera_graph(1)
    edited.add_edge(0, 1)  # two qubits of one shore: the family colouring no longer fits
    assert q.graphs.from_networkx(edited).colors is None
    partial = dnx.pegasus_graph(2)
    del partial.graph["rows"]
    assert q.graphs.from_networkx(partial).colors is None
    for args, message in [(("zephyr", [2], [0, 1]), "family"), (("chimera", [1, 1, 4], [8]), "labels"),
                          (("pegasus", [1], [0]), "shape"), (("zephyr", [2, None], [0]), "shape")]:
        with pytest.raises(ValueError, match=message):
            q.graphs.family_colors(*args)


@pytest.mark.parametrize("n, edges, num_colors", [
    (5, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)], 3),  # odd cycle
    (4, [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)], 4),  # K4, inside every Pegasus cell
    (6, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)], 2),  # path: bipartite
    (3, [], 1),
])
def test_coloring_is_proper_and_minimal_on_small_graphs(n, edges, num_colors):
    edges = np.array(edges, np.int64).reshape(-1, 2)
    colors = q.graphs.coloring(n, edges)
    assert np.all(colors[edges[:, 0]] != colors[edges[:, 1]])
    assert colors.max() + 1 == num_colors


def test_inputs_are_not_modified_and_parameters_are_copies():
    W = np.ones((2, 3))
    rbm = q.RBM(W, np.zeros(2), np.zeros(3))
    W[0, 0] = 5.0
    assert rbm.weights[0, 0] == 1.0
    with pytest.raises(ValueError):
        rbm.weights[0, 0] = 2.0
    bm = bm_with_edges(4, 3)
    for model, name in ((rbm, "visible_bias"), (bm, "bias"), (bm, "colors"), (q.QBM(rbm, 1.0), "gamma")):
        with pytest.raises(AttributeError, match="immutable"):  # the compiled copy would disagree
            setattr(model, name, np.ones(5))
    S = np.ones((1, 5), dtype=np.uint8)
    rbm.energy(S)
    assert S.sum() == 5


def test_subclasses_may_add_attributes_and_object_arrays_of_numbers_are_numbers():
    class Tagged(q.RBM):
        def __init__(self, *args):
            super().__init__(*args)
            self.tag = "mine"  # their own attributes: only the parameters are frozen

    assert Tagged(np.ones((2, 3)), [0, 0], [0, 0, 0]).tag == "mine"
    bm = q.BoltzmannMachine([0, 0, 0], np.array([[0, 1], [1, 2]], dtype=object), np.array([1, 1], dtype=object))
    np.testing.assert_array_equal(bm.edges, [[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="weights"):  # but strings in an object array are not numbers
        q.RBM(np.array([["1.5"] * 3] * 2, dtype=object), [0, 0], [0, 0, 0])
    with pytest.raises(ValueError, match="gamma"):  # a ragged gamma names itself
        q.QBM(random_rbm(2, 1), [[1], [1, 2]])
    with pytest.raises(ValueError, match="1000001.0"):  # the offending value, not a rounded one
        q.RBM(np.full((1, 1), 1_000_001.0), [0.0], [0.0])


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize(
    "args, name",
    [
        ((np.ones(3), np.zeros(3), np.zeros(3)), "weights"),
        ((np.ones((2, 3)), np.zeros(3), np.zeros(3)), "visible_bias"),
        ((np.ones((2, 3)), np.zeros(2), np.zeros(2)), "hidden_bias"),
        ((np.full((2, 3), np.nan), np.zeros(2), np.zeros(3)), "weights"),
        ((np.ones((2, 3)), np.array([0.0, np.inf]), np.zeros(3)), "visible_bias"),
        ((np.ones((0, 3)), np.zeros(0), np.zeros(3)), "weights"),
        ((np.ones((2, 3)), np.zeros(2), ["a", "b", "c"]), "hidden_bias"),
        ((np.ones((2, 3)), np.zeros(2), ["1", "2", "3"]), "hidden_bias"),
        ((np.ones((2, 3)) + 1j, np.zeros(2), np.zeros(3)), "weights"),
        ((np.full((2, 3), 1e39), np.zeros(2), np.zeros(3)), "weights"),  # beyond float32 fields
        ((np.ones((2, 3)), np.array([0.0, -2e6]), np.zeros(3)), "visible_bias"),
    ],
)
def test_rbm_bad_input(args, name):
    with pytest.raises(ValueError, match=name):
        q.RBM(*args)


@pytest.mark.parametrize(
    "bias, edges, weights, name",
    [
        (np.zeros(3), [[0, 3]], [1.0], "edges"),
        (np.zeros(3), [[0, -1]], [1.0], "edges"),
        (np.zeros(3), [[1, 1]], [1.0], "self-loop"),
        (np.zeros(3), [[0, 1], [1, 0]], [1.0, 2.0], "duplicate"),
        (np.zeros(3), [[0, 1, 2]], [1.0], "edges"),
        (np.zeros(3), [[0, 1]], [1.0, 2.0], "weights"),
        (np.zeros(3), [[0, 1]], [np.nan], "weights"),
        (np.array([0.0, np.nan, 0.0]), [[0, 1]], [1.0], "bias"),
        (np.zeros(3), [[0.5, 1]], [1.0], "edges"),
        (np.zeros(3), [["0", "1"]], [1.0], "edges"),
        (np.zeros(3), [[0, 1], [1]], [1.0, 1.0], "edges"),
        (np.zeros(3), np.zeros((2, 0)), [], "edges"),
        (np.zeros(0), np.zeros((0, 2)), [], "bias"),
        (np.array([1e7, 0.0, 0.0]), [[0, 1]], [1.0], "bias"),
        (np.zeros(3), [[0, 1]], [-1e39], "weights"),
    ],
)
def test_bm_bad_input(bias, edges, weights, name):
    with pytest.raises(ValueError, match=name):
        q.BoltzmannMachine(bias, edges, weights)


def test_bad_colors():
    with pytest.raises(ValueError, match="colors"):
        q.BoltzmannMachine(np.zeros(3), [[0, 1]], [1.0], colors=[0, 0, 1])
    with pytest.raises(ValueError, match="colors"):
        q.BoltzmannMachine(np.zeros(3), [[0, 1]], [1.0], colors=[0, 1])
    for colors in ([0, -1, 0], [0, 2**31, 0], [0.0, 1.0, 0.0]):
        with pytest.raises(ValueError, match="colors"):
            q.BoltzmannMachine(np.zeros(3), [[0, 1]], [1.0], colors=colors)


def test_colors_become_dense_blocks():
    """Colours name blocks: gaps in the numbering are closed, the order kept."""
    bm = q.BoltzmannMachine(np.zeros(3), [[0, 1], [1, 2]], [1.0, 1.0], colors=[7, 1000, 7])
    np.testing.assert_array_equal(bm.colors, [0, 1, 0])
    assert bm.num_colors == 2


@pytest.mark.parametrize(
    "states",
    [np.array([[0, 1, 2, 0, 1]]), np.zeros((2, 4)), np.full((1, 5), 0.5), np.zeros((2, 2, 5)),
     np.zeros((1, 5), "m8[s]"), np.zeros((1, 5), complex), np.array([["0", "1", "0", "1", "0"]])],
    ids=["non-binary", "width", "fraction", "rank", "timedelta", "complex", "strings"],
)
def test_energy_bad_states(states):
    rbm = random_rbm(2, 3)
    with pytest.raises(ValueError, match="states"):
        rbm.energy(states)


def test_from_ising_bad_input():
    with pytest.raises(ValueError, match="num_visible"):
        q.RBM.from_ising(np.zeros(3), [[0, 2]], [1.0], num_visible=3)
    with pytest.raises(ValueError, match="edges"):
        q.RBM.from_ising(np.zeros(3), [[0, 1]], [1.0], num_visible=1 + 1)
    with pytest.raises(ValueError, match="offset"):
        q.BoltzmannMachine.from_ising(np.zeros(2), [[0, 1]], [1.0], np.nan)
    for num_visible in (3.0, "3", None, True):
        with pytest.raises(ValueError, match="num_visible"):
            q.RBM.from_ising(np.zeros(4), [[0, 3]], [1.0], num_visible=num_visible)


def test_topology_save_and_load(tmp_path):
    pytest.importorskip("dwave_networkx")
    topo = q.graphs.pegasus(2)
    q.graphs.save(topo, tmp_path / "t.npz")
    back = q.graphs.load(tmp_path / "t.npz")
    assert back.name == topo.name
    np.testing.assert_array_equal(back.nodes, topo.nodes)
    np.testing.assert_array_equal(back.edges, topo.edges)
    np.testing.assert_array_equal(back.colors, topo.colors)
    q.graphs.save(topo._replace(colors=None), tmp_path / "plain.npz")
    assert q.graphs.load(tmp_path / "plain.npz").colors is None
    clash = topo.colors.copy()
    clash[topo.edges[0, 1]] = clash[topo.edges[0, 0]]
    for colors, message in [(clash, "share a colour"), (topo.colors[:-1], "colors"), (-topo.colors - 1, "non-negative")]:
        with pytest.raises(ValueError, match=f"topology: .*{message}"):  # save refuses what load would
            q.graphs.save(topo._replace(colors=colors), tmp_path / "c.npz")
        np.savez(tmp_path / "c.npz", name=np.array(topo.name), nodes=topo.nodes, edges=topo.edges, colors=colors)
        with pytest.raises(ValueError, match=f"c.npz: .*{message}"):
            q.graphs.load(tmp_path / "c.npz")
    for bad in (None, topo._replace(name=None), topo._replace(nodes=topo.nodes[::-1])):
        with pytest.raises(ValueError, match="topology"):
            q.graphs.save(bad, tmp_path / "d.npz")
    assert q.graphs.save(topo, tmp_path / "named") == tmp_path / "named.npz"  # the path numpy writes
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "t.npz").read_bytes()[:100])
    np.save(tmp_path / "array.npy", np.zeros(3))
    for path in (tmp_path / "missing.npz", tmp_path / "bad.npz", tmp_path / "empty.npz", tmp_path / "cut.npz",
                 tmp_path / "array.npy"):
        with pytest.raises(ValueError, match=path.name):
            q.graphs.load(path)
    with pytest.raises(ValueError, match="path"):
        q.graphs.load(5)
    for nodes, edges, message in [
        (np.arange(3), np.array([[1, 1]]), "self-loops"),
        (np.array([0, 1, 2**64 - 1], np.uint64), np.zeros((0, 2), int), "nodes"),  # would wrap to -1
        (np.array([0, 2, 1]), np.zeros((0, 2), int), "increasing"),
        (np.arange(2), np.array([["0", "1"]]), "edges"),
    ]:
        np.savez(tmp_path / "x.npz", name=np.array("x"), nodes=nodes, edges=edges)
        with pytest.raises(ValueError, match=f"x.npz: .*{message}"):
            q.graphs.load(tmp_path / "x.npz")


def test_from_networkx_refuses_what_is_not_a_simple_integer_graph():
    nx = pytest.importorskip("networkx")
    for graph, message in [
        (nx.Graph([(0, 0), (0, 1)]), "self-loops"),
        (nx.DiGraph([(0, 1), (1, 0)]), "undirected"),
        (nx.MultiGraph([(0, 1), (0, 1)]), "undirected"),
        (nx.Graph([(0.5, 1.5)]), "integers"),
        (nx.Graph([(0, float("nan"))]), "integers"),
        (nx.Graph([("a", "b")]), "integers"),
        (nx.Graph([(0, 2**63)]), "integers"),
        (None, "networkx graph"),
        ([(0, 1)], "networkx graph"),
    ]:
        with pytest.raises(ValueError, match=f"graph: .*{message}"):
            q.graphs.from_networkx(graph)
    for make in (lambda: q.graphs.chimera(10**6), lambda: q.graphs.pegasus(300), lambda: q.graphs.zephyr(200)):
        with pytest.raises(ValueError, match="MAX_FAMILY_QUBITS"):  # refused before dwave-networkx builds it
            make()
    assert q.graphs.from_networkx(nx.Graph([(0, 1.0), (np.int64(1), 2)])).nodes.tolist() == [0, 1, 2]  # whole numbers
    with pytest.raises(ValueError, match="topology"):
        q.graphs.random_boltzmann_machine(None)
    with pytest.raises(ValueError, match="weight_scale"):
        q.graphs.random_boltzmann_machine(q.graphs.from_networkx(nx.Graph([(0, 1)])), weight_scale=-1.0)


def test_the_compiled_core_refuses_what_would_crash_it():
    """The private _core checks what it indexes with, for callers that bypass the Python layer."""
    from qvae_core import _core

    rbm = random_rbm(2, 2)
    with pytest.raises(ValueError, match="schedule"):  # read past its end
        _core.anneal_rbm(rbm._compiled, 4, 0, 1, np.array([0.0, 0.5]), 0.9, 1, 20, 1)
    with pytest.raises(ValueError, match="edges"):
        _core.greedy_coloring(2, np.array([[0, 5]]))
    with pytest.raises(ValueError, match="weights"):  # a layer without units
        _core.RbmModel(np.zeros((3, 0)), np.zeros(3), np.zeros(0))
    for call in (lambda: _core.RbmChains(None, 1, 0, None), lambda: _core.QmcRbmModel(None, np.ones(4)),
                 lambda: _core.RbmChains(rbm._compiled, 1, 0, None).set_model(None)):
        with pytest.raises(TypeError):  # not a null model dereferenced
            call()

