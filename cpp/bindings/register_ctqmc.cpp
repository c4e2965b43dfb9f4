#include <memory>

#include "bindings.hpp"
#include "qvae/ctqmc.hpp"

namespace {

template <class Model>
void register_chains(py::module_& m, const char* name) {
  using Chains = qvae::QmcChains<Model>;
  bind_chains<Chains, Model>(m, name, "Advances every worldline configuration by num_sweeps cluster sweeps.")
      .def_property_readonly("kink_counts",
                             [](const Chains& self) {
                               carray<std::int64_t> out({self.num_chains(), self.num_units()});
                               self.kink_counts(out.mutable_data());
                               return out;
                             })
      .def_property_readonly("mean_kinks_per_unit", &Chains::mean_kinks_per_unit)
      .def_property_readonly("energy_integrals", [](const Chains& self) {
        carray<double> out(self.num_chains());
        self.energies(out.mutable_data(), 1);
        return out;
      });
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
