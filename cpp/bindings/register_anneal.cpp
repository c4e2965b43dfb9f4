#include <cmath>
#include <memory>

#include "bindings.hpp"
#include "qvae/anneal.hpp"

using qvae::AnnealOptions;
using qvae::AnnealResult;

namespace {

template <class T>
carray<T> to_array(const std::vector<T>& v) {
  return carray<T>(static_cast<py::ssize_t>(v.size()), v.data());
}

py::dict to_dict(const AnnealResult& r, carray<std::uint8_t> samples) {
  py::dict d;
  d["log_z"] = r.log_z;
  d["log_z_std"] = r.log_z_std;
  d["subpopulation_log_z"] = to_array(r.subpopulation_log_z);
  d["schedule"] = to_array(r.schedule);
  d["ess"] = to_array(r.ess);
  d["rho"] = to_array(r.rho);
  d["families"] = to_array(r.families);
  d["energies"] = to_array(r.energies);
  d["samples"] = samples;
  return d;
}

AnnealOptions options(std::size_t population, std::uint64_t seed, std::size_t sweeps_per_step,
                      const carray<double>& schedule, double target_ess, std::size_t subpops,
                      std::size_t max_steps, std::size_t threads) {
  AnnealOptions o;
  o.population = population;
  o.seed = seed;
  o.sweeps_per_step = sweeps_per_step;
  o.schedule.assign(schedule.data(), schedule.data() + schedule.size());
  o.target_ess = target_ess;
  o.num_subpopulations = subpops;
  o.max_steps = max_steps;
  o.num_threads = threads;
  return o;
}

template <class Model, class Chains>
py::dict anneal(std::shared_ptr<Model> model, std::size_t population, std::uint64_t seed,
                std::size_t sweeps_per_step, const carray<double>& schedule, double target_ess,
                std::size_t subpops, std::size_t max_steps, std::size_t threads) {
  if (population < 2 || subpops < 1 || subpops > population)
    throw std::invalid_argument("population / num_subpopulations out of range");
  AnnealOptions o = options(population, seed, sweeps_per_step, schedule, target_ess, subpops,
                            max_steps, threads);
  carray<std::uint8_t> samples({population, model->num_units()});
  AnnealResult r;
  {
    py::gil_scoped_release release;
    Chains chains(model, population, seed, nullptr);  // uniform start: exact at t = 0
    r = qvae::population_anneal(chains, model->num_units() * std::log(2.0), o, poll_signals);
    if constexpr (std::is_same_v<Chains, qvae::RbmChains>)
      std::copy_n(chains.state(), samples.size(), samples.mutable_data());
    else
      chains.get_state(samples.mutable_data());
  }
  raise_if_interrupted();
  if (r.interrupted) throw py::error_already_set();
  return to_dict(r, samples);
}

}  // namespace

void register_anneal(py::module_& m) {
  const char* doc =
      "Population annealing from t=0 (uniform) to t=1; returns a dict of the estimate and "
      "diagnostics. An empty schedule chooses steps adaptively.";
  m.def("anneal_rbm", &anneal<qvae::RbmModel, qvae::RbmChains>, py::arg("model"),
        py::arg("population"), py::arg("seed"), py::arg("sweeps_per_step"), py::arg("schedule"),
        py::arg("target_ess"), py::arg("num_subpopulations"), py::arg("max_steps"),
        py::arg("num_threads"), doc);
  m.def("anneal_graph", &anneal<qvae::GraphModel, qvae::GraphChains>, py::arg("model"),
        py::arg("population"), py::arg("seed"), py::arg("sweeps_per_step"), py::arg("schedule"),
        py::arg("target_ess"), py::arg("num_subpopulations"), py::arg("max_steps"),
        py::arg("num_threads"), doc);
}
