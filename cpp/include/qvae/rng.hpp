// Random numbers for the samplers: a lane-parallel xoshiro128+ seeded by splitmix64.
//
// Stream derivation, the one scheme every sampler follows: a generator is named by (seed, stream)
// alone, LaneRng(seed, stream), so results never depend on how work is split between threads.
//   - chain c of a set of chains draws from stream c (RbmChains, QmcChains); GraphChains' group g
//     of kLanes chains from stream g;
//   - population annealing resamples from kResamplingStream, apart from every chain's;
//   - a run made of independent sub-runs (log_diag: one annealer per state) gives sub-run b the
//     seed subseed(seed, b), from which it derives its own streams as above.
// The lane loop is written so that the compiler vectorises it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace qvae {

inline std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// The seed of sub-run `index` of a run seeded by `seed`: splitmix64 of seed ^ phi * (index + 1),
// phi = 2^64 / golden ratio.
inline std::uint64_t subseed(std::uint64_t seed, std::uint64_t index) {
  std::uint64_t x = seed ^ (0x9E3779B97F4A7C15ULL * (index + 1));
  return splitmix64(x);
}

// The stream population annealing resamples from.
constexpr std::uint64_t kResamplingStream = ~std::uint64_t{0};

// kLanes independent xoshiro128+ generators advanced together; lane l of stream (seed, stream)
// starts from splitmix64 outputs 2l and 2l + 1 of the state seed ^ c * (stream + 1), with
// c = 0xD1B54A32D192ED03.
// One step yields kLanes uint32 values; the top 24 bits make a float in (0,1).
class LaneRng {
 public:
  static constexpr int kLanes = 16;

  LaneRng() = default;
  LaneRng(std::uint64_t seed, std::uint64_t stream) { reseed(seed, stream); }

  void reseed(std::uint64_t seed, std::uint64_t stream) {
    std::uint64_t x = seed ^ (0xD1B54A32D192ED03ULL * (stream + 1));
    for (int l = 0; l < kLanes; ++l) {
      std::uint64_t a = splitmix64(x), b = splitmix64(x);
      s0_[l] = static_cast<std::uint32_t>(a);
      s1_[l] = static_cast<std::uint32_t>(a >> 32);
      s2_[l] = static_cast<std::uint32_t>(b);
      s3_[l] = static_cast<std::uint32_t>(b >> 32);
      if ((s0_[l] | s1_[l] | s2_[l] | s3_[l]) == 0) s0_[l] = 1;  // all-zero state is absorbing
    }
  }

  // Writes kLanes uniforms in (0,1): ((r >> 8) + 0.5) * 2^-24.
  inline void next_uniform(float* out) {
    for (int l = 0; l < kLanes; ++l) {
      std::uint32_t r = s0_[l] + s3_[l];
      std::uint32_t t = s1_[l] << 9;
      s2_[l] ^= s0_[l];
      s3_[l] ^= s1_[l];
      s1_[l] ^= s2_[l];
      s0_[l] ^= s3_[l];
      s2_[l] ^= t;
      s3_[l] = (s3_[l] << 11) | (s3_[l] >> 21);
      out[l] = (static_cast<float>(r >> 8) + 0.5f) * (1.0f / 16777216.0f);
    }
  }

  // Fills n uniforms (n rounded up to whole steps; out must hold that many).
  inline void fill_uniform(float* out, std::size_t n) {
    for (std::size_t i = 0; i < n; i += kLanes) next_uniform(out + i);
  }

  // The generator's state, kStateWords words (checkpoints). load throws std::invalid_argument
  // for a lane whose state is all zero (absorbing: it would only ever yield zeros).
  static constexpr std::size_t kStateWords = 4 * kLanes;
  void save(std::uint32_t* out) const {
    for (int l = 0; l < kLanes; ++l) {
      out[l] = s0_[l];
      out[kLanes + l] = s1_[l];
      out[2 * kLanes + l] = s2_[l];
      out[3 * kLanes + l] = s3_[l];
    }
  }
  void load(const std::uint32_t* in) {
    for (int l = 0; l < kLanes; ++l)
      if ((in[l] | in[kLanes + l] | in[2 * kLanes + l] | in[3 * kLanes + l]) == 0)
        throw std::invalid_argument("streams: a generator lane is all zero");
    for (int l = 0; l < kLanes; ++l) {
      s0_[l] = in[l];
      s1_[l] = in[kLanes + l];
      s2_[l] = in[2 * kLanes + l];
      s3_[l] = in[3 * kLanes + l];
    }
  }
  static constexpr std::size_t padded(std::size_t n) {
    return (n + kLanes - 1) / kLanes * kLanes;
  }

  // A double in [0,1) from lane 0 alone (53 bits from two draws); for scalar uses.
  inline double next_double() {
    std::uint32_t hi = step_lane0(), lo = step_lane0();
    return static_cast<double>((static_cast<std::uint64_t>(hi) << 21) | (lo >> 11)) *
           (1.0 / 9007199254740992.0);
  }

 private:
  inline std::uint32_t step_lane0() {
    std::uint32_t r = s0_[0] + s3_[0];
    std::uint32_t t = s1_[0] << 9;
    s2_[0] ^= s0_[0];
    s3_[0] ^= s1_[0];
    s1_[0] ^= s2_[0];
    s0_[0] ^= s3_[0];
    s2_[0] ^= t;
    s3_[0] = (s3_[0] << 11) | (s3_[0] >> 21);
    return r;
  }

  alignas(64) std::uint32_t s0_[kLanes]{};
  alignas(64) std::uint32_t s1_[kLanes]{};
  alignas(64) std::uint32_t s2_[kLanes]{};
  alignas(64) std::uint32_t s3_[kLanes]{};
};

// All streams of a set of chains, one after another: (streams, LaneRng::kStateWords).
inline void save_streams(const std::vector<LaneRng>& rngs, std::uint32_t* out) {
  for (std::size_t i = 0; i < rngs.size(); ++i) rngs[i].save(out + i * LaneRng::kStateWords);
}
// Loads every stream or, when one is invalid, none.
inline void load_streams(std::vector<LaneRng>& rngs, const std::uint32_t* in) {
  std::vector<LaneRng> loaded(rngs.size());
  for (std::size_t i = 0; i < rngs.size(); ++i) loaded[i].load(in + i * LaneRng::kStateWords);
  rngs.swap(loaded);
}

}  // namespace qvae
