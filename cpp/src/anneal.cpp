#include "qvae/anneal.hpp"

#include "qvae/ctqmc.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace qvae {
namespace pa {

double log_mean_exp(const double* x, std::size_t count) {
  double m = -std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < count; ++i) m = std::max(m, x[i]);
  if (!std::isfinite(m)) return m;
  double s = 0.0;
  for (std::size_t i = 0; i < count; ++i) s += std::exp(x[i] - m);
  return m + std::log(s / static_cast<double>(count));
}

double normalized_ess(const std::vector<double>& logw) {
  const double m = *std::max_element(logw.begin(), logw.end());
  double s1 = 0.0, s2 = 0.0;
  for (double l : logw) {
    const double w = std::exp(l - m);
    s1 += w;
    s2 += w * w;
  }
  return s1 * s1 / (static_cast<double>(logw.size()) * s2);
}

double adaptive_step(const std::vector<double>& a, double max_dt, double target,
                     std::vector<double>& logw) {
  auto ess_at = [&](double dt) {
    for (std::size_t i = 0; i < a.size(); ++i) logw[i] = -dt * a[i];
    return normalized_ess(logw);
  };
  if (ess_at(max_dt) >= target) return max_dt;
  double lo = 0.0, hi = max_dt;
  for (int it = 0; it < 60; ++it) {
    const double mid = 0.5 * (lo + hi);
    (ess_at(mid) >= target ? lo : hi) = mid;
  }
  return lo > 0.0 ? lo : hi;  // hi is the first dt known to go below target: never stall
}

void resample(const std::vector<double>& logw, std::size_t num_subpops, LaneRng& rng,
              std::vector<std::size_t>& parent) {
  const std::size_t R = logw.size();
  parent.resize(R);
  for (std::size_t m = 0; m < num_subpops; ++m) {
    const std::size_t first = m * R / num_subpops, last = (m + 1) * R / num_subpops;
    const std::size_t size = last - first;
    const double mx = *std::max_element(logw.begin() + first, logw.begin() + last);
    double total = 0.0;
    for (std::size_t i = first; i < last; ++i) total += std::exp(logw[i] - mx);
    // Systematic: offspring positions (u + k) / size against the cumulative weights.
    const double u = rng.next_double();
    double cumulative = 0.0;
    std::size_t k = 0;
    for (std::size_t i = first; i < last && k < size; ++i) {
      cumulative += std::exp(logw[i] - mx) / total;
      while (k < size && (u + static_cast<double>(k)) / static_cast<double>(size) < cumulative)
        parent[first + k++] = i;
    }
    for (; k < size; ++k) parent[first + k] = last - 1;  // rounding at the very end
  }
}

void combine(const std::vector<double>& sub, double& log_z, double& log_z_std) {
  const std::size_t M = sub.size();
  log_z = log_mean_exp(sub.data(), M);
  if (M < 2) {
    log_z_std = std::numeric_limits<double>::quiet_NaN();
    return;
  }
  // Z_m / Z (mean 1): the standard error of the mean, relative, is the error of log Z.
  double s2 = 0.0;
  for (double l : sub) {
    const double r = std::exp(l - log_z);
    s2 += (r - 1.0) * (r - 1.0);
  }
  log_z_std = std::sqrt(s2 / static_cast<double>(M - 1) / static_cast<double>(M));
}

}  // namespace pa

namespace {
// Throws std::invalid_argument for options population_anneal cannot run: sub-populations
// outside [1, population], target_ess outside (0, 1), no steps allowed, or a schedule that does
// not increase from 0 to 1 within max_steps steps (the steps read schedule[step + 1]).
void check_options(const AnnealOptions& opt, std::size_t population) {
  if (population < 2 || opt.num_subpopulations < 1 || opt.num_subpopulations > population)
    throw std::invalid_argument("population / num_subpopulations out of range");
  if (!(opt.target_ess > 0.0 && opt.target_ess < 1.0)) throw std::invalid_argument("target_ess: must be in (0, 1)");
  if (opt.max_steps < 1) throw std::invalid_argument("max_steps: must be at least 1");
  const std::vector<double>& ts = opt.schedule;
  if (ts.empty()) return;
  if (ts.size() < 2 || ts.front() != 0.0 || ts.back() != 1.0 || ts.size() - 1 > opt.max_steps)
    throw std::invalid_argument("schedule: must run from 0 to 1 in at most max_steps steps");
  for (std::size_t k = 1; k < ts.size(); ++k)
    if (!(ts[k] > ts[k - 1])) throw std::invalid_argument("schedule: t values must be strictly increasing");
}
}  // namespace

