#include <atomic>
#include <cmath>
#include <memory>
#include <thread>
#include <type_traits>

#include "bindings.hpp"
#include "qvae/anneal.hpp"
#include "qvae/ctqmc.hpp"
#include "qvae/thread_pool.hpp"

using qvae::AnnealOptions;
using qvae::AnnealResult;

namespace {

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

AnnealOptions options(std::uint64_t seed, std::size_t sweeps_per_step,
                      const carray<double>& schedule, double target_ess, std::size_t subpops,
                      std::size_t max_steps, std::size_t threads) {
  AnnealOptions o;
  o.seed = seed;
  o.sweeps_per_step = sweeps_per_step;
  o.schedule.assign(schedule.data(), schedule.data() + schedule.size());
  o.target_ess = target_ess;
  o.num_subpopulations = subpops;
  o.max_steps = max_steps;
  o.num_threads = threads;
  return o;  // population_anneal checks them (qvae::check_options)
}

// The exact start of each annealer and its log Z: uniform states for classical models
// (n log 2), the transverse-field reference for paths (sum_l log 2cosh Gamma_l).
template <class Chains>
constexpr bool is_paths = std::is_same_v<Chains, qvae::QmcRbmChains> ||
                          std::is_same_v<Chains, qvae::QmcGraphChains>;

template <class Chains, class Model>
double start(Chains& chains, const Model& model) {
  if constexpr (is_paths<Chains>) {
    chains.sample_reference(nullptr);
    return model.reference_log_z(false);
  } else {
    return model.num_units() * std::log(2.0);
  }
}

template <class Model, class Chains>
py::dict anneal(std::shared_ptr<Model> model, std::size_t population, std::uint64_t seed,
                std::size_t sweeps_per_step, const carray<double>& schedule, double target_ess,
                std::size_t subpops, std::size_t max_steps, std::size_t threads) {
  AnnealOptions o = options(seed, sweeps_per_step, schedule, target_ess, subpops,
                            max_steps, threads);
  carray<std::uint8_t> samples({population, model->num_units()});
  AnnealResult r;
  double kinks = 0.0;
  {
    py::gil_scoped_release release;
    Chains chains(model, population, seed, nullptr);
    const double log_z0 = start(chains, *model);
    r = qvae::population_anneal(chains, log_z0, o, poll_signals);
    chains.get_state(samples.mutable_data());
    if constexpr (is_paths<Chains>) kinks = chains.mean_kinks_per_unit();
  }
  raise_if_interrupted();
  if (r.interrupted) throw std::runtime_error("population annealing: interrupted");
  py::dict d = to_dict(r, samples);
  if constexpr (is_paths<Chains>) d["mean_kinks_per_unit"] = kinks;
  return d;
}

// log <z|e^{-H}|z> for each row of states by clamped-slice population annealing, one
// annealer per state, parallel over the batch (each annealer single-threaded, own seed).
template <class Model>
py::dict log_diag(std::shared_ptr<Model> model, const carray<std::uint8_t>& states,
                  std::size_t population, std::uint64_t seed, std::size_t sweeps_per_step,
                  double target_ess, std::size_t subpops, std::size_t max_steps,
                  std::size_t threads) {
  const auto n = static_cast<py::ssize_t>(model->num_units());
  require_shape(states, {-1, n}, "states");
  // A copy, checked and read while the GIL is released: the caller's array may change meanwhile.
  const std::vector<std::uint8_t> copy(states.data(), states.data() + states.size());
  require_binary(copy.data(), copy.size(), "states");
  const std::size_t batch = states.shape(0);
  AnnealOptions o = options(seed, sweeps_per_step, carray<double>(0), target_ess,
                            subpops, max_steps, 1);
  carray<double> value(batch), error(batch);
  const std::uint8_t* s = copy.data();
  double* out = value.mutable_data();
  double* err = error.mutable_data();
  std::atomic<bool> stop{false};
  const std::thread::id main_thread = std::this_thread::get_id();
  {
    py::gil_scoped_release release;
    const double log_z0 = model->reference_log_z(true);
    qvae::ThreadPool::global().parallel_for(
        batch, qvae::resolve_threads(threads), [&](std::size_t b) {
          if (stop) return;
          std::uint64_t mix = seed ^ (0x9E3779B97F4A7C15ULL * (b + 1));
          AnnealOptions ob = o;
          ob.seed = qvae::splitmix64(mix);
          qvae::QmcChains<Model> chains(model, population, ob.seed, nullptr);
          chains.sample_reference(s + b * n);
          chains.set_clamped(true);
          auto poll = [&] {  // only the main thread sees signals; the flag stops the other threads' tasks
            if (!stop && std::this_thread::get_id() == main_thread && poll_signals()) stop = true;
            return stop.load();
          };
          AnnealResult r = qvae::population_anneal(chains, log_z0, ob, poll);
          out[b] = r.log_z;
          err[b] = r.log_z_std;
        });
  }
  raise_if_interrupted();
  if (stop) throw std::runtime_error("log_diag: interrupted");
  py::dict d;
  d["log_diag"] = value;
  d["log_diag_std"] = error;
  return d;
}

}  // namespace

void register_anneal(py::module_& m) {
  const char* doc =
      "Population annealing from the exact start to the model; returns a dict of the estimate "
      "and diagnostics. An empty schedule chooses steps adaptively.";
  auto args = [](py::module_& mod, const char* name, auto fn, const char* d) {
    mod.def(name, fn, py::arg("model").none(false), py::arg("population"), py::arg("seed"),
            py::arg("sweeps_per_step"), py::arg("schedule"), py::arg("target_ess"),
            py::arg("num_subpopulations"), py::arg("max_steps"), py::arg("num_threads"), d);
  };
  args(m, "anneal_rbm", &anneal<qvae::RbmModel, qvae::RbmChains>, doc);
  args(m, "anneal_graph", &anneal<qvae::GraphModel, qvae::GraphChains>, doc);
  args(m, "anneal_qmc_rbm", &anneal<qvae::QmcRbmModel, qvae::QmcRbmChains>, doc);
  args(m, "anneal_qmc_graph", &anneal<qvae::QmcGraphModel, qvae::QmcGraphChains>, doc);
  const char* diag_doc = "log <z|e^{-H}|z> per row of states by clamped-slice population annealing.";
  auto def_diag = [&](const char* name, auto fn) {
    m.def(name, fn, py::arg("model").none(false), py::arg("states"), py::arg("population"), py::arg("seed"),
          py::arg("sweeps_per_step"), py::arg("target_ess"), py::arg("num_subpopulations"),
          py::arg("max_steps"), py::arg("num_threads"), diag_doc);
  };
  def_diag("log_diag_qmc_rbm", &log_diag<qvae::QmcRbmModel>);
  def_diag("log_diag_qmc_graph", &log_diag<qvae::QmcGraphModel>);
}
