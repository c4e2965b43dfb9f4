// Model parameters laid out for the samplers (float32, padded, cache-friendly); models.cpp.
//
// Binary units z in {0,1}; E(z) = -sum_i b_i z_i - sum_(ij) w_ij z_i z_j (docs/conventions.md, "Units and energies").
// Energies are accumulated in double from the double-precision parameters kept alongside.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace qvae {

// Column tile of the RBM field kernel, in floats; biases and field-table rows span whole tiles.
constexpr std::size_t kRbmTile = 32;

inline std::size_t pad_to(std::size_t n, std::size_t m) { return (n + m - 1) / m * m; }

// Allocates on cache-line boundaries, so that vector loads of table rows never straddle two lines.
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, kAlign); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const CacheLineAllocator<U>&) const { return false; }
};
using AlignedFloats = std::vector<float, CacheLineAllocator<float>>;

// RBM, E(v,h) = -a.v - b.h - v^T W h; W row-major (nv, nh). State = [v, h].
struct RbmModel {
  std::size_t nv = 0, nh = 0;
  // Field tables ("four Russians"): for each source nibble q (units 4q..4q+3) and bit pattern p
  // of it, the sum of the W rows it selects, restricted to one column tile of the targets:
  // field_to_h[((t * nq_v + q) * 16 + p) * kRbmTile + j'] = sum_{k in p} W[4q + k, t * kRbmTile + j'],
  // summed in double and rounded once. A layer's fields are then nq additions instead of up to n.
  AlignedFloats field_to_h, field_to_v;
  AlignedFloats a, b;                  // biases, zero-padded to whole tiles
  std::vector<double> w64, a64, b64;   // exact copies for energies
  std::vector<double> wt64;            // W^T (nh, nv) in double: rows for the hidden layer's sums

  RbmModel(std::size_t nv, std::size_t nh, const double* weights, const double* vbias,
           const double* hbias);
  std::size_t num_units() const { return nv + nh; }
  // A layer packed in 32-bit words, and its nibbles over whole words (tables cover the padding
  // with zeros).
  static std::size_t num_words(std::size_t n) { return pad_to(n, 32) / 32; }
  static std::size_t num_nibbles(std::size_t n) { return 8 * num_words(n); }
  // Row of a field table for target tile t, source nibble q of nq and bit pattern p: kRbmTile sums.
  template <class Float>
  static Float* table_row(Float* table, std::size_t nq, std::size_t t, std::size_t q, unsigned p) {
    return table + ((t * nq + q) * 16 + p) * kRbmTile;
  }
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

// Energies of `batch` states stored one after another, (batch, n), into out (batch,).
template <class Model>
void energies(const Model& model, const std::uint8_t* states, std::size_t batch, double* out) {
  const std::size_t n = model.num_units();
  for (std::size_t k = 0; k < batch; ++k) out[k] = model.energy(states + k * n);
}

// Proper colouring by DSatur (2 colours when the graph is bipartite), deterministic.
std::vector<std::int32_t> greedy_coloring(std::size_t n, std::size_t m, const std::int64_t* edges);

}  // namespace qvae
