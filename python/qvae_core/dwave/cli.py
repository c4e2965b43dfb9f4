"""`qvae-core sapi-server`: a local D-Wave Solver API for offline development (loopback only);
`qvae-core working-graph`: a solver's working graph saved for `qvae-core train --prior graph`."""

from __future__ import annotations

_TOPOLOGIES = ("chimera", "pegasus", "zephyr")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sapi-server",
        help="serve a local D-Wave Solver API (Chimera/Pegasus/Zephyr solvers answering with Boltzmann samples)",
        description="Serve the SAPI v3 subset dwave-cloud-client uses on 127.0.0.1, answering with Boltzmann "
        "samples of each submitted Ising problem at inverse temperature --beta. Point a client at it with "
        "DWAVE_API_ENDPOINT and DWAVE_API_TOKEN (printed at start-up).",
    )
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (127.0.0.1 or localhost)")
    p.add_argument("--port", type=int, default=8787, help="port (0 picks a free one)")
    p.add_argument("--solver", action="append", metavar="TOPOLOGY:SHAPE",
                   help="a solver, e.g. chimera:16, chimera:2,2,4, pegasus:6, zephyr:4,4 (repeatable; "
                   "default: chimera:16, pegasus:16, zephyr:6)")
    p.add_argument("--inactive-fraction", type=float, default=0.0, help="fraction of qubits made inactive per solver")
    p.add_argument("--beta", type=float, default=2.0, help="inverse temperature of the answers")
    p.add_argument("--sweeps", type=int, default=1000, help="block-Gibbs sweeps per read")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--token", default=None, help="require this API token (default: accept any)")
    p.add_argument("--inject", action="append", default=[], metavar="FAULT[:COUNT[:SECONDS]]",
                   help="inject faults: rate-limit, server-error, poll-error, failed, truncated, slow "
                   "(e.g. rate-limit:3, slow:2:20)")
    p.set_defaults(func=serve)

    w = subparsers.add_parser(
        "working-graph",
        help="save a QPU solver's working graph (active qubits and couplers) for --prior graph",
        description="Connects with the dwave-cloud-client configuration (config file or DWAVE_API_*) and "
        "writes the solver's working graph as a topology .npz (qvae_core.graphs.load reads it).",
    )
    w.add_argument("output", help="the .npz file to write")
    w.add_argument("--solver", default="", help="solver name or JSON feature filters (default: the configured one)")
    w.set_defaults(func=save_working_graph)


def _solver_definitions(args):
    from .server import default_solvers
    from .solvers import qpu_solver

    if not args.solver:
        return default_solvers(args.inactive_fraction, args.seed)
    definitions = []
    for k, spec in enumerate(args.solver):
        topology, _, shape = spec.partition(":")
        if topology not in _TOPOLOGIES or not shape:
            raise ValueError(f"--solver: expected TOPOLOGY:SHAPE with TOPOLOGY in {_TOPOLOGIES}, got {spec!r}")
        try:
            dims = [int(v) for v in shape.split(",")]
        except ValueError:
            raise ValueError(f"--solver: the shape of {spec!r} must be integers separated by commas") from None
        definitions.append(qpu_solver(topology, dims, inactive_fraction=args.inactive_fraction, seed=args.seed + k))
    return definitions


def _fault(spec: str) -> tuple:
    """(kind, count, delay) of an --inject FAULT[:COUNT[:SECONDS]]; count 1 and delay 0 by default."""
    kind, *fields = spec.split(":")
    try:
        if len(fields) > 2:
            raise ValueError("too many fields")
        count = int(fields[0]) if fields else 1
        delay = float(fields[1]) if len(fields) > 1 else 0.0
    except ValueError:
        raise ValueError(f"--inject: expected FAULT[:COUNT[:SECONDS]], got {spec!r}") from None
    return kind, count, delay


def serve(args) -> int:
    import sys

    from .server import SAPIServer

    server = None
    try:
        server = SAPIServer(_solver_definitions(args), beta=args.beta, sweeps=args.sweeps, seed=args.seed,
                            token=args.token, host=args.host, port=args.port)
        for spec in args.inject:
            kind, count, delay = _fault(spec)
            server.inject(kind, count, delay=delay)
    except (ValueError, OSError) as exc:
        if server is not None:  # a bad --inject: close the socket already bound
            server.stop()
        print(f"qvae-core sapi-server: {exc}", file=sys.stderr)
        return 2
    solvers = ", ".join(f"{d['identity']['name']} ({len(d['properties']['qubits'])} qubits)" for d in server.solvers)
    print(f"SAPI server on {server.endpoint}  solvers: {solvers}\n"
          f"  export DWAVE_API_ENDPOINT={server.endpoint} DWAVE_API_TOKEN={args.token or 'any-token'}\n"
          "  Ctrl-C to stop", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def save_working_graph(args) -> int:
    import json
    import sys

    from ..graphs import save
    from .hardware import working_graph

    try:
        from dwave.cloud import Client
    except ImportError:
        print("qvae-core working-graph: needs dwave-cloud-client: pip install 'qvae-core[dwave]'", file=sys.stderr)
        return 2
    try:
        filters = json.loads(args.solver) if args.solver.startswith("{") else ({"name": args.solver} if args.solver else {})
    except json.JSONDecodeError as exc:
        raise ValueError(f"--solver: not valid JSON feature filters ({exc})") from None
    with Client.from_config() as client:
        solver = client.get_solver(**filters)
        topology = working_graph(solver)
    path = save(topology, args.output)
    print(f"wrote {path}: {topology.name}, {topology.num_units} qubits, {len(topology.edges)} couplers")
    return 0
