// Continuous-time path-integral Monte Carlo for RBM-structured quantum Boltzmann machines
// (CONVENTIONS.md, "Continuous-time path integral").
//
// Each unit l has a periodic worldline z_l(tau), tau in [0,1); a path weighs
// prod_kinks Gamma_l * exp(-lambda * int_0^1 E(z(tau)) dtau), lambda scaling the diagonal part
// (lambda = 1 is the QBM; population annealing runs lambda from 0 to 1 at fixed Gamma).
// A layer update cuts every worldline of the layer at Poisson(Gamma_l) points, makes the segments
// between cuts and existing kinks the clusters (the one through tau = 0 wraps around), and draws
// each segment by heat bath on A_I = int_I (bias_l + sum_m W_ml z_m(tau)) dtau. Units of a layer
// are independent given the other layer's worldlines, so a layer is one block.
//
// Storage: for each chain and layer, the values at tau = 0 and one time-sorted list of
// (time, unit) kinks. An update is one time-ordered walk merging the other layer's kinks (which
// change the target fields), the layer's own kinks and the new cuts (generated in time order as
// one Poisson process of rate sum_l Gamma_l); the kinks it emits come out sorted again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "qvae/gibbs.hpp"
#include "qvae/models.hpp"
#include "qvae/rng.hpp"

namespace qvae {

struct Kink {
  double time;
  std::int32_t unit;
};

// Walker alias table over units with probability proportional to Gamma_l.
struct AliasTable {
  std::vector<float> threshold;
  std::vector<std::int32_t> alias;
  double total = 0.0;  // sum of the rates
  explicit AliasTable(const std::vector<double>& rates);
  AliasTable() = default;
};

// One side of the bipartite QBM as seen when updating it.
struct QmcLayer {
  std::size_t n = 0, n_src = 0, ld = 0;  // units, source units, padded row length
  std::vector<float> w;                  // (n_src, ld): coupling of source m to unit l
  std::vector<float> bias;               // padded to ld
  std::vector<double> bias64, gamma;
  AliasTable cuts;
};

struct QmcRbmModel {
  std::shared_ptr<const RbmModel> classical;
  QmcLayer hidden, visible;  // hidden: sources are visible units; visible: sources are hidden
  std::vector<double> gamma; // per unit, [v, h]
  QmcRbmModel(std::shared_ptr<const RbmModel> model, const double* gamma);
  std::size_t num_units() const { return classical->num_units(); }
  // log Tr e^{H_ref} = sum_l log 2cosh Gamma_l, or the clamped sum_l log cosh Gamma_l.
  double reference_log_z(bool clamped) const;
};

struct LayerPath {
  std::vector<std::uint8_t> z0;
  std::vector<Kink> kinks;  // sorted by time
};

struct QmcScratch;  // per-task buffers of the layer walk

struct ChainPath {
  LayerPath v, h;
  double energy_integral = 0.0;  // int_0^1 E(z(tau)) dtau of the current path
};

class QmcRbmChains {
 public:
  static constexpr std::size_t kChunk = 4;  // chains per task

  // initial_state: nullable (num_chains, n) classical states (no kinks); null = uniform.
  QmcRbmChains(std::shared_ptr<const QmcRbmModel> model, std::size_t num_chains, std::uint64_t seed,
               const std::uint8_t* initial_state);
  ~QmcRbmChains();

  // Exact samples of H_ref = -sum Gamma_l sigma^x_l (lambda = 0): per unit a Poisson(Gamma_l)
  // number of kinks conditioned on even, uniform times, z_l(0) uniform or clamped to `clamp`.
  void sample_reference(const std::uint8_t* clamp /* nullable: (n,) */);
  // Keep the tau = 0 slice fixed to the current z(0) in every update (clamped-slice ensemble).
  void set_clamped(bool clamped) { clamped_ = clamped; }

  std::size_t run(std::size_t num_sweeps, double lambda, std::size_t num_threads, const PollFn& poll);
  void sweep_chain(std::size_t c, std::size_t num_sweeps, float lambda);

  std::size_t num_chains() const { return paths_.size(); }
  std::size_t num_units() const { return model_->num_units(); }
  void get_state(std::uint8_t* out) const;   // tau = 0 slice, (num_chains, n)
  double mean_kinks_per_unit() const;
  void kink_counts(std::int64_t* out) const;  // (num_chains, n)
  const ChainPath& path(std::size_t c) const { return paths_[c]; }
  void set_model(std::shared_ptr<const QmcRbmModel> model);

  // Population-annealing interface (weights of lambda: -(lambda' - lambda) int E dtau).
  void energies(double* out, std::size_t) const;
  void permute(const std::vector<std::size_t>& parent);
  void prepare_weights(std::size_t) {}
  void weight_slope(double, double* out, std::size_t t) const { energies(out, t); }
  void log_weights(double t, double t_next, double* out, std::size_t) const;

 private:
  std::shared_ptr<const QmcRbmModel> model_;
  std::vector<ChainPath> paths_, spare_;
  std::vector<LaneRng> rng_;
  std::vector<std::unique_ptr<QmcScratch>> scratch_;  // one per chunk
  bool clamped_ = false;
};

}  // namespace qvae
