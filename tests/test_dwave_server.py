"""The local SAPI server against the real dwave-cloud-client (and raw HTTP): routes, media types,
QPU-style checks, Boltzmann answers at beta, long polling, cancel, the CLI. Loopback only."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import assert_within_sigma, ising_energy, local_solvers

import qvae_core as q

pytest.importorskip("dwave.cloud")
pytest.importorskip("dwave_networkx")
import requests  # noqa: E402
from dwave.cloud import Client, api  # noqa: E402
from dwave.cloud.coders import encode_problem_as_qp  # noqa: E402
from dwave.cloud.exceptions import CanceledFutureError, SolverAuthenticationError, SolverFailureError  # noqa: E402

from qvae_core import dwave as qd  # noqa: E402
from qvae_core.cli import main  # noqa: E402

BETA = 1.5
CHIMERA = "local_chimera_1x2x4"


def media(name):
    return f"application/vnd.dwave.sapi.{name}+json; version=3.0.0"


@pytest.fixture
def server():
    with qd.SAPIServer(local_solvers(), beta=BETA, sweeps=300, seed=7, token="secret") as srv:
        yield srv


@pytest.fixture
def client(server):
    with Client(**server.client_options()) as c:
        yield c


def http(server, method, path, token="secret", **kwargs):
    with requests.Session() as session:
        session.trust_env = False  # never through a proxy
        headers = {"X-Auth-Token": token} if token else {}
        return session.request(method, server.endpoint + path, headers=headers, timeout=10, **kwargs)


def solved(client, **params):
    solver = client.get_solver(name=CHIMERA)
    future = solver.sample_ising({v: 0.1 for v in solver.nodes}, {}, **params)
    future.result()
    return future


# ---- routes, media types, auth ------------------------------------------------------------------


def test_every_route_answers_with_the_media_type_the_client_checks(server, client):
    pid = solved(client, num_reads=3).id
    routes = [
        ("GET", "solvers/remote/", "solver-definition-list"),
        ("GET", f"solvers/remote/{CHIMERA}", "solver-definition"),
        ("GET", "problems/", "problems"),
        ("GET", f"problems/?id={pid}&timeout=1", "problems"),
        ("GET", f"problems/{pid}/", "problem"),
        ("GET", f"problems/{pid}/info", "problem-data"),
        ("GET", f"problems/{pid}/answer", "problem-answer"),
        ("GET", f"problems/{pid}/messages", "problem-message"),
        ("DELETE", f"problems/{pid}", None),  # finished: 409, a JSON error
    ]
    for method, path, name in routes:
        response = http(server, method, path)
        if name is None:
            assert response.status_code == 409 and response.json()["error_code"] == 409
        else:
            assert response.status_code == 200, path
            assert response.headers["Content-Type"] == media(name), path


def test_tokens_are_required(server):
    assert http(server, "GET", "solvers/remote/", token=None).status_code == 401
    assert http(server, "GET", "solvers/remote/", token="wrong").status_code == 401
    with pytest.raises(SolverAuthenticationError):
        with Client(**server.client_options(token="wrong")) as c:
            c.get_solvers()


def test_unknown_solvers_problems_and_paths_are_404(server):
    assert http(server, "GET", "solvers/remote/nope").status_code == 404
    assert http(server, "GET", "problems/nope/").status_code == 404
    assert http(server, "GET", "elsewhere").status_code == 404


def test_solver_field_filters(server):
    dynamic = http(server, "GET", "solvers/remote/", params={"filter": "none,+identity,+status,+avg_load"}).json()
    assert [sorted(d) for d in dynamic] == [["avg_load", "identity", "status"]] * 3
    static = http(server, "GET", f"solvers/remote/{CHIMERA}",
                  params={"filter": "all,-status,-properties.couplers"}).json()
    assert "status" not in static and "couplers" not in static["properties"] and "qubits" in static["properties"]


def test_binds_to_loopback_only(server):
    assert server.address[0] == "127.0.0.1"
    with pytest.raises(ValueError, match="loopback"):
        qd.SAPIServer([qd.qpu_solver("chimera", 1)], host="0.0.0.0")


# ---- the client's view of the solvers ---------------------------------------------------------------


def test_client_sees_qpu_solvers_with_inactive_qubits_absent(client):
    solvers = {s.name: s for s in client.get_solvers(qpu=True)}
    assert set(solvers) == {CHIMERA, "local_pegasus_2", "local_zephyr_1x2"}
    chimera = solvers[CHIMERA]
    assert chimera.num_qubits == 16 and chimera.num_active_qubits == 14 and not {3, 12} & chimera.nodes
    assert chimera.properties["topology"] == {"type": "chimera", "shape": [1, 2, 4]}
    assert client.get_solver(topology__type="zephyr").name == "local_zephyr_1x2"


@pytest.mark.parametrize("name", [CHIMERA, "local_pegasus_2", "local_zephyr_1x2"])
@pytest.mark.parametrize("answer_mode", ["raw", "histogram"])
def test_answers_decode_to_spins_with_their_energies(client, name, answer_mode):
    solver = client.get_solver(name=name)
    rng = np.random.default_rng(0)
    qubits = np.array(sorted(solver.nodes))
    used = qubits[: len(qubits) - 3]  # leave a few working qubits out of the problem
    graph = qd.working_graph(solver, qubits=used)
    h, J = rng.normal(size=graph.num_units), rng.normal(size=len(graph.edges)) * 0.5
    linear = dict(zip(graph.nodes.tolist(), h))
    quadratic = dict(zip(map(tuple, graph.nodes[graph.edges].tolist()), J))
    future = solver.sample_ising(linear, quadratic, offset=2.0, num_reads=50, answer_mode=answer_mode)
    samples = np.asarray(future.samples)
    assert list(future.variables) == used.tolist()
    assert np.all(np.isin(samples[:, used], [-1, 1]))
    assert np.all(samples[:, np.setdiff1d(np.arange(solver.num_qubits), used)] == 0)
    counts = np.asarray(future.num_occurrences)
    assert counts.sum() == 50 and (answer_mode == "histogram" or np.all(counts == 1))
    energies = ising_energy(h, graph.edges, J, samples[:, graph.nodes]) + 2.0
    np.testing.assert_allclose(future.energies, energies, rtol=1e-12, atol=1e-12)
    if answer_mode == "histogram":
        assert np.all(np.diff(future.energies) >= 0) and len(np.unique(samples, axis=0)) == len(samples)
    assert future.timing["qpu_access_time"] > 0


def test_qubo_answers_are_binary_with_qubo_energies(client):
    solver = client.get_solver(name=CHIMERA)
    rng = np.random.default_rng(1)
    graph = qd.working_graph(solver)
    Q = {(v, v): float(rng.normal()) for v in graph.nodes.tolist()}
    Q.update({tuple(p): float(rng.normal()) for p in graph.nodes[graph.edges].tolist()})
    future = solver.sample_qubo(Q, num_reads=20)
    x = np.asarray(future.samples)[:, graph.nodes].astype(float)
    assert np.all(np.isin(x, [0, 1]))
    position = {v: k for k, v in enumerate(graph.nodes.tolist())}
    expected = sum(c * x[:, position[a]] * x[:, position[b]] for (a, b), c in Q.items())
    np.testing.assert_allclose(future.energies, expected, atol=1e-12)


# ---- Boltzmann answers at beta ---------------------------------------------------------------------


@pytest.mark.parametrize("auto_scale", [False, True])
def test_answers_are_boltzmann_samples_at_beta(client, auto_scale):
    """Reads follow exp(-beta H / r), r the auto_scale factor (1 when off): exact marginals, correlations."""
    solver = client.get_solver(name=CHIMERA)
    graph = qd.working_graph(solver)
    rng = np.random.default_rng(2)
    h, J = rng.uniform(-1.0, 1.0, graph.num_units), rng.uniform(-0.5, 0.5, len(graph.edges))
    num_reads = 10000
    future = solver.sample_ising(dict(zip(graph.nodes.tolist(), h)),
                                 dict(zip(map(tuple, graph.nodes[graph.edges].tolist()), J)),
                                 num_reads=num_reads, answer_mode="raw", auto_scale=auto_scale)
    z = (np.asarray(future.samples)[:, graph.nodes] > 0).astype(float)
    r = max(h.max() / 4, h.min() / -4, J.max() / 1, J.min() / -1) if auto_scale else 1.0
    model, _ = q.BoltzmannMachine.from_ising(BETA * h / r, graph.edges, BETA * J / r)
    assert_within_sigma(z.mean(axis=0), q.exact.marginals(model), num_reads, "marginals")
    assert_within_sigma(z.T @ z / num_reads, q.exact.correlations(model), num_reads, "correlations")


# ---- QPU-style checks: refused problems fail at result time ----------------------------------------


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(num_reads=10001), "num_reads"),
        (dict(num_reads=600, annealing_time=2000.0), "num_reads"),
        (dict(anneal_schedule=[[0, 0], [0.1, 1]]), "slope"),
        (dict(anneal_schedule=[[0, 0], [20, 1]], annealing_time=20.0), "conflicts with anneal_schedule"),
        (dict(annealing_time=0.1), "annealing_time"),
        (dict(answer_mode="all"), "answer_mode"),
        (dict(x_experimental=1), "unknown parameter"),
        (dict(auto_scale=False, h_scale=5.0), "h_range"),
    ],
)
def test_invalid_problems_fail_like_on_a_qpu(client, params, match):
    solver = client.get_solver(name=CHIMERA)
    params = dict(params)
    scale = params.pop("h_scale", 1.0)
    future = solver.sample_ising({v: scale for v in solver.nodes}, {}, **params)
    with pytest.raises(SolverFailureError, match=match):
        future.result()


def test_j_out_of_range_fails_without_auto_scale_and_is_scaled_with_it(client):
    solver = client.get_solver(name=CHIMERA)
    (a, b), *_ = sorted(solver.undirected_edges)
    with pytest.raises(SolverFailureError, match=r"1 of 1 J values outside j_range .* with auto_scale off"):
        solver.sample_ising({a: 0.0, b: 0.0}, {(a, b): -1.5}, auto_scale=False).result()
    # auto_scale on: J runs as J / r, r = -1.5 / j_range[0] = 1.5; the energies stay those of the J submitted
    num_reads = 5000
    future = solver.sample_ising({a: 0.0, b: 0.0}, {(a, b): -1.5}, num_reads=num_reads, answer_mode="raw")
    spins = np.asarray(future.samples)[:, [a, b]]
    aligned = spins[:, 0] == spins[:, 1]
    np.testing.assert_array_equal(future.energies, np.where(aligned, -1.5, 1.5))
    # P(aligned) = 1 / (1 + exp(-2 beta |J| / r)): 0.953 scaled, 0.989 unscaled (12 standard errors apart)
    assert_within_sigma(aligned.mean(), 1.0 / (1.0 + np.exp(-2.0 * BETA * 1.0)), num_reads, "P(aligned)")


# ---- long polling, cancel, compressed uploads ------------------------------------------------------


def test_long_polls_wait_for_an_answer_and_no_longer(server, client):
    server.inject("slow", 1, delay=1.5)
    solver = client.get_solver(name=CHIMERA)
    future = solver.sample_ising({v: 0.1 for v in solver.nodes}, {}, num_reads=2)
    pid = future.wait_id(timeout=10)
    start = time.monotonic()
    statuses = http(server, "GET", f"problems/?id={pid}&timeout=0.5").json()
    assert statuses[0]["status"] in ("PENDING", "IN_PROGRESS") and 0.4 < time.monotonic() - start < 1.4
    statuses = http(server, "GET", f"problems/?id={pid}&timeout=10").json()
    assert statuses[0]["status"] == "COMPLETED" and time.monotonic() - start < 5
    assert future.wait(10) and future.remote_status == "COMPLETED"
    for timeout in ("nan", "inf", "soon"):  # NaN never expired: the handler waited forever
        assert http(server, "GET", f"problems/?id={pid}&timeout={timeout}").status_code == 400


def test_malformed_jobs_are_refused_with_400(server):
    for job in ({"solver": ["x"], "type": "ising", "data": {}}, {"solver": CHIMERA, "type": "ising", "data": [1]},
                {"solver": CHIMERA, "type": "ising", "data": {}, "params": [1]}):
        answer = http(server, "POST", "problems/", json=job).json()
        assert answer["error_code"] == 400, answer


def test_cancelled_problems_end_cancelled(server, client):
    server.inject("slow", 1, delay=30)
    solver = client.get_solver(name=CHIMERA)
    future = solver.sample_ising({v: 0.1 for v in solver.nodes}, {}, num_reads=2)
    future.wait_id(timeout=10)
    future.cancel()
    assert future.wait(10)
    with pytest.raises(CanceledFutureError):
        future.result()
    assert [p["status"] for p in server.problems()] == ["CANCELLED"]


def test_compressed_chunked_uploads_through_the_api_resources(server, client):
    """dwave.cloud.api.Problems sends deflate-compressed, chunked bodies; every model parses."""
    solver = client.get_solver(name="local_pegasus_2")
    problems = api.Problems.from_config(client.config)
    assert client.config.compress_qpu_problem_data
    data = encode_problem_as_qp(solver, {v: 0.5 for v in solver.nodes}, {e: -0.25 for e in solver.undirected_edges})
    status = problems.submit_problem(data=api.models.ProblemData.model_validate(data), params={"num_reads": 7},
                                     solver=solver.identity, type="ising", label="chunked")
    assert http(server, "GET", f"problems/?id={status.id}&timeout=10").json()[0]["status"] == "COMPLETED"
    assert problems.get_problem(status.id).answer.num_variables == 48
    assert problems.get_problem_info(status.id).metadata.label == "chunked"
    assert problems.get_problem_answer(status.id).format == "qp"
    assert problems.get_problem_messages(status.id) == []
    assert problems.cancel_problems([status.id])[0].error_code == 409
    assert [s.identity.name for s in api.Solvers.from_config(client.config).list_solvers()][0] == CHIMERA


# ---- the command line --------------------------------------------------------------------------------


def test_cli_serves_until_interrupted():
    process = subprocess.Popen(
        [sys.executable, "-m", "qvae_core.cli", "sapi-server", "--port", "0", "--solver", "chimera:1,2",
         "--sweeps", "10", "--inject", "rate-limit:1", "--token", "t0k"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        assert "SAPI server on http://127.0.0.1:" in line, line + process.stderr.read()
        endpoint = line.split()[3]
        with requests.Session() as session:
            session.trust_env = False
            listed = session.get(endpoint + "solvers/remote/", headers={"X-Auth-Token": "t0k"}, timeout=10)
            assert [s["identity"]["name"] for s in listed.json()] == ["local_chimera_1x2x4"]
            limited = session.post(endpoint + "problems/", json=[], headers={"X-Auth-Token": "t0k"}, timeout=10)
            assert limited.status_code == 429
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        process.kill()
        process.wait(timeout=20)
        process.stdout.close()
        process.stderr.close()


@pytest.mark.parametrize("argv", [["--host", "0.0.0.0"], ["--solver", "king:3"], ["--inject", "meteor:1"],
                                  ["--port", "70000"], ["--token", ""], ["--beta", "1e300"], ["--solver", "chimera:abc"],
                                  ["--inject", "rate-limit:abc"], ["--inject", "slow:1:5:9"]])
def test_cli_refuses_bad_options(argv, capsys):
    assert main(["sapi-server", "--port", "0", "--solver", "chimera:1"] + argv) == 2
    assert "qvae-core sapi-server:" in capsys.readouterr().err


def test_cli_reports_client_errors_in_one_line(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DWAVE_API_ENDPOINT", server.endpoint)
    monkeypatch.setenv("DWAVE_API_TOKEN", "secret")
    assert main(["working-graph", str(tmp_path / "wg"), "--solver", "{not json"]) == 2
    assert "--solver: not valid JSON" in capsys.readouterr().err
    assert main(["working-graph", str(tmp_path / "wg"), "--solver", "nosuch"]) == 2  # SolverNotFoundError
    assert "qvae-core working-graph: error:" in capsys.readouterr().err
    assert main(["working-graph", str(tmp_path / "wg"), "--solver", CHIMERA]) == 0
    assert f"wrote {tmp_path / 'wg.npz'}:" in capsys.readouterr().out  # the file numpy wrote


def test_solver_definitions_do_not_share_mutable_properties():
    a, b = qd.qpu_solver("chimera", (1, 1)), qd.qpu_solver("chimera", (1, 1))
    a["properties"]["h_range"][0] = -100.0
    a["properties"]["parameters"]["num_reads"] = "changed"
    assert b["properties"]["h_range"][0] != -100.0 and b["properties"]["parameters"]["num_reads"] != "changed"
    assert qd.qpu_solver("chimera", (1, 1))["properties"]["h_range"][0] != -100.0
