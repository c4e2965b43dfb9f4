"""The samplers on Dask (qvae_core.distributed): pickling of models, results and samplers, and
annealing runs / log_diag chunks on a 2-worker LocalCluster equal to the serial loop over the same
task seeds, whatever the worker count and when a worker dies mid-run."""

import os
import pickle
import signal
import time

import numpy as np
import pytest
from conftest import all_states, assert_log_z, random_rbm

import qvae_core as q
from qvae_core import distributed, exact, graphs
from qvae_core.seeds import TaskStream, derived_seed

distributed_dask = pytest.importorskip("dask.distributed")


def round_trip(obj):
    return pickle.loads(pickle.dumps(obj))


def small_bm(seed=0):
    rng = np.random.default_rng(seed)
    edges = np.array([(0, 1), (1, 2), (2, 3), (3, 0), (0, 2), (4, 1)])
    return q.BoltzmannMachine(rng.normal(size=5), edges, rng.normal(size=len(edges)))


MODELS = {
    "rbm": random_rbm(3, 4, seed=1),
    "bm": small_bm(2),
    "bm-colors": q.BoltzmannMachine([0.5, -1.0, 0.25], [(0, 1), (1, 2)], [1.0, -2.0], colors=[3, 7, 3]),
    "qbm-rbm": q.QBM(random_rbm(2, 3, seed=3), 0.7),
    "qbm-bm": q.QBM(small_bm(4), np.linspace(0.1, 1.0, 5)),
}


@pytest.mark.parametrize("name", MODELS)
def test_models_pickle_to_equal_models(name):
    model = MODELS[name]
    copy = round_trip(model)
    assert copy == model and hash(copy) == hash(model) and copy is not model
    states = all_states(model.num_units)
    np.testing.assert_array_equal(copy.energy(states), model.energy(states))
    if isinstance(model, q.BoltzmannMachine):
        np.testing.assert_array_equal(copy.colors, model.colors)


def test_models_with_other_parameters_differ():
    rbm = random_rbm(3, 4, seed=1)
    assert rbm != random_rbm(3, 4, seed=2) and rbm != rbm.to_boltzmann_machine()
    assert q.QBM(rbm, 0.5) != q.QBM(rbm, 0.6) and q.QBM(rbm, 0.5) == q.QBM(random_rbm(3, 4, seed=1), 0.5)


def test_topology_pickles_to_an_equal_topology():
    chimera = graphs.chimera(2)
    edited = graphs.from_labels("edited", [0, 2, 5, 9], [(0, 2), (2, 5), (5, 9)])
    for topology in (chimera, edited):
        copy = round_trip(topology)
        assert copy == topology and not copy != topology and hash(copy) == hash(topology)
    assert chimera != edited and chimera != graphs.chimera(3)


def test_anneal_result_pickles_to_an_equal_result():
    result = q.anneal(MODELS["qbm-rbm"], population=100, seed=5)
    copy = round_trip(result)
    assert copy == result and result != q.anneal(MODELS["qbm-rbm"], population=100, seed=6)


@pytest.mark.parametrize("kind", ["gibbs", "path-integral"])
def test_a_pickled_sampler_continues_exactly(kind):
    sampler = (q.GibbsSampler(MODELS["bm"], 16, seed=3) if kind == "gibbs"
               else q.PathIntegralSampler(MODELS["qbm-bm"], 16, seed=3))
    sampler.run(5)
    copy = round_trip(sampler)
    checkpoint = round_trip(sampler.checkpoint())
    assert checkpoint.keys() == sampler.checkpoint().keys()
    np.testing.assert_array_equal(copy.run(7), sampler.run(7))
    np.testing.assert_array_equal(copy.checkpoint()["streams"], sampler.checkpoint()["streams"])


# --- a LocalCluster of 2 single-threaded worker processes ---

@pytest.fixture(scope="module")
def client():
    with distributed_dask.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0",
                                       processes=True) as cluster, distributed_dask.Client(cluster) as c:
        yield c


def serial_runs(model, runs, seed, **options):
    return [q.anneal(model, seed=s, num_threads=1, **options)
            for s in distributed.task_seeds(seed, TaskStream.ANNEAL, runs)]


