// log_diag: clamped-slice annealing of log <z|e^{-H}|z>. Gamma = 0 gives -E(z) exactly; with no
// couplings every unit is one qubit, -H_l = [[0, Gamma], [Gamma, b]] in the basis |0>, |1>, and
// <z|e^{-H_l}|z> = e^{b/2} (cosh r -+ (b/2) sinh(r) / r), r = sqrt(b^2/4 + Gamma^2) (- for z = 0).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "qvae/ctqmc.hpp"
#include "qvae/log_diag.hpp"

namespace {

qvae::AnnealOptions options(std::uint64_t seed, std::size_t threads) {
  qvae::AnnealOptions o;
  o.seed = seed;
  o.num_threads = threads;  // 10 sub-populations, the default
  return o;
}

double one_qubit_log_diag(double bias, double gamma, int z) {
  const double r = std::sqrt(bias * bias / 4 + gamma * gamma);
  const double ratio = r > 0 ? std::sinh(r) / r : 1.0;
  return bias / 2 + std::log(std::cosh(r) + (z ? 1 : -1) * bias / 2 * ratio);
}

// Every state of n units, one after another.
std::vector<std::uint8_t> all_states(std::size_t n) {
  std::vector<std::uint8_t> s;
  for (unsigned k = 0; k < (1u << n); ++k)
    for (std::size_t i = 0; i < n; ++i) s.push_back((k >> i) & 1u);
  return s;
}

struct Uncoupled {
  std::vector<double> bias{0.7, -1.2, 0.3, 2.0}, gamma{1.0, 0.5, 2.5, 0.0};
  std::shared_ptr<const qvae::QmcRbmModel> rbm() const {  // 2 visible, 2 hidden, W = 0
    const std::vector<double> w(4, 0.0);
    auto classical = std::make_shared<qvae::RbmModel>(2, 2, w.data(), bias.data(), bias.data() + 2);
    return std::make_shared<qvae::QmcRbmModel>(classical, gamma.data());
  }
  std::shared_ptr<const qvae::QmcGraphModel> triangle_and_one() const {  // 3 colour classes
    const std::vector<std::int64_t> edges{0, 1, 1, 2, 2, 0, 2, 3};
    const std::vector<double> w(4, 0.0);
    const std::vector<std::int32_t> colors{0, 1, 2, 0};
    auto classical = std::make_shared<qvae::GraphModel>(4, bias.data(), 4, edges.data(), w.data(), colors.data());
    return std::make_shared<qvae::QmcGraphModel>(classical, gamma.data());
  }
  double exact(const std::uint8_t* z) const {
    double total = 0.0;
    for (std::size_t l = 0; l < bias.size(); ++l) total += one_qubit_log_diag(bias[l], gamma[l], z[l]);
    return total;
  }
};

// Every estimate within 0.05 nats, and within 5 standard errors pooled over the batch (the RMS of
// the per-state SEs: each one, from 10 sub-populations, is too noisy alone for a 5-sigma check).
template <class Model>
void expect_closed_form(std::shared_ptr<const Model> model, const Uncoupled& u) {
  const auto states = all_states(4);
  const std::size_t batch = states.size() / 4;
  std::vector<double> value(batch), error(batch);
  ASSERT_TRUE(qvae::log_diag(model, states.data(), batch, 200, options(1, 0), nullptr, value.data(), error.data()));
  double mean_square = 0.0;
  for (double e : error) mean_square += e * e / static_cast<double>(batch);
  const double pooled = std::sqrt(mean_square);
  EXPECT_GT(pooled, 0.0);
  for (std::size_t b = 0; b < batch; ++b) {
    const double deviation = std::abs(value[b] - u.exact(&states[4 * b]));
    EXPECT_LT(deviation, 0.05) << "state " << b;
    EXPECT_LT(deviation, 5 * pooled) << "state " << b;
  }
}

}  // namespace

TEST(LogDiag, WithoutTransverseFieldIsMinusTheEnergy) {
  const std::vector<double> w{0.8, -0.5, 0.3, -1.1, 0.4, 0.9}, a{0.2, -0.4}, b{0.1, 0.5, -0.3};
  const auto classical = std::make_shared<qvae::RbmModel>(2, 3, w.data(), a.data(), b.data());
  const std::vector<double> gamma(5, 0.0);
  const auto model = std::make_shared<const qvae::QmcRbmModel>(classical, gamma.data());
  const auto states = all_states(5);
  std::vector<double> value(32), error(32);
  ASSERT_TRUE(qvae::log_diag(model, states.data(), 32, 20, options(2, 0), nullptr, value.data(), error.data()));
  for (std::size_t k = 0; k < 32; ++k) {
    EXPECT_NEAR(value[k], -classical->energy(&states[5 * k]), 1e-12);
    EXPECT_EQ(error[k], 0.0);
  }
}

