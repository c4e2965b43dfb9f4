// Population-annealing statistics (anneal.hpp, namespace pa): systematic resampling within each
// sub-population, log-mean-exp, the normalised ESS, the adaptive step and the combined estimate.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "qvae/anneal.hpp"

namespace pa = qvae::pa;
using qvae::LaneRng;

namespace {

// Systematic resampling by its definition: child k of a sub-population of `size` replicas with
// normalised weights p is the first replica whose cumulative weight exceeds (u + k) / size.
std::vector<std::size_t> systematic(const std::vector<double>& p, double u, std::size_t first) {
  const std::size_t size = p.size();
  std::vector<double> cumulative(size);
  double c = 0.0;
  for (std::size_t i = 0; i < size; ++i) cumulative[i] = c += p[i];
  std::vector<std::size_t> parent(size);
  for (std::size_t k = 0; k < size; ++k) {
    const double position = (u + static_cast<double>(k)) / static_cast<double>(size);
    const auto it = std::upper_bound(cumulative.begin(), cumulative.end(), position);
    parent[k] = first + std::min<std::size_t>(it - cumulative.begin(), size - 1);
  }
  return parent;
}

}  // namespace

TEST(Resample, SystematicWithinEachSubpopulation) {
  // Two sub-populations of 4 and 5 replicas (R = 9, M = 2: [0, 4) and [4, 9)).
  const std::vector<double> weight{1, 2, 3, 4, 5, 0.5, 0.25, 2, 1};
  std::vector<double> logw;
  for (double w : weight) logw.push_back(std::log(w) - 3.0);  // any common shift
  LaneRng rng(11, qvae::kResamplingStream), draws = rng;        // draws: the same u's
  std::vector<std::size_t> parent;
  pa::resample(logw, 2, rng, parent);
  ASSERT_EQ(parent.size(), 9u);
  const double u0 = draws.next_double(), u1 = draws.next_double();
  const auto first = systematic({0.1, 0.2, 0.3, 0.4}, u0, 0);
  const auto second = systematic({5 / 8.75, 0.5 / 8.75, 0.25 / 8.75, 2 / 8.75, 1 / 8.75}, u1, 4);
  EXPECT_EQ(std::vector<std::size_t>(parent.begin(), parent.begin() + 4), first);
  EXPECT_EQ(std::vector<std::size_t>(parent.begin() + 4, parent.end()), second);
  // Each replica gets floor or ceil of size * p offspring.
  std::vector<int> count(9, 0);
  for (std::size_t p : parent) ++count[p];
  for (std::size_t i = 0; i < 9; ++i) {
    const double expected = i < 4 ? 4 * weight[i] / 10.0 : 5 * weight[i] / 8.75;
    EXPECT_GE(count[i], std::floor(expected) - 1e-12) << i;
    EXPECT_LE(count[i], std::ceil(expected) + 1e-12) << i;
  }
}

TEST(Resample, EqualWeightsKeepEveryReplica) {
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    LaneRng rng(seed, qvae::kResamplingStream);
    std::vector<std::size_t> parent;
    pa::resample(std::vector<double>(10, -2.5), 3, rng, parent);
    for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(parent[i], i);
  }
}

TEST(Resample, AWeightlessReplicaHasNoOffspringAndADominantOneTakesAll) {
  const double none = -std::numeric_limits<double>::infinity();
  LaneRng rng(4, qvae::kResamplingStream);
  std::vector<std::size_t> parent;
  pa::resample({none, 0.0, none, 0.0}, 1, rng, parent);
  for (std::size_t p : parent) EXPECT_TRUE(p == 1 || p == 3);
  EXPECT_EQ(std::count(parent.begin(), parent.end(), 1u), 2);
  pa::resample({-800.0, 0.0, -800.0, -900.0}, 1, rng, parent);
  EXPECT_EQ(parent, std::vector<std::size_t>(4, 1));
}

TEST(PaStatistics, LogMeanExp) {
  const std::vector<double> x{std::log(1.0), std::log(3.0)};
  EXPECT_NEAR(pa::log_mean_exp(x.data(), 2), std::log(2.0), 1e-15);
  const std::vector<double> big{1000.0, 1000.0 + std::log(3.0)};  // no overflow
  EXPECT_NEAR(pa::log_mean_exp(big.data(), 2), 1000.0 + std::log(2.0), 1e-12);
  const std::vector<double> none(3, -std::numeric_limits<double>::infinity());
  EXPECT_EQ(pa::log_mean_exp(none.data(), 3), -std::numeric_limits<double>::infinity());
}

TEST(PaStatistics, NormalizedEss) {
  EXPECT_DOUBLE_EQ(pa::normalized_ess(std::vector<double>(8, 0.7)), 1.0);
  const double none = -std::numeric_limits<double>::infinity();
  EXPECT_DOUBLE_EQ(pa::normalized_ess({0.0, none, none, none}), 0.25);
  // w = (1, 3): (1 + 3)^2 / (2 (1 + 9)) = 0.8.
  EXPECT_NEAR(pa::normalized_ess({0.0, std::log(3.0)}), 0.8, 1e-15);
}

TEST(PaStatistics, AdaptiveStepHoldsTheTargetEss) {
  const std::vector<double> a{0.0, 1.0, 2.0, 5.0};
  std::vector<double> scratch(a.size()), logw(a.size());
  EXPECT_EQ(pa::adaptive_step(std::vector<double>(4, 3.0), 0.7, 0.99, scratch), 0.7);  // ESS stays 1
  const double dt = pa::adaptive_step(a, 1.0, 0.9, scratch);
  ASSERT_GT(dt, 0.0);
  ASSERT_LT(dt, 1.0);
  for (std::size_t i = 0; i < a.size(); ++i) logw[i] = -dt * a[i];
  EXPECT_NEAR(pa::normalized_ess(logw), 0.9, 1e-12);
}

TEST(PaStatistics, CombineIsLogMeanExpWithTheDeltaMethodError) {
  double log_z, log_z_std;
  pa::combine({std::log(1.0), std::log(3.0)}, log_z, log_z_std);
  EXPECT_NEAR(log_z, std::log(2.0), 1e-15);
  // Z_m / Z = (0.5, 1.5): sqrt(sum (r - 1)^2 / (M - 1) / M) = sqrt(0.5 / 2) = 0.5.
  EXPECT_NEAR(log_z_std, 0.5, 1e-15);
  pa::combine({1.25}, log_z, log_z_std);
  EXPECT_EQ(log_z, 1.25);
  EXPECT_TRUE(std::isnan(log_z_std));
}