template <class Chains>
AnnealResult population_anneal(Chains& chains, double log_z0, const AnnealOptions& opt,
                               const PollFn& poll) {
  const std::size_t R = chains.num_chains();
  const std::size_t M = opt.num_subpopulations;
  check_options(opt, R);
  AnnealResult res;
  std::vector<double> sub_log_z(M, log_z0), slope(R), logw(R);
  std::vector<std::size_t> parent(R), ancestor(R), next_ancestor(R), family_size(R);
  for (std::size_t i = 0; i < R; ++i) ancestor[i] = i;
  LaneRng rng(opt.seed, kResamplingStream);

  double t = 0.0;
  res.schedule.push_back(0.0);
  for (std::size_t step = 0; t < 1.0; ++step) {
    if (step >= opt.max_steps)
      throw std::runtime_error("population annealing: max_steps reached before t = 1");
    chains.prepare_weights(opt.num_threads);  // weights of the current population at t
    double t_next;
    if (opt.schedule.empty()) {
      chains.weight_slope(t, slope.data(), opt.num_threads);
      t_next = t + pa::adaptive_step(slope, 1.0 - t, opt.target_ess, logw);
      if (1.0 - t_next < 1e-12) t_next = 1.0;
    } else {
      t_next = opt.schedule[step + 1];
    }
    chains.log_weights(t, t_next, logw.data(), opt.num_threads);
    for (std::size_t m = 0; m < M; ++m) {
      const std::size_t first = m * R / M, last = (m + 1) * R / M;
      sub_log_z[m] += pa::log_mean_exp(&logw[first], last - first);
    }
    res.ess.push_back(pa::normalized_ess(logw));
    pa::resample(logw, M, rng, parent);
    chains.permute(parent);

    // Family statistics: which initial replica each replica descends from.
    std::fill(family_size.begin(), family_size.end(), 0);
    for (std::size_t i = 0; i < R; ++i) ++family_size[next_ancestor[i] = ancestor[parent[i]]];
    ancestor.swap(next_ancestor);
    double sum_sq = 0.0;
    std::size_t alive = 0;
    for (std::size_t f : family_size) {
      sum_sq += static_cast<double>(f) * static_cast<double>(f);
      alive += f > 0;
    }
    res.rho.push_back(sum_sq / static_cast<double>(R));
    res.families.push_back(alive);

    t = t_next;
    res.schedule.push_back(t);
    if (opt.progress) opt.progress->store(t, std::memory_order_relaxed);
    const std::size_t done = chains.run(opt.sweeps_per_step, t, opt.num_threads, poll);
    if (done < opt.sweeps_per_step || (poll && poll())) {
      res.interrupted = true;
      return res;
    }
  }
  res.subpopulation_log_z = sub_log_z;
  pa::combine(sub_log_z, res.log_z, res.log_z_std);
  res.energies.resize(R);
  chains.energies(res.energies.data(), opt.num_threads);
  return res;
}

namespace {
template <class Chains>
constexpr bool is_paths = false;
template <class Model>
constexpr bool is_paths<QmcChains<Model>> = true;
}  // namespace

template <class Chains>
AnnealResult anneal(std::shared_ptr<const typename Chains::Model> model, std::size_t population,
                    const AnnealOptions& options, const PollFn& poll) {
  Chains chains(model, population, options.seed, nullptr);  // classical chains start uniform
  double log_z0;
  if constexpr (is_paths<Chains>) {
    chains.sample_reference(nullptr);
    log_z0 = model->reference_log_z(false);
  } else {
    log_z0 = model->num_units() * std::log(2.0);
  }
  AnnealResult res = population_anneal(chains, log_z0, options, poll);
  res.samples.resize(population * model->num_units());
  chains.get_state(res.samples.data());
  if constexpr (is_paths<Chains>) res.mean_kinks_per_unit = chains.mean_kinks_per_unit();
  return res;
}

template AnnealResult population_anneal<RbmChains>(RbmChains&, double, const AnnealOptions&, const PollFn&);
template AnnealResult population_anneal<GraphChains>(GraphChains&, double, const AnnealOptions&, const PollFn&);
template AnnealResult population_anneal<QmcRbmChains>(QmcRbmChains&, double, const AnnealOptions&, const PollFn&);
template AnnealResult population_anneal<QmcGraphChains>(QmcGraphChains&, double, const AnnealOptions&, const PollFn&);

template AnnealResult anneal<RbmChains>(std::shared_ptr<const RbmModel>, std::size_t, const AnnealOptions&, const PollFn&);
template AnnealResult anneal<GraphChains>(std::shared_ptr<const GraphModel>, std::size_t, const AnnealOptions&, const PollFn&);
template AnnealResult anneal<QmcRbmChains>(std::shared_ptr<const QmcRbmModel>, std::size_t, const AnnealOptions&, const PollFn&);
template AnnealResult anneal<QmcGraphChains>(std::shared_ptr<const QmcGraphModel>, std::size_t, const AnnealOptions&, const PollFn&);

}  // namespace qvae