TEST(LogDiag, UncoupledRbmUnitsAreSingleQubits) {
  Uncoupled u;
  expect_closed_form(u.rbm(), u);
}

TEST(LogDiag, UncoupledGraphUnitsAreSingleQubits) {
  Uncoupled u;
  expect_closed_form(u.triangle_and_one(), u);
}

TEST(LogDiag, IndependentOfTheThreadCount) {
  const std::vector<double> w{0.8, -0.5, 0.3, -1.1, 0.4, 0.9}, a{0.2, -0.4}, b{0.1, 0.5, -0.3};
  const auto classical = std::make_shared<qvae::RbmModel>(2, 3, w.data(), a.data(), b.data());
  const std::vector<double> gamma{1.0, 0.5, 0.0, 2.0, 1.0};
  const auto model = std::make_shared<const qvae::QmcRbmModel>(classical, gamma.data());
  const auto states = all_states(5);
  std::vector<double> v1(32), e1(32), v2(32), e2(32);
  ASSERT_TRUE(qvae::log_diag(model, states.data(), 32, 30, options(3, 1), nullptr, v1.data(), e1.data()));
  ASSERT_TRUE(qvae::log_diag(model, states.data(), 32, 30, options(3, 2), nullptr, v2.data(), e2.data()));
  EXPECT_EQ(v1, v2);
  EXPECT_EQ(e1, e2);
  // Nor on the rest of the batch: state b's annealer draws from the streams of subseed(seed, b).
  std::vector<double> v3(4), e3(4);
  ASSERT_TRUE(qvae::log_diag(model, states.data(), 4, 30, options(3, 2), nullptr, v3.data(), e3.data()));
  EXPECT_EQ(std::vector<double>(v1.begin(), v1.begin() + 4), v3);
  const std::size_t k = 3;
  qvae::AnnealOptions own = options(qvae::subseed(3, k), 1);
  qvae::QmcRbmChains chains(model, 30, own.seed, nullptr);
  chains.sample_reference(&states[5 * k]);
  chains.set_clamped(true);
  EXPECT_EQ(qvae::population_anneal(chains, model->reference_log_z(true), own, nullptr).log_z, v1[k]);
}

TEST(LogDiag, TheClampedSliceStaysAtTheState) {
  const std::vector<double> w{0.8, -0.5, 0.3, -1.1, 0.4, 0.9}, a{0.2, -0.4}, b{0.1, 0.5, -0.3};
  const auto classical = std::make_shared<qvae::RbmModel>(2, 3, w.data(), a.data(), b.data());
  const std::vector<double> gamma{1.0, 0.5, 3.0, 2.0, 1.0};
  const auto model = std::make_shared<const qvae::QmcRbmModel>(classical, gamma.data());
  const std::vector<std::uint8_t> clamp{1, 0, 1, 1, 0};
  for (bool clamped : {true, false}) {
    qvae::QmcRbmChains chains(model, 50, 4, nullptr);
    chains.sample_reference(clamp.data());
    chains.set_clamped(clamped);
    chains.run(20, 1.0, 1, nullptr);
    std::vector<std::uint8_t> state(50 * 5);
    chains.get_state(state.data());
    std::size_t same = 0;
    for (std::size_t c = 0; c < 50; ++c) same += std::equal(clamp.begin(), clamp.end(), &state[5 * c]);
    if (clamped) {
      EXPECT_EQ(same, 50u);
    } else {
      EXPECT_LT(same, 50u);  // free paths move (P(all 50 stay) is negligible)
    }
  }
}

TEST(LogDiag, StopsWhenPolledTrue) {
  Uncoupled u;
  const auto states = all_states(4);
  std::vector<double> value(16), error(16);
  int polls = 0;
  EXPECT_FALSE(qvae::log_diag(u.rbm(), states.data(), 16, 50, options(5, 2), [&] { return ++polls > 0; },
                              value.data(), error.data()));
  EXPECT_GE(polls, 1);
}
