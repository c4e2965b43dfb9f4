"""The SAPI `qp` wire format, server side (the client side is dwave.cloud.coders).

Problem: `lin` is one little-endian float64 per solver qubit (in properties["qubits"] order), NaN
for qubits the problem does not use; `quad` is one float64 per coupler (properties["couplers"]
order) whose two qubits are both used. Arrays travel as base64 text.
Answer: `active_variables` (int32 labels), `energies` (float64), `num_occurrences` (int32) and
`solutions`: one row of bits per answer, one bit per active variable, most significant bit
first, each row padded to whole bytes; for Ising problems bit 1 means spin +1.
"""

from __future__ import annotations

import base64
import math
from typing import Mapping, NamedTuple

import numpy as np

__all__ = ["QPProblem", "decode_problem", "encode_answer"]


class QPProblem(NamedTuple):
    """A decoded problem: the used qubits (positions into the solver's qubit list), the couplers
    among them (positions into its coupler list), their biases and the offset."""

    qubits: np.ndarray
    couplers: np.ndarray
    linear: np.ndarray
    quadratic: np.ndarray
    offset: float


def _decode_array(text, dtype: str, name: str) -> np.ndarray:
    if not isinstance(text, str):
        raise ValueError(f"{name}: expected base64 text, got {type(text).__name__}")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError(f"{name}: not base64 ({exc})") from None
    if len(raw) % np.dtype(dtype).itemsize:
        raise ValueError(f"{name}: {len(raw)} bytes is not a whole number of {dtype} values")
    return np.frombuffer(raw, dtype=dtype).copy()


def _encode_array(values, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype=dtype).tobytes()).decode("ascii")


def decode_problem(data: Mapping, couplers: np.ndarray, num_qubits: int) -> QPProblem:
    """Decode `qp` problem data for a solver with `num_qubits` working qubits and `couplers`
    given as (m, 2) positions into its qubit list. Raises ValueError on malformed data."""
    if data.get("format") != "qp":
        raise ValueError(f"data: only the 'qp' format is supported, got {data.get('format')!r}")
    lin = _decode_array(data.get("lin", ""), "<f8", "lin")
    if lin.shape[0] != num_qubits:
        raise ValueError(f"lin: expected {num_qubits} values (one per qubit), got {lin.shape[0]}")
    used = ~np.isnan(lin)
    coupler_used = used[couplers[:, 0]] & used[couplers[:, 1]]
    quad = _decode_array(data.get("quad", ""), "<f8", "quad")
    if quad.shape[0] != int(coupler_used.sum()):
        raise ValueError(
            f"quad: expected {int(coupler_used.sum())} values (couplers between used qubits), got {quad.shape[0]}"
        )
    if not (np.all(np.isfinite(lin[used])) and np.all(np.isfinite(quad))):
        raise ValueError("lin/quad: biases must be finite")
    offset = data.get("offset", 0.0) or 0.0
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not math.isfinite(offset):
        raise ValueError(f"offset: expected a finite number, got {offset!r:.60}")
    return QPProblem(np.flatnonzero(used), np.flatnonzero(coupler_used), lin[used], quad, float(offset))


def encode_answer(bits, active_variables, energies, num_occurrences, num_variables: int, timing: Mapping) -> dict:
    """A `qp` answer: bits (rows, len(active_variables)) of 0/1 in active_variables order."""
    bits = np.asarray(bits, dtype=np.uint8)
    return {
        "format": "qp",
        "num_variables": int(num_variables),
        "active_variables": _encode_array(active_variables, "<i4"),
        "solutions": base64.b64encode(np.packbits(bits, axis=1).tobytes()).decode("ascii"),
        "energies": _encode_array(energies, "<f8"),
        "num_occurrences": _encode_array(num_occurrences, "<i4"),
        "timing": dict(timing),
    }
