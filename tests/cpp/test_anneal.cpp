// anneal(): each kind of chains starts from its exact t = 0 ensemble with the right log Z_0, which
// models without a diagonal part (all weights and biases zero) return unchanged.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "qvae/anneal.hpp"
#include "qvae/ctqmc.hpp"

namespace {

qvae::AnnealOptions options(std::uint64_t seed, std::size_t threads = 1) {
  qvae::AnnealOptions o;
  o.seed = seed;
  o.num_subpopulations = 4;
  o.num_threads = threads;
  return o;
}

std::shared_ptr<const qvae::RbmModel> rbm(std::size_t nv, std::size_t nh, const std::vector<double>& w,
                                          const std::vector<double>& a, const std::vector<double>& b) {
  return std::make_shared<qvae::RbmModel>(nv, nh, w.data(), a.data(), b.data());
}

void expect_population(const qvae::AnnealResult& r, std::size_t population, std::size_t n) {
  ASSERT_EQ(r.samples.size(), population * n);
  for (std::uint8_t z : r.samples) EXPECT_LE(z, 1);
  EXPECT_EQ(r.energies.size(), population);
  EXPECT_FALSE(r.interrupted);
}

}  // namespace

TEST(AnnealStart, ClassicalChainsStartUniform) {
  const auto model = rbm(3, 4, std::vector<double>(12, 0.0), std::vector<double>(3, 0.0), std::vector<double>(4, 0.0));
  const auto r = qvae::anneal<qvae::RbmChains>(model, 40, options(1), nullptr);
  EXPECT_DOUBLE_EQ(r.log_z, 7 * std::log(2.0));
  EXPECT_EQ(r.log_z_std, 0.0);
  EXPECT_EQ(r.mean_kinks_per_unit, 0.0);
  expect_population(r, 40, 7);

  const std::vector<std::int64_t> edges{0, 1, 1, 2, 2, 0};
  const std::vector<double> zero(3, 0.0);
  const std::vector<std::int32_t> colors{0, 1, 2};
  const auto graph = std::make_shared<qvae::GraphModel>(3, zero.data(), 3, edges.data(), zero.data(), colors.data());
  const auto g = qvae::anneal<qvae::GraphChains>(graph, 40, options(2), nullptr);
  EXPECT_DOUBLE_EQ(g.log_z, 3 * std::log(2.0));
  expect_population(g, 40, 3);
}

TEST(AnnealStart, PathsStartFromTheTransverseFieldReference) {
  const auto classical = rbm(2, 3, std::vector<double>(6, 0.0), {0.0, 0.0}, {0.0, 0.0, 0.0});
  const std::vector<double> gamma{0.5, 1.0, 2.0, 0.0, 3.0};
  const auto model = std::make_shared<qvae::QmcRbmModel>(classical, gamma.data());
  const auto r = qvae::anneal<qvae::QmcRbmChains>(model, 60, options(3), nullptr);
  double expected = 0.0;
  for (double g : gamma) expected += std::log(2.0 * std::cosh(g));
  EXPECT_NEAR(r.log_z, expected, 1e-12);
  EXPECT_EQ(r.log_z_std, 0.0);
  EXPECT_GT(r.mean_kinks_per_unit, 0.0);
  expect_population(r, 60, 5);
}

TEST(AnnealStart, MatchesEnumerationOfASmallRbm) {
  const std::vector<double> w{0.8, -0.5, 0.3, -1.1, 0.4, 0.9}, a{0.2, -0.4}, b{0.1, 0.5, -0.3};
  const auto model = rbm(2, 3, w, a, b);
  std::vector<std::uint8_t> z(5);
  double sum = 0.0;
  for (unsigned s = 0; s < 32; ++s) {
    for (unsigned i = 0; i < 5; ++i) z[i] = (s >> i) & 1u;
    sum += std::exp(-model->energy(z.data()));
  }
  const auto r = qvae::anneal<qvae::RbmChains>(model, 400, options(4), nullptr);
  EXPECT_GT(r.log_z_std, 0.0);
  EXPECT_LT(std::abs(r.log_z - std::log(sum)), 5 * r.log_z_std);  // 5 standard errors
}

TEST(AnnealStart, ReproducibleForASeedWhateverTheThreads) {
  const std::vector<double> w{0.8, -0.5, 0.3, -1.1, 0.4, 0.9}, a{0.2, -0.4}, b{0.1, 0.5, -0.3};
  const std::vector<double> gamma{1.0, 0.5, 0.0, 2.0, 1.0};
  const auto model = std::make_shared<qvae::QmcRbmModel>(rbm(2, 3, w, a, b), gamma.data());
  const auto one = qvae::anneal<qvae::QmcRbmChains>(model, 64, options(5, 1), nullptr);
  const auto two = qvae::anneal<qvae::QmcRbmChains>(model, 64, options(5, 2), nullptr);
  EXPECT_EQ(one.log_z, two.log_z);
  EXPECT_EQ(one.samples, two.samples);
  EXPECT_EQ(one.schedule, two.schedule);
}
