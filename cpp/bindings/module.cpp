#include "bindings.hpp"
#include "qvae/thread_pool.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "qvae-core compiled kernels (private; use the qvae_core package)";
  m.def("max_threads", [] { return qvae::ThreadPool::global().max_threads(); },
        "Number of threads the samplers use when num_threads is not given.");
  register_models(m);
  register_gibbs(m);
  register_ctqmc(m);  // before the annealers, whose signatures name its classes
  register_anneal(m);
}
