// Model parameters laid out for the samplers (float32, padded, cache-friendly).
//
// Binary units z in {0,1}; E(z) = -sum_i b_i z_i - sum_(ij) w_ij z_i z_j (CONVENTIONS.md).
// Energies are accumulated in double from the double-precision parameters kept alongside.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace qvae {

// Column tile of the RBM field kernel, in floats; row strides are padded to it.
constexpr std::size_t kRbmTile = 32;

inline std::size_t pad_to(std::size_t n, std::size_t m) { return (n + m - 1) / m * m; }

// RBM, E(v,h) = -a.v - b.h - v^T W h; W row-major (nv, nh). State = [v, h].
struct RbmModel {
  std::size_t nv = 0, nh = 0;
  std::size_t ld_h = 0, ld_v = 0;      // nh and nv padded to whole tiles
  // W and W^T packed tile by tile: w[(t * nv + i) * kRbmTile + j'] = W[i, t * kRbmTile + j'],
  // so the rows of one column tile are contiguous (no cache-set conflicts at large strides).
  std::vector<float> w, wt;
  std::vector<float> a, b;             // biases padded to ld_v and ld_h
  std::vector<double> w64, a64, b64;   // exact copies for energies
  std::vector<double> wt64;            // W^T (nh, nv) in double: rows for the hidden layer's sums

  RbmModel(std::size_t nv, std::size_t nh, const double* weights, const double* vbias,
           const double* hbias);
  std::size_t num_units() const { return nv + nh; }
  double energy(const std::uint8_t* state) const;
};

// Sparse Boltzmann machine; adjacency in CSR, rows visited in colour-class order.
struct GraphModel {
  std::size_t n = 0;
  std::vector<std::int32_t> order;      // sweep order: colour classes one after another
  std::vector<std::int32_t> color;      // colour of each unit
  std::vector<std::int64_t> row_ptr;    // CSR by unit, size n+1
  std::vector<std::int32_t> nbr;
  std::vector<float> nbr_w;
  std::vector<double> nbr_w64;          // the same weights in double, for exact energy changes
  std::vector<float> bias;
  std::vector<double> bias64;
  std::vector<std::int32_t> edge_i, edge_j;  // the edge list, for energies
  std::vector<double> edge_w64;

  // edges: m pairs (i, j), i != j, unique; colors: one per unit, a proper colouring (renumbered
  // densely to 0, 1, ... in their order).
  GraphModel(std::size_t n, const double* bias, std::size_t m, const std::int64_t* edges,
             const double* weights, const std::int32_t* colors);
  std::size_t num_units() const { return n; }
  double energy(const std::uint8_t* state) const;
};

// Proper colouring by DSatur (2 colours when the graph is bipartite), deterministic.
std::vector<std::int32_t> greedy_coloring(std::size_t n, std::size_t m, const std::int64_t* edges);

}  // namespace qvae
