#include <memory>

#include "bindings.hpp"
#include "qvae/anneal.hpp"
#include "qvae/ctqmc.hpp"
#include "qvae/log_diag.hpp"

using qvae::AnnealOptions;
using qvae::AnnealResult;

namespace {

py::dict to_dict(const AnnealResult& r, std::size_t num_units) {
  py::dict d;
  d["log_z"] = r.log_z;
  d["log_z_std"] = r.log_z_std;
  d["subpopulation_log_z"] = to_array(r.subpopulation_log_z);
  d["schedule"] = to_array(r.schedule);
  d["ess"] = to_array(r.ess);
  d["rho"] = to_array(r.rho);
  d["families"] = to_array(r.families);
  d["energies"] = to_array(r.energies);
  d["samples"] = carray<std::uint8_t>({r.samples.size() / num_units, num_units}, r.samples.data());
  d["mean_kinks_per_unit"] = r.mean_kinks_per_unit;
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

template <class Chains>
py::dict anneal(std::shared_ptr<typename Chains::Model> model, std::size_t population, std::uint64_t seed,
                std::size_t sweeps_per_step, const carray<double>& schedule, double target_ess,
                std::size_t subpops, std::size_t max_steps, std::size_t threads, const py::object& progress) {
  AnnealOptions o = options(seed, sweeps_per_step, schedule, target_ess, subpops, max_steps, threads);
  ProgressPoll poll(progress);
  o.progress = poll.reached();
  AnnealResult r;
  {
    py::gil_scoped_release release;
    r = qvae::anneal<Chains>(model, population, o, std::ref(poll));
  }
  raise_if_interrupted();
  if (r.interrupted) throw std::runtime_error("population annealing: interrupted");
  return to_dict(r, model->num_units());
}

template <class Model>
py::dict log_diag(std::shared_ptr<Model> model, const carray<std::uint8_t>& states,
                  std::size_t population, std::uint64_t seed, std::size_t sweeps_per_step,
                  double target_ess, std::size_t subpops, std::size_t max_steps,
                  std::size_t threads, const py::object& progress) {
  require_shape(states, {-1, static_cast<py::ssize_t>(model->num_units())}, "states");
  // A copy, checked and read while the GIL is released: the caller's array may change meanwhile.
  const std::vector<std::uint8_t> copy(states.data(), states.data() + states.size());
  require_binary(copy.data(), copy.size(), "states");
  const std::size_t batch = states.shape(0);
  AnnealOptions o = options(seed, sweeps_per_step, carray<double>(0), target_ess, subpops, max_steps, threads);
  ProgressPoll poll(progress);
  o.progress = poll.reached();
  carray<double> value(batch), error(batch);
  bool done;
  {
    py::gil_scoped_release release;
    done = qvae::log_diag<Model>(model, copy.data(), batch, population, o, std::ref(poll), value.mutable_data(),
                                 error.mutable_data());
  }
  raise_if_interrupted();
  if (!done) throw std::runtime_error("log_diag: interrupted");
  py::dict d;
  d["log_diag"] = value;
  d["log_diag_std"] = error;
  return d;
}

}  // namespace

void register_anneal(py::module_& m) {
  const char* doc =
      "Population annealing from the exact start to the model; returns a dict of the estimate "
      "and diagnostics. An empty schedule chooses steps adaptively. progress, if given, is called "
      "with the t reached between rounds.";
  auto args = [](py::module_& mod, const char* name, auto fn, const char* d) {
    mod.def(name, fn, py::arg("model").none(false), py::arg("population"), py::arg("seed"),
            py::arg("sweeps_per_step"), py::arg("schedule"), py::arg("target_ess"),
            py::arg("num_subpopulations"), py::arg("max_steps"), py::arg("num_threads"),
            py::arg("progress") = py::none(), d);
  };
  args(m, "anneal_rbm", &anneal<qvae::RbmChains>, doc);
  args(m, "anneal_graph", &anneal<qvae::GraphChains>, doc);
  args(m, "anneal_qmc_rbm", &anneal<qvae::QmcRbmChains>, doc);
  args(m, "anneal_qmc_graph", &anneal<qvae::QmcGraphChains>, doc);
  const char* diag_doc =
      "log <z|e^{-H}|z> per row of states by clamped-slice population annealing. progress, if given, is "
      "called with the number of states finished between rounds.";
  auto def_diag = [&](const char* name, auto fn) {
    m.def(name, fn, py::arg("model").none(false), py::arg("states"), py::arg("population"), py::arg("seed"),
          py::arg("sweeps_per_step"), py::arg("target_ess"), py::arg("num_subpopulations"),
          py::arg("max_steps"), py::arg("num_threads"), py::arg("progress") = py::none(), diag_doc);
  };
  def_diag("log_diag_qmc_rbm", &log_diag<qvae::QmcRbmModel>);
  def_diag("log_diag_qmc_graph", &log_diag<qvae::QmcGraphModel>);
}
