#include "bindings.hpp"

using qvae::GraphChains;
using qvae::GraphModel;
using qvae::RbmChains;
using qvae::RbmModel;

void register_gibbs(py::module_& m) {
  bind_chains<RbmChains, RbmModel>(
      m, "RbmChains", "Advances every chain by num_sweeps block-Gibbs sweeps (hidden, then visible).");
  bind_chains<GraphChains, GraphModel>(
      m, "GraphChains", "Advances every chain by num_sweeps sweeps over the colour classes.");
}
