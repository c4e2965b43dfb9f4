#include "qvae/gibbs.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "qvae/math.hpp"
#include "qvae/thread_pool.hpp"

namespace qvae {

namespace {

// Heat-bath update of a layer of n_dst units for a few chains, from the packed bits of the
// source layer: field_j = bias_j + sum over source nibbles q of table[q][pattern_q][j] (the W rows
// of the active units, RbmModel::field_to_h). One tile of kRbmTile targets is accumulated in four
// vectors and its table slice reused across the chains; the new bits are written packed.
QVAE_VECTOR_INLINE
void rbm_half_body(const float* table, std::size_t n_src, const float* bias, std::size_t n_dst,
                   float beta, std::size_t num_chains, const std::uint32_t* src,
                   std::uint32_t* dst, std::size_t stride, LaneRng* rng) {
  static_assert(kRbmTile == 4 * kVec && kRbmTile == 32, "a tile is four vectors and one word");
  static_assert(2 * LaneRng::kLanes == kRbmTile, "two generator steps per tile");
  const std::size_t nq = RbmModel::num_nibbles(n_src);
  const vint lane_bit = {1, 2, 4, 8, 16, 32, 64, 128};
  alignas(64) float u[kRbmTile];
  for (std::size_t t = 0; t * kRbmTile < n_dst; ++t) {
    const std::size_t width = std::min(kRbmTile, n_dst - t * kRbmTile);
    const std::uint32_t valid = width == 32 ? ~0u : (1u << width) - 1u;
    const float* b = bias + t * kRbmTile;
    for (std::size_t c = 0; c < num_chains; ++c) {
      // Two sets of accumulators (even and odd nibbles) halve the chain of dependent additions
      // (one set: 64x64 at 16k instead of 20k sweeps/s, 256x256 at 1.25k instead of 1.7k).
      vfloat a0 = vload(b), a1 = vload(b + 8), a2 = vload(b + 16), a3 = vload(b + 24);
      vfloat e0{}, e1{}, e2{}, e3{};
      const std::uint32_t* words = src + c * stride;
      for (std::size_t k = 0; k < RbmModel::num_words(n_src); ++k) {
        const std::uint32_t w = words[k];
        const float* base = RbmModel::table_row(table, nq, t, 8 * k, 0);  // the word's 8 nibbles follow
        for (int i = 0; i < 8; i += 2) {
          const float* r = base + (i * 16 + ((w >> (4 * i)) & 15u)) * kRbmTile;
          const float* s = base + ((i + 1) * 16 + ((w >> (4 * i + 4)) & 15u)) * kRbmTile;
          a0 += vload(r);
          a1 += vload(r + 8);
          a2 += vload(r + 16);
          a3 += vload(r + 24);
          e0 += vload(s);
          e1 += vload(s + 8);
          e2 += vload(s + 16);
          e3 += vload(s + 24);
        }
      }
      a0 += e0;
      a1 += e1;
      a2 += e2;
      a3 += e3;
      rng[c].next_uniform(u);
      rng[c].next_uniform(u + LaneRng::kLanes);
      // Each vector's draws become 8 bits of the tile's word.
      vint m = vlogistic_take(beta * a0, vload(u)) & lane_bit;
      m |= vlogistic_take(beta * a1, vload(u + 8)) & (lane_bit << 8);
      m |= vlogistic_take(beta * a2, vload(u + 16)) & (lane_bit << 16);
      m |= vlogistic_take(beta * a3, vload(u + 24)) & (lane_bit << 24);
      std::uint32_t word = 0;
      for (int l = 0; l < kVec; ++l) word |= static_cast<std::uint32_t>(m[l]);
      dst[c * stride + t] = word & valid;
    }
  }
}

// One or more sweeps of a group of chains held in SIMD lanes (unit-major layout).
QVAE_VECTOR_INLINE
void graph_sweep_body(std::size_t n, const std::int32_t* order, const std::int64_t* row_ptr,
                      const std::int32_t* nbr, const float* nbr_w, const float* bias, float* z,
                      LaneRng& rng, std::size_t num_sweeps, float beta) {
  constexpr std::size_t L = LaneRng::kLanes;
  static_assert(L == 2 * kVec, "a group is two vectors of chains");
  alignas(64) float u[L];
  for (std::size_t s = 0; s < num_sweeps; ++s) {
    for (std::size_t p = 0; p < n; ++p) {
      const std::int32_t i = order[p];
      vfloat f0 = vbroadcast(bias[i]), f1 = f0;
      for (std::int64_t e = row_ptr[i]; e < row_ptr[i + 1]; ++e) {
        const float* zn = z + static_cast<std::size_t>(nbr[e]) * L;
        const float w = nbr_w[e];
        f0 += w * vload(zn);
        f1 += w * vload(zn + kVec);
      }
      rng.next_uniform(u);
      float* zi = z + static_cast<std::size_t>(i) * L;
      vstore(zi, vbernoulli_logistic(beta * f0, vload(u)));
      vstore(zi + kVec, vbernoulli_logistic(beta * f1, vload(u + kVec)));
    }
  }
}

// The clones. Each only calls its body, which is inlined and compiled for the clone's instruction
// set: Clang refuses calls that pass vectors between functions built for different instruction
// sets (always_inline or not), so a clone itself calls no vector helper.
QVAE_MULTIVERSION_V4
void rbm_half_kernel(const float* table, std::size_t n_src, const float* bias, std::size_t n_dst,
                     float beta, std::size_t num_chains, const std::uint32_t* src,
                     std::uint32_t* dst, std::size_t stride, LaneRng* rng) {
  rbm_half_body(table, n_src, bias, n_dst, beta, num_chains, src, dst, stride, rng);
}

QVAE_MULTIVERSION
void graph_sweep_kernel(std::size_t n, const std::int32_t* order, const std::int64_t* row_ptr,
                        const std::int32_t* nbr, const float* nbr_w, const float* bias, float* z,
                        LaneRng& rng, std::size_t num_sweeps, float beta) {
  graph_sweep_body(n, order, row_ptr, nbr, nbr_w, bias, z, rng, num_sweeps, beta);
}

}  // namespace

// ---------------------------------------------------------------- RBM chains

RbmChains::RbmChains(std::shared_ptr<const RbmModel> model, std::size_t num_chains,
                     std::uint64_t seed, const std::uint8_t* initial_state)
    : model_(std::move(model)), num_chains_(num_chains),
      state_(num_chains * model_->num_units()), rng_(num_chains) {
  for (std::size_t c = 0; c < num_chains_; ++c) rng_[c].reseed(seed, c);
  const std::size_t n = num_units();
  if (initial_state) {
    std::copy(initial_state, initial_state + num_chains_ * n, state_.begin());
  } else {
    // Uniform random start, drawn from each chain's own stream.
    std::vector<float> u(LaneRng::padded(n));
    for (std::size_t c = 0; c < num_chains_; ++c) {
      rng_[c].fill_uniform(u.data(), n);
      for (std::size_t i = 0; i < n; ++i) state_[c * n + i] = u[i] < 0.5f;
    }
  }
  bits_.assign(num_chunks(num_chains_, kChunk) * kChunk * (RbmModel::num_words(model_->nv) + RbmModel::num_words(model_->nh)), 0u);
}

void RbmChains::set_model(std::shared_ptr<const RbmModel> model) {  // same sizes: bits_ fits
  if (model->nv != model_->nv || model->nh != model_->nh)
    throw std::invalid_argument("model: layer sizes differ from the chains'");
  model_ = std::move(model);
}

void RbmChains::sweep_range(std::size_t first, std::size_t last, std::size_t num_sweeps,
                            float beta) {
  const RbmModel& m = *model_;
  const std::size_t n = m.num_units(), wv = RbmModel::num_words(m.nv), stride = wv + RbmModel::num_words(m.nh);
  std::uint32_t* bits = bits_.data() + first * stride;
  const std::size_t count = last - first;
  std::fill_n(bits, count * stride, 0u);
  for (std::size_t c = 0; c < count; ++c) {
    const std::uint8_t* s = &state_[(first + c) * n];
    std::uint32_t* v = bits + c * stride;
    for (std::size_t i = 0; i < m.nv; ++i) v[i / 32] |= static_cast<std::uint32_t>(s[i]) << (i % 32);
    for (std::size_t j = 0; j < m.nh; ++j) v[wv + j / 32] |= static_cast<std::uint32_t>(s[m.nv + j]) << (j % 32);
  }
  for (std::size_t s = 0; s < num_sweeps; ++s) {
    rbm_half_kernel(m.field_to_h.data(), m.nv, m.b.data(), m.nh, beta, count, bits, bits + wv, stride,
                    &rng_[first]);
    rbm_half_kernel(m.field_to_v.data(), m.nh, m.a.data(), m.nv, beta, count, bits + wv, bits, stride,
                    &rng_[first]);
  }
  for (std::size_t c = 0; c < count; ++c) {
    std::uint8_t* s = &state_[(first + c) * n];
    const std::uint32_t* v = bits + c * stride;
    for (std::size_t i = 0; i < m.nv; ++i) s[i] = (v[i / 32] >> (i % 32)) & 1u;
    for (std::size_t j = 0; j < m.nh; ++j) s[m.nv + j] = (v[wv + j / 32] >> (j % 32)) & 1u;
  }
}

void RbmChains::energies(double* out, std::size_t num_threads) const {
  const std::size_t n = num_units();
  parallel_chunks(num_chains_, kChunk, num_threads, [&](std::size_t first, std::size_t last) {
    for (std::size_t c = first; c < last; ++c) out[c] = model_->energy(&state_[c * n]);
  });
}

void RbmChains::permute(const std::vector<std::size_t>& parent) {
  const std::size_t n = num_units();
  spare_.resize(state_.size());
  for (std::size_t c = 0; c < num_chains_; ++c)
    std::copy_n(&state_[parent[c] * n], n, &spare_[c * n]);
  state_.swap(spare_);
}

void RbmChains::prepare_weights(std::size_t num_threads) {
  const RbmModel& m = *model_;
  const bool keep_visible = m.nh >= m.nv;  // sum out the larger layer
  const std::size_t n = m.num_units(), nk = keep_visible ? m.nv : m.nh, ns = keep_visible ? m.nh : m.nv;
  kept_bias_.resize(num_chains_);
  summed_field_.resize(num_chains_ * ns);
  parallel_chunks(num_chains_, kChunk, num_threads, [&](std::size_t first, std::size_t last) {
    for (std::size_t c = first; c < last; ++c) {
      const std::uint8_t* y = &state_[c * n + (keep_visible ? 0 : m.nv)];
      double* x = &summed_field_[c * ns];
      const double* d = keep_visible ? m.b64.data() : m.a64.data();
      const double* cb = keep_visible ? m.a64.data() : m.b64.data();
      std::copy_n(d, ns, x);
      double lin = 0.0;
      for (std::size_t k = 0; k < nk; ++k) {
        if (!y[k]) continue;
        lin += cb[k];
        const double* row = keep_visible ? &m.w64[k * m.nh] : &m.wt64[k * m.nv];  // W or W^T row k
        for (std::size_t j = 0; j < ns; ++j) x[j] += row[j];
      }
      kept_bias_[c] = lin;
    }
  });
}

namespace {
inline double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
}  // namespace

void RbmChains::weight_slope(double t, double* out, std::size_t num_threads) const {
  const std::size_t ns = summed_field_.size() / num_chains_;
  parallel_chunks(num_chains_, kChunk, num_threads, [&](std::size_t first, std::size_t last) {
    for (std::size_t c = first; c < last; ++c) {
      const double* x = &summed_field_[c * ns];
      double g = kept_bias_[c];
      for (std::size_t j = 0; j < ns; ++j) g += x[j] * sigmoid(t * x[j]);
      out[c] = -g;
    }
  });
}

void RbmChains::log_weights(double t, double t_next, double* out, std::size_t num_threads) const {
  const std::size_t ns = summed_field_.size() / num_chains_;
  parallel_chunks(num_chains_, kChunk, num_threads, [&](std::size_t first, std::size_t last) {
    for (std::size_t c = first; c < last; ++c) {
      const double* x = &summed_field_[c * ns];
      double l = (t_next - t) * kept_bias_[c];
      for (std::size_t j = 0; j < ns; ++j) l += softplus(t_next * x[j]) - softplus(t * x[j]);
      out[c] = l;
    }
  });
}

std::size_t RbmChains::run(std::size_t num_sweeps, double beta, std::size_t num_threads,
                           const PollFn& poll) {
  const float b = static_cast<float>(beta);
  return run_in_rounds(num_sweeps, num_chains_, kChunk, num_threads, poll,
                       [&](std::size_t first, std::size_t last, std::size_t sweeps) {
                         sweep_range(first, last, sweeps, b);
                       });
}

// ---------------------------------------------------------------- graph chains

GraphChains::GraphChains(std::shared_ptr<const GraphModel> model, std::size_t num_chains,
                         std::uint64_t seed, const std::uint8_t* initial_state)
    : model_(std::move(model)), num_chains_(num_chains),
      z_(num_chunks(num_chains, kGroup) * model_->num_units() * kGroup, 0.0f),
      rng_(num_chunks(num_chains, kGroup)), energy_(num_chains) {
  for (std::size_t g = 0; g < rng_.size(); ++g) rng_[g].reseed(seed, g);
  const std::size_t n = num_units();
  if (initial_state) {
    set_state(initial_state);
  } else {
    alignas(64) float u[kGroup];
    for (std::size_t g = 0; g < rng_.size(); ++g)
      for (std::size_t i = 0; i < n; ++i) {
        rng_[g].next_uniform(u);
        for (std::size_t l = 0; l < kGroup; ++l) z_[(g * n + i) * kGroup + l] = u[l] < 0.5f;
      }
  }
}

void GraphChains::set_model(std::shared_ptr<const GraphModel> model) {
  if (model->n != model_->n) throw std::invalid_argument("model: unit count differs from the chains'");
  model_ = std::move(model);
}

void GraphChains::get_state(std::uint8_t* out) const {
  const std::size_t n = num_units();
  for (std::size_t c = 0; c < num_chains_; ++c) {
    const float* zg = &z_[(c / kGroup) * n * kGroup + c % kGroup];
    for (std::size_t i = 0; i < n; ++i) out[c * n + i] = static_cast<std::uint8_t>(zg[i * kGroup]);
  }
}

void GraphChains::set_state(const std::uint8_t* in) {
  const std::size_t n = num_units();
  for (std::size_t c = 0; c < num_chains_; ++c) {
    float* zg = &z_[(c / kGroup) * n * kGroup + c % kGroup];
    for (std::size_t i = 0; i < n; ++i) zg[i * kGroup] = in[c * n + i];
  }
}

void GraphChains::energies(double* out, std::size_t num_threads) const {
  const GraphModel& m = *model_;
  const std::size_t n = m.n;
  parallel_chunks(num_chains_, kGroup, num_threads, [&](std::size_t first, std::size_t last) {
    const float* zg = &z_[first * n];  // the group's block: (n, kGroup)
    std::vector<std::uint8_t> state(n);  // one lane unpacked: GraphModel::energy reads it contiguously
    for (std::size_t c = first; c < last; ++c) {
      for (std::size_t i = 0; i < n; ++i) state[i] = zg[i * kGroup + c % kGroup] != 0.0f;
      out[c] = m.energy(state.data());
    }
  });
}

void GraphChains::permute(const std::vector<std::size_t>& parent) {
  const std::size_t n = num_units();
  spare_.resize(z_.size());
  for (std::size_t c = 0; c < num_chains_; ++c) {
    const float* src = &z_[(parent[c] / kGroup) * n * kGroup + parent[c] % kGroup];
    float* dst = &spare_[(c / kGroup) * n * kGroup + c % kGroup];
    for (std::size_t i = 0; i < n; ++i) dst[i * kGroup] = src[i * kGroup];
  }
  z_.swap(spare_);
}

void GraphChains::sweep_group(std::size_t g, std::size_t num_sweeps, float beta) {
  const GraphModel& m = *model_;
  graph_sweep_kernel(m.n, m.order.data(), m.row_ptr.data(), m.nbr.data(), m.nbr_w.data(),
                     m.bias.data(), &z_[g * m.n * kGroup], rng_[g], num_sweeps, beta);
}

std::size_t GraphChains::run(std::size_t num_sweeps, double beta, std::size_t num_threads,
                             const PollFn& poll) {
  const float b = static_cast<float>(beta);
  return run_in_rounds(num_sweeps, num_chains_, kGroup, num_threads, poll,
                       [&](std::size_t first, std::size_t, std::size_t sweeps) { sweep_group(first / kGroup, sweeps, b); });
}

}  // namespace qvae
