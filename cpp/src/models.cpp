// The classical models (models.hpp): RBM field tables, the sparse graph in CSR, energies, DSatur colouring.
#include <algorithm>
#include <numeric>
#include <set>
#include <tuple>
#include <stdexcept>

#include "qvae/models.hpp"

namespace qvae {

namespace {
// Field table of a source layer of n_src units onto n_dst targets, weight(s, d) = W entry:
// see RbmModel::field_to_h.
template <class Weight>
AlignedFloats field_table(std::size_t n_src, std::size_t n_dst, Weight weight) {
  const std::size_t nq = RbmModel::num_nibbles(n_src), tiles = pad_to(n_dst, kRbmTile) / kRbmTile;
  AlignedFloats table(tiles * nq * 16 * kRbmTile, 0.0f);
  std::vector<double> sum(16);
  for (std::size_t t = 0; t < tiles; ++t)
    for (std::size_t q = 0; q < nq; ++q)
      for (std::size_t j = 0; j < kRbmTile && t * kRbmTile + j < n_dst; ++j) {
        sum[0] = 0.0;
        for (std::size_t p = 1; p < 16; ++p) {  // p = (p without its lowest bit k) + row k
          const std::size_t k = static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(p)));
          const std::size_t s = 4 * q + k;
          sum[p] = sum[p & (p - 1)] + (s < n_src ? weight(s, t * kRbmTile + j) : 0.0);
          RbmModel::table_row(table.data(), nq, t, q, static_cast<unsigned>(p))[j] = static_cast<float>(sum[p]);
        }
      }
  return table;
}
}  // namespace

RbmModel::RbmModel(std::size_t nv_, std::size_t nh_, const double* weights, const double* vbias,
                   const double* hbias)
    : nv(nv_), nh(nh_),
      field_to_h(field_table(nv_, nh_, [&](std::size_t i, std::size_t j) { return weights[i * nh_ + j]; })),
      field_to_v(field_table(nh_, nv_, [&](std::size_t j, std::size_t i) { return weights[i * nh_ + j]; })),
      a(pad_to(nv_, kRbmTile), 0.0f), b(pad_to(nh_, kRbmTile), 0.0f), w64(weights, weights + nv_ * nh_),
      a64(vbias, vbias + nv_), b64(hbias, hbias + nh_), wt64(nv_ * nh_) {
  for (std::size_t i = 0; i < nv; ++i)
    for (std::size_t j = 0; j < nh; ++j) wt64[j * nv + i] = weights[i * nh + j];
  for (std::size_t i = 0; i < nv; ++i) a[i] = static_cast<float>(vbias[i]);
  for (std::size_t j = 0; j < nh; ++j) b[j] = static_cast<float>(hbias[j]);
}

double RbmModel::energy(const std::uint8_t* s) const {
  const std::uint8_t* v = s;
  const std::uint8_t* h = s + nv;
  // Sum over active units only, in a fixed order: E = -sum_{v_i=1} (a_i + sum_{h_j=1} W_ij) - b.h.
  double e = 0.0;
  for (std::size_t j = 0; j < nh; ++j)
    if (h[j]) e -= b64[j];
  for (std::size_t i = 0; i < nv; ++i) {
    if (!v[i]) continue;
    double f = a64[i];
    const double* row = &w64[i * nh];
    for (std::size_t j = 0; j < nh; ++j) f += h[j] ? row[j] : 0.0;
    e -= f;
  }
  return e;
}

