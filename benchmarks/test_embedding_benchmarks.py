"""Minor embedding of paper 004's K_60 prior: time to find clique (and heuristic) embeddings in Chimera
C(16) and Pegasus P(16), and sweeps per second of the classical emulation of the embedded physical
model against dwave-samplers' SimulatedAnnealingSampler doing the same sweeps (_embedding_cases)."""

from __future__ import annotations

import pytest
from _embedding_cases import RUNNERS, TOPOLOGIES, best_seconds, busclique_call, find, physical_model, runner_available
from _gibbs_cases import benchmark_best_rate

pytest.importorskip("minorminer")
CASES = [(name, "clique") for name in TOPOLOGIES] + [("chimera(16)", "heuristic")]
_EMBEDDINGS = {}


def embedding_of(topology: str, method: str):
    if (topology, method) not in _EMBEDDINGS:
        _EMBEDDINGS[topology, method] = find(topology, method)
    return _EMBEDDINGS[topology, method]


@pytest.mark.parametrize("topology, method", CASES, ids=[f"{t}-{m}" for t, m in CASES])
def test_find_embedding_of_k60(benchmark, embedding_results, topology, method):
    benchmark.group = "find K_60 embedding"
    rounds = 3 if method == "clique" else 1
    found = benchmark.pedantic(find, args=(topology, method), rounds=rounds, iterations=1)
    _EMBEDDINGS[topology, method] = found
    alone = best_seconds(busclique_call(topology), 3) if method == "clique" else None
    benchmark.extra_info.update(qubits=found.num_qubits, busclique_seconds=alone)
    if benchmark.enabled:
        embedding_results.embeddings[topology, method] = (found, benchmark.stats.stats.min, alone)


@pytest.mark.parametrize("topology, method", CASES, ids=[f"{t}-{m}" for t, m in CASES])
@pytest.mark.parametrize("runner", RUNNERS)
def test_emulation_sweeps(benchmark, embedding_results, runner, topology, method):
    if not runner_available(runner):
        pytest.skip("dwave-samplers is not installed")
    case = f"{topology} {method}"
    benchmark.group = f"emulation {case}"
    embedding = embedding_of(topology, method)
    rate = benchmark_best_rate(benchmark, RUNNERS[runner](physical_model(embedding)))
    if rate is not None:
        benchmark.extra_info["sweeps_per_s"] = embedding_results.rates[runner, case] = rate
        embedding_results.qubits[case] = embedding.num_qubits
