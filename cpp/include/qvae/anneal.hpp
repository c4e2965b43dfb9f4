// Population annealing (docs/conventions.md, "Population annealing").
//
// R replicas anneal theta_t = t * theta from t = 0 (uniform, log Z_0 = n log 2) to t = 1.
// From t to t' replica i gets log-weight l_i = log p~_t'(z_i) - log p~_t(z_i), which is
// -(t' - t) E_i for general graphs and the Rao-Blackwellised ratio of layer marginals for RBMs;
// log(Z_t'/Z_t) = log mean_i exp(l_i); replicas are then resampled (systematic, fixed size)
// and equilibrated by sweeps at inverse temperature beta = t'. The population is split into
// independent sub-populations, each resampled on its own: their estimates Z_m are independent and
// unbiased, log Z = log mean_m Z_m, and their spread gives the standard error.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "qvae/gibbs.hpp"

namespace qvae {

struct AnnealOptions {
  std::size_t num_subpopulations = 10;
  std::size_t sweeps_per_step = 5;
  std::vector<double> schedule;   // explicit t values ending at 1; empty = adaptive
  double target_ess = 0.999;      // adaptive steps hold the normalised ESS at this fraction
  std::size_t max_steps = 100000;
  std::uint64_t seed = 0;
  std::size_t num_threads = 0;
  // If set, progress for a caller's display: anneal stores the t reached after each step, log_diag
  // the number of states finished. Written by the run, read by anyone; it changes no result.
  std::atomic<double>* progress = nullptr;
};

struct AnnealResult {
  double log_z = 0.0;
  double log_z_std = 0.0;
  std::vector<double> subpopulation_log_z;
  std::vector<double> schedule;          // t values, starting at 0 and ending at 1
  std::vector<double> ess;               // normalised ESS of the weights at each step
  std::vector<double> rho;               // family statistic R * sum_f nu_f^2 after each step
  std::vector<std::size_t> families;     // surviving initial replicas after each step
  std::vector<double> energies;          // final energies of the population
  std::vector<std::uint8_t> samples;     // the final population, (R, n); filled by anneal()
  double mean_kinks_per_unit = 0.0;      // final kinks per worldline (paths; classical chains: 0)
  bool interrupted = false;
};

// Chains provide run, energies, permute, num_chains and the weight policy
// prepare_weights / weight_slope / log_weights (see gibbs.hpp).
template <class Chains>
AnnealResult population_anneal(Chains& chains, double log_z0, const AnnealOptions& options,
                               const PollFn& poll);

// Population annealing of `model` from its exact start, the t = 0 ensemble drawn exactly with its
// log Z_0: classical chains (RbmChains, GraphChains) start uniform, log Z_0 = n log 2; paths
// (QmcChains) start from the transverse-field reference H_ref = -sum_l Gamma_l sigma^x_l,
// log Z_0 = sum_l log 2cosh Gamma_l. `population` chains on the streams of options.seed.
template <class Chains>
AnnealResult anneal(std::shared_ptr<const typename Chains::Model> model, std::size_t population,
                    const AnnealOptions& options, const PollFn& poll);

// Statistics shared by the classical and quantum annealers.
namespace pa {
// log mean exp over x[first, last).
double log_mean_exp(const double* x, std::size_t count);
// Normalised effective sample size (sum w)^2 / (R sum w^2) of weights exp(l).
double normalized_ess(const std::vector<double>& logw);
// Largest dt in (0, max_dt] whose weights exp(-dt * a_i) keep the ESS >= target (bisection);
// logw is scratch of a's size.
double adaptive_step(const std::vector<double>& a, double max_dt, double target,
                     std::vector<double>& logw);
// Systematic resampling of each sub-population; writes parent indices.
void resample(const std::vector<double>& logw, std::size_t num_subpops, LaneRng& rng,
              std::vector<std::size_t>& parent);
// Combines sub-population estimates: log mean exp and the delta-method standard error.
void combine(const std::vector<double>& sub_log_z, double& log_z, double& log_z_std);
}  // namespace pa

}  // namespace qvae
