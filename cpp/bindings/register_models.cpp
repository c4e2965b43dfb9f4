#include <memory>

#include "bindings.hpp"

using qvae::GraphModel;
using qvae::RbmModel;

namespace {

// E for each row of states, (batch, n) uint8 -> (batch,) float64.
template <class Model>
carray<double> energies(const Model& model, const carray<std::uint8_t>& states) {
  require_shape(states, {-1, static_cast<py::ssize_t>(model.num_units())}, "states");
  carray<double> out(states.shape(0));
  {
    py::gil_scoped_release release;
    qvae::energies(model, states.data(), static_cast<std::size_t>(states.shape(0)), out.mutable_data());
  }
  return out;
}

}  // namespace

void register_models(py::module_& m) {
  py::class_<RbmModel, std::shared_ptr<RbmModel>>(m, "RbmModel")
      .def(py::init([](const carray<double>& w, const carray<double>& a, const carray<double>& b) {
             require_shape(w, {-1, -1}, "weights");
             if (w.shape(0) == 0 || w.shape(1) == 0) throw std::invalid_argument("weights: both layers need units");
             require_shape(a, {w.shape(0)}, "visible_bias");
             require_shape(b, {w.shape(1)}, "hidden_bias");
             return std::make_shared<RbmModel>(w.shape(0), w.shape(1), w.data(), a.data(),
                                               b.data());
           }),
           py::arg("weights"), py::arg("visible_bias"), py::arg("hidden_bias"))
      .def_property_readonly("num_units", &RbmModel::num_units)
      .def("energy", &energies<RbmModel>, py::arg("states"),
           "E(v,h) = -a.v - b.h - v^T W h for each row of states (float64).");

  py::class_<GraphModel, std::shared_ptr<GraphModel>>(m, "GraphModel")
      .def(py::init([](std::size_t n, const carray<double>& bias, const carray<std::int64_t>& edges,
                       const carray<double>& weights, const carray<std::int32_t>& colors) {
             require_shape(bias, {static_cast<py::ssize_t>(n)}, "bias");
             require_edges(edges, n);
             require_shape(weights, {edges.shape(0)}, "weights");
             require_shape(colors, {static_cast<py::ssize_t>(n)}, "colors");
             return std::make_shared<GraphModel>(n, bias.data(), edges.shape(0), edges.data(),
                                                 weights.data(), colors.data());
           }),
           py::arg("num_units"), py::arg("bias"), py::arg("edges"), py::arg("weights"),
           py::arg("colors"))
      .def_property_readonly("num_units", &GraphModel::num_units)
      .def_property_readonly("colors", [](const GraphModel& g) { return to_array(g.color); })
      .def("energy", &energies<GraphModel>, py::arg("states"),
           "E(z) = -sum_i b_i z_i - sum_k w_k z_i z_j for each row of states (float64).");

  m.def("greedy_coloring",
        [](std::size_t n, const carray<std::int64_t>& edges) {
          require_edges(edges, n);
          return to_array(qvae::greedy_coloring(n, edges.shape(0), edges.data()));
        },
        py::arg("num_units"), py::arg("edges"),
        "Proper colouring by DSatur: two colours for bipartite graphs, few otherwise (Pegasus: 4).");
}