def test_log_z_of_8_runs_equals_the_serial_runs_and_the_exact_value(client):
    model = MODELS["bm"]
    results = distributed.anneal(model, runs=8, seed=11, client=client, population=200)
    expected = serial_runs(model, 8, 11, population=200)
    assert results == expected
    assert distributed.task_seeds(11, TaskStream.ANNEAL, 2)[1] == derived_seed(11, TaskStream.ANNEAL, 1)
    log_z, std = distributed.log_z(model, runs=8, seed=11, client=client, population=200)
    assert (log_z, std) == q.combine_log_z(expected)
    assert_log_z(log_z, std, exact.log_z(model), cap=0.05)


def test_a_one_worker_cluster_gives_the_same_runs(client):
    with distributed_dask.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster, \
            distributed_dask.Client(cluster) as one:
        assert (distributed.anneal(MODELS["qbm-rbm"], runs=4, seed=2, client=one, population=100)
                == distributed.anneal(MODELS["qbm-rbm"], runs=4, seed=2, client=client, population=100))


def test_log_diag_over_chunks_equals_the_serial_chunks_and_exact(client):
    qbm = MODELS["qbm-rbm"]
    states = np.random.default_rng(0).integers(0, 2, size=(10, qbm.num_units), dtype=np.uint8)
    values, stds = distributed.log_diag(qbm, states, seed=4, chunk_size=3, client=client, population=200)
    seeds = distributed.task_seeds(4, TaskStream.LOG_DIAG, 4)
    parts = [q.log_diag(qbm, states[3 * k: 3 * k + 3], population=200, seed=s, num_threads=1)
             for k, s in enumerate(seeds)]
    np.testing.assert_array_equal(values, np.concatenate([p[0] for p in parts]))
    np.testing.assert_array_equal(stds, np.concatenate([p[1] for p in parts]))
    assert np.all(np.abs(values - exact.log_diag(qbm, states)) <= 0.05)


def test_a_killed_worker_changes_no_result(client):
    model = random_rbm(12, 12, seed=9)
    options = dict(population=3000, sweeps_per_step=10)
    expected = serial_runs(model, 6, 7, **options)
    futures = [client.submit(q.anneal, model, seed=s, num_threads=1, **options)
               for s in distributed.task_seeds(7, TaskStream.ANNEAL, 6)]
    pids = client.run(os.getpid)
    deadline = time.monotonic() + 60
    while True:  # kill a worker while it runs a task
        busy = [w for w, keys in client.processing().items() if keys and w in pids]
        if busy or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert busy, "no worker started a task"
    os.kill(pids[busy[0]], signal.SIGKILL)
    assert not any(f.done() for f in futures[-2:]), "the runs are too short to kill a worker mid-run"
    assert client.gather(futures) == expected
    client.wait_for_workers(2, timeout=60)
    assert busy[0] not in client.scheduler_info()["workers"]  # the nanny started a new worker


def test_arguments_are_checked(client):
    with pytest.raises(ValueError, match="model"):
        distributed.anneal("rbm", runs=2, seed=0, client=client)
    with pytest.raises(ValueError, match="runs"):
        distributed.anneal(MODELS["rbm"], runs=0, seed=0, client=client)
    with pytest.raises(ValueError, match="client"):
        distributed.anneal(MODELS["rbm"], runs=2, seed=0, client=object())
    with pytest.raises(ValueError, match="qbm"):
        distributed.log_diag(MODELS["rbm"], np.zeros((1, 7)), seed=0, client=client)
    with pytest.raises(ValueError, match="population"):
        distributed.anneal(MODELS["rbm"], runs=2, seed=0, client=client, population=1)


def test_dvae_log_z_uses_the_client(client):
    pytest.importorskip("torch")
    from qvae_core.dvae.priors import LOG_Z_RUNS, RBMPrior

    prior = RBMPrior(3, 4)
    model = prior.numpy_model()
    got = prior.log_partition(population=800, seed=3, client=client)
    runs = serial_runs(model, LOG_Z_RUNS, 3, population=800 // LOG_Z_RUNS)
    assert got == q.combine_log_z(runs)
    assert_log_z(*got, exact.log_z(model), cap=0.05)


def test_without_a_client_a_local_cluster_runs_the_tasks():
    model = MODELS["rbm"]
    assert distributed.anneal(model, runs=2, seed=8, population=100) == serial_runs(model, 2, 8, population=100)
