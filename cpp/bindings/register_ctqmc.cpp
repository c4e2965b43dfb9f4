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
      .def_property_readonly("kinks",
                             [](const Chains& self) {
                               const auto offsets = self.kink_offsets();
                               const auto total = static_cast<std::size_t>(offsets.back());
                               carray<double> times(total);
                               carray<std::int32_t> units(total);
                               self.get_kinks(times.mutable_data(), units.mutable_data());
                               return py::make_tuple(to_array(offsets), times, units);
                             })
      .def("set_kinks",
           [](Chains& self, const carray<std::int64_t>& offsets, const carray<double>& times,
              const carray<std::int32_t>& units) {
             require_shape(offsets, {static_cast<py::ssize_t>(self.num_chains() + 1)}, "kink offsets");
             require_shape(times, {-1}, "kink times");
             require_shape(units, {times.shape(0)}, "kink units");
             self.set_kinks(offsets.data(), static_cast<std::size_t>(times.shape(0)), times.data(), units.data());
           },
           py::arg("offsets"), py::arg("times"), py::arg("units"),
           "Replaces the kinks of every path (z(0) stays), in the layout of `kinks`.")
      .def_property_readonly("energy_integrals", [](Chains& self) {
        carray<double> out(self.num_chains());
        double* e = out.mutable_data();
        {
          // The thread pool is not waited for with the GIL held: a log_diag in another Python
          // thread holds the pool and takes the GIL to poll for Ctrl-C.
          py::gil_scoped_release release;
          self.energies(e, 0);
        }
        return out;
      });
}

// A classical model plus one transverse field per unit.
template <class Model, class Classical>
void register_model(py::module_& m, const char* name) {
  py::class_<Model, std::shared_ptr<Model>>(m, name)
      .def(py::init([](std::shared_ptr<Classical> classical, const carray<double>& gamma) {
             require_shape(gamma, {static_cast<py::ssize_t>(classical->num_units())}, "gamma");
             return std::make_shared<Model>(classical, gamma.data());
           }),
           py::arg("classical").none(false), py::arg("gamma"))
      .def_property_readonly("num_units", &Model::num_units);
}

}  // namespace

void register_ctqmc(py::module_& m) {
  m.attr("MAX_GAMMA") = qvae::kMaxGamma;  // largest transverse field a QBM accepts
  register_model<qvae::QmcRbmModel, qvae::RbmModel>(m, "QmcRbmModel");
  register_model<qvae::QmcGraphModel, qvae::GraphModel>(m, "QmcGraphModel");
  register_chains<qvae::QmcRbmModel>(m, "QmcRbmChains");
  register_chains<qvae::QmcGraphModel>(m, "QmcGraphChains");
}
