// Shared helpers for the pybind11 bindings: array aliases, shape checks, signal polling.
// The Python layer validates arguments; the shape checks here guard direct use of _core. Checks that
// need the core's own structures (kink lists, random streams of a checkpoint) are made in C++ and
// raise ValueError.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "qvae/gibbs.hpp"

namespace py = pybind11;

template <class T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;

// A new numpy array holding a copy of v.
template <class T>
carray<T> to_array(const std::vector<T>& v) {
  return carray<T>(static_cast<py::ssize_t>(v.size()), v.data());
}

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

// Edges as (m, 2) indices into n units.
inline void require_edges(const carray<std::int64_t>& edges, std::size_t n) {
  require_shape(edges, {-1, 2}, "edges");
  const std::int64_t* e = edges.data();
  for (py::ssize_t k = 0; k < 2 * edges.shape(0); ++k)
    if (e[k] < 0 || e[k] >= static_cast<std::int64_t>(n)) throw std::invalid_argument("edges: index out of range");
}

// Samplers index tables with state bytes: anything but 0/1 is refused at the boundary.
inline void require_binary(const std::uint8_t* p, std::size_t n, const char* name) {
  for (std::size_t i = 0; i < n; ++i)
    if (p[i] > 1) throw std::invalid_argument(std::string(name) + ": values must be 0 or 1");
}
inline void require_binary(const carray<std::uint8_t>& a, const char* name) {
  require_binary(a.data(), static_cast<std::size_t>(a.size()), name);
}

// Called between rounds of a long run with the GIL released: true once Ctrl-C (or any
// signal handler) has raised, which then propagates when the binding returns.
inline bool poll_signals() {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

// poll_signals for a run that reports progress: also calls progress(value) with the GIL held when
// `reached` has changed since the last call. An exception from progress stops the run and is
// re-raised by raise_if_interrupted. progress may be None.
class ProgressPoll {
 public:
  explicit ProgressPoll(const py::object& progress) : progress_(progress) {}
  std::atomic<double>* reached() { return progress_.is_none() ? nullptr : &reached_; }
  bool operator()() {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) return true;
    const double value = reached_.load(std::memory_order_relaxed);
    if (progress_.is_none() || value == last_) return false;
    last_ = value;
    try {
      progress_(value);
    } catch (py::error_already_set& error) {
      error.restore();
      return true;
    }
    return false;
  }

 private:
  const py::object& progress_;
  std::atomic<double> reached_{0.0};
  double last_ = 0.0;
};

// Re-raises a Python exception set by a signal handler during a run.
inline void raise_if_interrupted() {
  if (PyErr_Occurred()) throw py::error_already_set();
}

// Persistent chains of any kind: constructor, run (GIL released, Ctrl-C polled), state, set_model.
template <class Chains, class Model>
py::class_<Chains> bind_chains(py::module_& m, const char* name, const char* run_doc) {
  py::class_<Chains> cls(m, name);
  cls.def(py::init([](std::shared_ptr<Model> model, std::size_t chains, std::uint64_t seed,
                      const py::object& initial) {
            carray<std::uint8_t> holder;
            const std::uint8_t* init = nullptr;
            if (!initial.is_none()) {
              holder = carray<std::uint8_t>::ensure(initial);
              if (!holder) throw std::invalid_argument("initial_state: not an array");
              require_shape(holder, {static_cast<py::ssize_t>(chains),
                                     static_cast<py::ssize_t>(model->num_units())},
                            "initial_state");
              require_binary(holder, "initial_state");
              init = holder.data();
            }
            return std::make_unique<Chains>(model, chains, seed, init);
          }),
          py::arg("model").none(false), py::arg("num_chains"), py::arg("seed"), py::arg("initial_state"))
      .def("run",
           [](Chains& self, std::size_t sweeps, double beta, std::size_t threads) {
             std::size_t done;
             {
               py::gil_scoped_release release;
               done = self.run(sweeps, beta, threads, poll_signals);
             }
             raise_if_interrupted();
             return done;
           },
           py::arg("num_sweeps"), py::arg("beta") = 1.0, py::arg("num_threads") = 0, run_doc)
      .def_property_readonly("state",
                             [](const Chains& self) {
                               carray<std::uint8_t> out({self.num_chains(), self.num_units()});
                               self.get_state(out.mutable_data());
                               return out;
                             })
      .def("set_model", [](Chains& self, std::shared_ptr<Model> model) { self.set_model(model); },
           py::arg("model").none(false))
      .def_property_readonly("num_chains", &Chains::num_chains)
      .def_property_readonly("num_units", &Chains::num_units)
      .def_property_readonly("streams",
                             [](const Chains& self) {
                               carray<std::uint32_t> out({self.num_streams(), qvae::LaneRng::kStateWords});
                               self.get_streams(out.mutable_data());
                               return out;
                             })
      .def("set_streams",
           [](Chains& self, const carray<std::uint32_t>& streams) {
             require_shape(streams, {static_cast<py::ssize_t>(self.num_streams()),
                                     static_cast<py::ssize_t>(qvae::LaneRng::kStateWords)},
                           "streams");
             self.set_streams(streams.data());
           },
           py::arg("streams"), "Sets the random streams, (num_streams, 64) uint32, as `streams` gave them.");
  return cls;
}

void register_models(py::module_& m);
void register_gibbs(py::module_& m);
void register_anneal(py::module_& m);
void register_ctqmc(py::module_& m);
