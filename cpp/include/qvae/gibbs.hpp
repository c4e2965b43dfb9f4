// Persistent block-Gibbs chains for RBMs and sparse Boltzmann machines.
//
// Each chain (RBM) or each group of LaneRng::kLanes chains (graph) owns its own
// random stream derived from (seed, index), so results are bit-identical for any
// number of threads. Runs proceed in rounds; `poll` is called between rounds and
// a true return stops the run with every chain at the same sweep count.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "qvae/models.hpp"
#include "qvae/rng.hpp"
#include "qvae/thread_pool.hpp"

namespace qvae {

class RbmChains {
 public:
  using Model = RbmModel;
  static constexpr std::size_t kChunk = 16;  // chains per task

  RbmChains(std::shared_ptr<const RbmModel> model, std::size_t num_chains, std::uint64_t seed,
            const std::uint8_t* initial_state /* nullable: (num_chains, n) */);

  // Advances every chain by num_sweeps sweeps (hidden then visible) at inverse temperature beta.
  std::size_t run(std::size_t num_sweeps, double beta, std::size_t num_threads, const PollFn& poll);
  std::size_t num_chains() const { return num_chains_; }
  std::size_t num_units() const { return model_->num_units(); }
  void get_state(std::uint8_t* out) const { std::copy(state_.begin(), state_.end(), out); }
  // Random streams, (num_streams, LaneRng::kStateWords) words: with the states, all a checkpoint needs.
  std::size_t num_streams() const { return rng_.size(); }
  void get_streams(std::uint32_t* out) const { save_streams(rng_, out); }
  void set_streams(const std::uint32_t* in) { load_streams(rng_, in); }
  // Energies of every chain in double precision, in parallel.
  void energies(double* out, std::size_t num_threads) const;
  // Replica i takes the state of replica parent[i] (resampling); random streams stay put.
  void permute(const std::vector<std::size_t>& parent);

  // Population-annealing weights with the larger layer summed out (Rao-Blackwellised):
  // for the kept layer y with bias c and fields x = d + y M of the summed layer,
  // log p~_t(y) = t c.y + sum_j softplus(t x_j). prepare_weights caches c.y and x per chain;
  // weight_slope gives a_i = -d/dt log p~_t (the conditional mean energy), used to pick steps;
  // log_weights gives log p~_t'(y_i) - log p~_t(y_i) exactly.
  void prepare_weights(std::size_t num_threads);
  void weight_slope(double t, double* out, std::size_t num_threads) const;
  void log_weights(double t, double t_next, double* out, std::size_t num_threads) const;
  void set_model(std::shared_ptr<const RbmModel> model);

 private:
  // Sweeps chains [first, last) on the calling thread, their layers packed into bits meanwhile.
  void sweep_range(std::size_t first, std::size_t last, std::size_t num_sweeps, float beta);

  std::shared_ptr<const RbmModel> model_;
  std::size_t num_chains_;
  std::vector<std::uint8_t> state_;   // (num_chains, nv + nh)
  std::vector<LaneRng> rng_;          // one per chain
  std::vector<std::uint32_t> bits_;  // scratch per chunk: each chain's v then h, 32 units a word
  std::vector<std::uint8_t> spare_;   // permutation buffer
  std::vector<double> kept_bias_, summed_field_;  // PA weight caches, per chain
};

class GraphChains {
 public:
  using Model = GraphModel;
  static constexpr std::size_t kGroup = LaneRng::kLanes;  // chains advanced together in SIMD lanes

  GraphChains(std::shared_ptr<const GraphModel> model, std::size_t num_chains, std::uint64_t seed,
              const std::uint8_t* initial_state /* nullable */);

  std::size_t run(std::size_t num_sweeps, double beta, std::size_t num_threads, const PollFn& poll);

  std::size_t num_chains() const { return num_chains_; }
  std::size_t num_units() const { return model_->num_units(); }
  // Copies the states out as (num_chains, n) uint8.
  void get_state(std::uint8_t* out) const;
  void set_state(const std::uint8_t* in);
  // Random streams, (num_streams, LaneRng::kStateWords) words: with the states, all a checkpoint needs.
  std::size_t num_streams() const { return rng_.size(); }
  void get_streams(std::uint32_t* out) const { save_streams(rng_, out); }
  void set_streams(const std::uint32_t* in) { load_streams(rng_, in); }
  void energies(double* out, std::size_t num_threads) const;
  void permute(const std::vector<std::size_t>& parent);

  // Population-annealing weights of theta_t = t theta: a_i = E_i, log-weight -(t' - t) E_i.
  void prepare_weights(std::size_t num_threads) { energies(energy_.data(), num_threads); }
  void weight_slope(double, double* out, std::size_t) const {
    std::copy(energy_.begin(), energy_.end(), out);
  }
  void log_weights(double t, double t_next, double* out, std::size_t) const {
    for (std::size_t i = 0; i < num_chains_; ++i) out[i] = -(t_next - t) * energy_[i];
  }
  void set_model(std::shared_ptr<const GraphModel> model);

 private:
  void sweep_group(std::size_t group, std::size_t num_sweeps, float beta);
  std::shared_ptr<const GraphModel> model_;
  std::size_t num_chains_;
  AlignedFloats z_;             // (groups, n, kGroup): unit-major, chains in lanes
  std::vector<LaneRng> rng_;    // one per group
  AlignedFloats spare_;         // permutation buffer
  std::vector<double> energy_;  // PA weight cache
};

}  // namespace qvae