GraphModel::GraphModel(std::size_t n_, const double* b, std::size_t m, const std::int64_t* edges,
                       const double* weights, const std::int32_t* colors)
    : n(n_), color(colors, colors + n_), row_ptr(n_ + 1, 0), bias(n_), bias64(b, b + n_),
      edge_i(m), edge_j(m), edge_w64(weights, weights + m) {
  // Colours are the sweep's blocks, numbered 0, 1, ...: renumber the given ones densely, in order.
  std::vector<std::int32_t> used(color);
  std::sort(used.begin(), used.end());
  used.erase(std::unique(used.begin(), used.end()), used.end());
  if (!used.empty() && used.front() < 0) throw std::invalid_argument("colors: must be non-negative");
  for (auto& c : color)
    c = static_cast<std::int32_t>(std::lower_bound(used.begin(), used.end(), c) - used.begin());
  for (std::size_t i = 0; i < n; ++i) bias[i] = static_cast<float>(b[i]);
  for (std::size_t k = 0; k < m; ++k) {
    edge_i[k] = static_cast<std::int32_t>(edges[2 * k]);
    edge_j[k] = static_cast<std::int32_t>(edges[2 * k + 1]);
    if (color[edge_i[k]] == color[edge_j[k]])
      throw std::invalid_argument("colors: adjacent units share a colour");
    ++row_ptr[edge_i[k] + 1];
    ++row_ptr[edge_j[k] + 1];
  }
  for (std::size_t i = 0; i < n; ++i) row_ptr[i + 1] += row_ptr[i];
  nbr.resize(2 * m);
  nbr_w.resize(2 * m);
  nbr_w64.resize(2 * m);
  std::vector<std::int64_t> fill(row_ptr.begin(), row_ptr.end() - 1);
  for (std::size_t k = 0; k < m; ++k) {
    std::int32_t i = edge_i[k], j = edge_j[k];
    nbr[fill[i]] = j, nbr_w64[fill[i]++] = weights[k];
    nbr[fill[j]] = i, nbr_w64[fill[j]++] = weights[k];
  }
  // Neighbours in increasing order: a fixed summation order and a streaming access pattern.
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<std::pair<std::int32_t, double>> row;
    for (auto e = row_ptr[i]; e < row_ptr[i + 1]; ++e) row.emplace_back(nbr[e], nbr_w64[e]);
    std::sort(row.begin(), row.end(),
              [](const auto& x, const auto& y) { return x.first < y.first; });
    for (std::size_t e = 0; e < row.size(); ++e)
      nbr[row_ptr[i] + e] = row[e].first, nbr_w64[row_ptr[i] + e] = row[e].second;
  }
  for (std::size_t e = 0; e < nbr_w.size(); ++e) nbr_w[e] = static_cast<float>(nbr_w64[e]);
  order.resize(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int32_t x, std::int32_t y) { return color[x] < color[y]; });
}

double GraphModel::energy(const std::uint8_t* s) const {
  double e = 0.0;
  for (std::size_t i = 0; i < n; ++i) e -= bias64[i] * s[i];
  for (std::size_t k = 0; k < edge_w64.size(); ++k) e -= edge_w64[k] * (s[edge_i[k]] & s[edge_j[k]]);
  return e;
}

// DSatur (Brelaz 1979): colour next the uncoloured unit whose neighbours show the most distinct
// colours (ties: more neighbours, then the lower index), with the smallest colour they leave free.
// Exact on bipartite graphs (RBMs, Chimera: two colours); Pegasus gets 4 where largest-first gave 8.
std::vector<std::int32_t> greedy_coloring(std::size_t n, std::size_t m, const std::int64_t* edges) {
  std::vector<std::vector<std::int32_t>> adj(n);
  for (std::size_t k = 0; k < m; ++k) {
    adj[edges[2 * k]].push_back(static_cast<std::int32_t>(edges[2 * k + 1]));
    adj[edges[2 * k + 1]].push_back(static_cast<std::int32_t>(edges[2 * k]));
  }
  std::vector<std::int32_t> color(n, -1), saturation(n, 0);
  std::vector<std::vector<char>> seen(n);  // per unit: which colours its coloured neighbours have
  using Key = std::tuple<std::int32_t, std::size_t, std::int32_t>;  // (saturation, degree, -unit)
  auto key = [&](std::int32_t u) { return Key{saturation[u], adj[u].size(), -u}; };
  std::set<Key> queue;
  for (std::size_t u = 0; u < n; ++u) queue.insert(key(static_cast<std::int32_t>(u)));
  while (!queue.empty()) {
    const std::int32_t u = -std::get<2>(*queue.rbegin());
    queue.erase(std::prev(queue.end()));
    std::int32_t c = 0;
    while (static_cast<std::size_t>(c) < seen[u].size() && seen[u][c]) ++c;
    color[u] = c;
    for (std::int32_t v : adj[u]) {
      if (color[v] >= 0) continue;
      if (seen[v].size() <= static_cast<std::size_t>(c)) seen[v].resize(c + 1, 0);
      if (seen[v][c]) continue;
      queue.erase(key(v));
      seen[v][c] = 1;
      ++saturation[v];
      queue.insert(key(v));
    }
  }
  return color;
}

}  // namespace qvae
