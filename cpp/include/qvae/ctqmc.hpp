// Continuous-time path-integral Monte Carlo for quantum Boltzmann machines
// (docs/conventions.md, "The path-integral weight (CT-QMC)").
//
// Each unit l has a periodic worldline z_l(tau), tau in [0,1); a path weighs
// prod_kinks Gamma_l * exp(-beta * int_0^1 E(z(tau)) dtau), beta the inverse temperature of the
// diagonal part alone (beta = 1 is the QBM; population annealing runs beta from 0 to 1 at fixed
// Gamma; the conventions call it lambda).
// A block update (an RBM layer, or a colour class of a sparse graph: units independent given
// the rest) cuts each worldline of the block at Poisson(Gamma_l) points, makes the segments
// between cuts and existing kinks the clusters (the one through tau = 0 wraps around) and draws
// each segment by heat bath on A_I = int_I (b_l + sum_m w_lm z_m(tau)) dtau.
//
// Storage: per chain, z(0) and for each block one time-sorted list of (time, unit) kinks. A block
// update walks the other blocks' kinks in time order (they change the block's fields) and, inside
// each piece between them, the block's boundaries: its own kinks merged with new cuts drawn in
// time order as one Poisson process of rate sum_{l in block} Gamma_l.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "qvae/gibbs.hpp"
#include "qvae/kinks.hpp"
#include "qvae/models.hpp"
#include "qvae/rng.hpp"

namespace qvae {

// Walker alias table: index i with probability rates[i] / sum(rates).
struct AliasTable {
  std::vector<float> threshold;
  std::vector<std::int32_t> alias;
  double total = 0.0;
  AliasTable() = default;
  explicit AliasTable(const std::vector<double>& rates);
};

// Largest transverse field accepted: a worldline holds ~Gamma kinks, and the exact reference
// start draws Poisson(Gamma) counts by a product of uniforms down to e^{-Gamma} (no underflow).
constexpr double kMaxGamma = 500.0;

// Units split into blocks that are conditionally independent given the other blocks.
// Throws std::invalid_argument ("gamma: ...") for a field outside [0, kMaxGamma].
struct QmcBlocks {
  std::vector<std::int32_t> block_of, local;         // per unit: its block, index within it
  std::vector<std::vector<std::int32_t>> members;    // per block: its units
  std::vector<AliasTable> cuts;                      // per block: cut rates Gamma over members
  QmcBlocks(const std::vector<std::int32_t>& block_of, const std::vector<double>& gamma);
  std::size_t num_blocks() const { return members.size(); }
};

// RBM-structured QBM: blocks 0 = visible, 1 = hidden; couplings dense, applied as vector rows.
struct QmcRbmModel {
  std::shared_ptr<const RbmModel> classical;
  std::vector<double> gamma;  // per unit, [v, h]
  QmcBlocks blocks;
  std::vector<double> bias;   // per unit, [a, b]
  struct Coupling {           // seen by one block: a row of ld floats per unit of the other
    std::size_t ld = 0, src_offset = 0, n_src = 0;
    AlignedFloats rows;
    const float* bias = nullptr;   // the block's biases, zero to whole tiles: RbmModel::a or b
    const float* table = nullptr;  // the classical Gibbs table into the block: RbmModel::field_to_v or _h
    std::size_t padded = 0;        // the block's size in whole tiles of the table
  };
  Coupling into[2];
  QmcRbmModel(std::shared_ptr<const RbmModel> model, const double* gamma);
  std::size_t num_units() const { return classical->num_units(); }
  double local_field(std::size_t unit, const std::uint8_t* z) const;  // b_u + sum_m w_um z_m
  double reference_log_z(bool clamped) const;
};

// QBM on a sparse graph: blocks are the colour classes of the BoltzmannMachine.
struct QmcGraphModel {
  std::shared_ptr<const GraphModel> classical;
  std::vector<double> gamma;
  QmcBlocks blocks;
  struct Neighbour {
    std::int32_t local;  // index within the block
    float w;
  };
  struct Neighbours {  // per block, CSR over all units: each unit's neighbours inside the block
    std::vector<std::int64_t> ptr;
    std::vector<Neighbour> entries;
  };
  std::vector<Neighbours> into;  // per block
  QmcGraphModel(std::shared_ptr<const GraphModel> model, const double* gamma);
  std::size_t num_units() const { return classical->num_units(); }
  double local_field(std::size_t unit, const std::uint8_t* z) const;
  double reference_log_z(bool clamped) const;
};

struct QmcPath {
  std::vector<std::uint8_t> z0;
  std::vector<std::vector<Kink>> kinks;  // per block, sorted by time
  double energy_integral = std::numeric_limits<double>::quiet_NaN();  // int_0^1 E(z(tau)) dtau; NaN until computed
  std::size_t num_kinks() const;
};

struct QmcScratch;  // per-task buffers of the walk (ctqmc.cpp)

template <class QmcModel>
class QmcChains {
 public:
  using Model = QmcModel;
  static constexpr std::size_t kChunk = 4;  // chains per task

