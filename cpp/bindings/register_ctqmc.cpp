#include <memory>

#include "bindings.hpp"
#include "qvae/ctqmc.hpp"

namespace {

template <class Model>
void register_chains(py::module_& m, const char* name) {
  using Chains = qvae::QmcChains<Model>;
  py::class_<Chains>(m, name)
      .def(py::init([](std::shared_ptr<Model> model, std::size_t chains, std::uint64_t seed,
                       const py::object& initial) {
             carray<std::uint8_t> holder;
             const std::uint8_t* init = nullptr;
             if (!initial.is_none()) {
               holder = carray<std::uint8_t>::ensure(initial);
               require_shape(holder, {static_cast<py::ssize_t>(chains),
                                      static_cast<py::ssize_t>(model->num_units())},
                             "initial_state");
               init = holder.data();
             }
             return std::make_unique<Chains>(model, chains, seed, init);
           }),
           py::arg("model"), py::arg("num_chains"), py::arg("seed"), py::arg("initial_state"))
      .def("run",
           [](Chains& self, std::size_t sweeps, double lambda, std::size_t threads) {
             std::size_t done;
             {
               py::gil_scoped_release release;
               done = self.run(sweeps, lambda, threads, poll_signals);
             }
             raise_if_interrupted();
             return done;
           },
           py::arg("num_sweeps"), py::arg("diagonal_scale") = 1.0, py::arg("num_threads") = 0,
           "Advances every worldline configuration by num_sweeps cluster sweeps.")
      .def_property_readonly("state",
                             [](const Chains& self) {
                               carray<std::uint8_t> out({self.num_chains(), self.num_units()});
                               self.get_state(out.mutable_data());
                               return out;
                             })
      .def_property_readonly("kink_counts",
                             [](const Chains& self) {
                               carray<std::int64_t> out({self.num_chains(), self.num_units()});
                               self.kink_counts(out.mutable_data());
                               return out;
                             })
      .def_property_readonly("mean_kinks_per_unit", &Chains::mean_kinks_per_unit)
      .def_property_readonly("energy_integrals",
                             [](const Chains& self) {
                               carray<double> out(self.num_chains());
                               self.energies(out.mutable_data(), 1);
                               return out;
                             })
      .def("set_model", [](Chains& self, std::shared_ptr<Model> model) { self.set_model(model); });
}

}  // namespace

void register_ctqmc(py::module_& m) {
  py::class_<qvae::QmcRbmModel, std::shared_ptr<qvae::QmcRbmModel>>(m, "QmcRbmModel")
      .def(py::init([](std::shared_ptr<qvae::RbmModel> rbm, const carray<double>& gamma) {
             require_shape(gamma, {static_cast<py::ssize_t>(rbm->num_units())}, "gamma");
             return std::make_shared<qvae::QmcRbmModel>(rbm, gamma.data());
           }),
           py::arg("rbm"), py::arg("gamma"))
      .def_property_readonly("num_units", &qvae::QmcRbmModel::num_units);
  py::class_<qvae::QmcGraphModel, std::shared_ptr<qvae::QmcGraphModel>>(m, "QmcGraphModel")
      .def(py::init([](std::shared_ptr<qvae::GraphModel> graph, const carray<double>& gamma) {
             require_shape(gamma, {static_cast<py::ssize_t>(graph->num_units())}, "gamma");
             return std::make_shared<qvae::QmcGraphModel>(graph, gamma.data());
           }),
           py::arg("graph"), py::arg("gamma"))
      .def_property_readonly("num_units", &qvae::QmcGraphModel::num_units);
  register_chains<qvae::QmcRbmModel>(m, "QmcRbmChains");
  register_chains<qvae::QmcGraphModel>(m, "QmcGraphChains");
}
