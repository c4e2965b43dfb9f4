// Shared helpers for the pybind11 bindings: array aliases, shape checks, signal polling.
// Arguments are validated in the Python layer; these checks only guard against misuse of _core.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "qvae/gibbs.hpp"

namespace py = pybind11;

template <class T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;

inline void require_shape(const py::array& a, std::initializer_list<py::ssize_t> shape,
                          const char* name) {
  if (a.ndim() != static_cast<py::ssize_t>(shape.size()))
    throw std::invalid_argument(std::string(name) + ": wrong number of dimensions");
  py::ssize_t d = 0;
  for (py::ssize_t s : shape) {
    if (s >= 0 && a.shape(d) != s)
      throw std::invalid_argument(std::string(name) + ": wrong shape");
    ++d;
  }
}

// Called between rounds of a long run with the GIL released: true once Ctrl-C (or any
// signal handler) has raised, which then propagates when the binding returns.
inline bool poll_signals() {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

// Re-raises a Python exception set by a signal handler during a run.
inline void raise_if_interrupted() {
  if (PyErr_Occurred()) throw py::error_already_set();
}

void register_models(py::module_& m);
void register_gibbs(py::module_& m);
void register_anneal(py::module_& m);
void register_ctqmc(py::module_& m);