  // initial_state: nullable (num_chains, n) classical states (no kinks); null = uniform.
  QmcChains(std::shared_ptr<const Model> model, std::size_t num_chains, std::uint64_t seed,
            const std::uint8_t* initial_state);
  ~QmcChains();

  // Exact samples of H_ref = -sum Gamma_l sigma^x_l (beta = 0): per unit a Poisson(Gamma_l)
  // number of kinks conditioned on even, uniform times, z_l(0) uniform or clamped to `clamp`.
  void sample_reference(const std::uint8_t* clamp /* nullable: (n,) */);
  // Keep the tau = 0 slice fixed to the current z(0) in every update (clamped-slice ensemble).
  void set_clamped(bool clamped) { clamped_ = clamped; }

  // Advances every path by num_sweeps sweeps at inverse temperature beta of the diagonal part.
  std::size_t run(std::size_t num_sweeps, double beta, std::size_t num_threads, const PollFn& poll);

  std::size_t num_chains() const { return paths_.size(); }
  std::size_t num_units() const { return model_->num_units(); }
  void get_state(std::uint8_t* out) const;    // tau = 0 slices, (num_chains, n)
  void kink_counts(std::int64_t* out) const;  // (num_chains, n)
  // Random streams, (num_streams, LaneRng::kStateWords) words: with the states, all a checkpoint needs.
  std::size_t num_streams() const { return rng_.size(); }
  void get_streams(std::uint32_t* out) const { save_streams(rng_, out); }
  void set_streams(const std::uint32_t* in) { load_streams(rng_, in); }
  // Kinks of every path as flat arrays: chain c's are [offsets[c], offsets[c+1]), block by block,
  // each block's in time order. set_kinks keeps z(0) and takes the kinks only if they are valid:
  // offsets running from 0 to num_kinks without decreasing, units in range, times in [0, 1)
  // increasing within a block, an even number per unit.
  std::vector<std::int64_t> kink_offsets() const;  // (num_chains + 1)
  void get_kinks(double* times, std::int32_t* units) const;
  void set_kinks(const std::int64_t* offsets, std::size_t num_kinks, const double* times, const std::int32_t* units);
  double mean_kinks_per_unit() const;
  void set_model(std::shared_ptr<const Model> model);

  // Population-annealing interface: weights of beta are -(beta' - beta) int E dtau.
  // A path's int E dtau is computed when asked for if its last update could not give it.
  void energies(double* out, std::size_t num_threads);
  void permute(const std::vector<std::size_t>& parent);
  void prepare_weights(std::size_t num_threads) { refresh_stale_energies(num_threads); }
  void weight_slope(double, double* out, std::size_t) const;
  void log_weights(double t, double t_next, double* out, std::size_t) const;

 private:
  void sweep_chain(std::size_t c, std::size_t num_sweeps, float beta);
  void refresh_energy(std::size_t c);
  void refresh_stale_energies(std::size_t num_threads);

  std::shared_ptr<const Model> model_;
  std::vector<QmcPath> paths_, spare_;
  std::vector<LaneRng> rng_;
  std::vector<std::unique_ptr<QmcScratch>> scratch_;  // one per chunk
  bool clamped_ = false;
};

using QmcRbmChains = QmcChains<QmcRbmModel>;
using QmcGraphChains = QmcChains<QmcGraphModel>;

}  // namespace qvae
