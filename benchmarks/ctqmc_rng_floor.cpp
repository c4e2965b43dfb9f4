// The least a CT-QMC sweep of an n x n QBM at Gamma = 1 must spend on random numbers, to set
// beside a block-Gibbs sweep (README, "CT-QMC"): per layer update, a Poisson process of rate n
// along imaginary time (an exponential spacing from a vectorised log, a running sum for time order,
// and a uniform for the unit it cuts), then one uniform and one logistic per segment (~n + n cuts +
// 0.7 n kinks), with the sampler's own generator and vector maths. Nothing else is computed.
//
//   g++ -O3 -march=x86-64-v3 -std=c++17 -I cpp/include benchmarks/ctqmc_rng_floor.cpp -o /tmp/rng_floor
//   /tmp/rng_floor 16 && /tmp/rng_floor 32 && /tmp/rng_floor 64
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "qvae/math.hpp"
#include "qvae/rng.hpp"

using namespace qvae;

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 32;  // units per layer
  const double kinks_per_unit = 0.7;                 // measured at Gamma = 1 on the benchmark QBMs
  const int chains = 1000, sweeps = 200;
  std::vector<LaneRng> rng(chains);
  for (int c = 0; c < chains; ++c) rng[c].reseed(1, c);
  const int segments = n + n + static_cast<int>(kinks_per_unit * n);
  const std::size_t padded = (segments + LaneRng::kLanes - 1) / LaneRng::kLanes * LaneRng::kLanes;
  std::vector<float> u(padded), area(padded, 0.3f), value(padded);
  double sink = 0.0;
  const auto start = std::chrono::steady_clock::now();
  for (int s = 0; s < sweeps; ++s)
    for (int c = 0; c < chains; ++c)
      for (int layer = 0; layer < 2; ++layer) {
        alignas(64) float gap[LaneRng::kLanes], pick[LaneRng::kLanes];
        double t = 0.0;
        int picked = 0;
        while (t < 1.0) {
          rng[c].next_uniform(gap);
          rng[c].next_uniform(pick);
          for (int k = 0; k < LaneRng::kLanes; k += kVec) vstore(gap + k, -(1.0f / n) * vlog(vload(gap + k)));
          for (int k = 0; k < LaneRng::kLanes && t < 1.0; ++k) {
            t += gap[k];
            picked += pick[k] < 0.5f;
          }
        }
        rng[c].fill_uniform(u.data(), segments);
        for (std::size_t k = 0; k < padded; k += kVec)
          vstore(&value[k], vbernoulli_logistic(vload(&area[k]), vload(&u[k])));
        sink += value[picked % segments];
      }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%dx%d: random numbers alone %.0f ns per chain-sweep (1 thread; checksum %g)\n", n, n,
              seconds / sweeps / chains * 1e9, sink);
}
