// Walker's alias table: the distribution it encodes is rates / sum(rates), units of rate 0 are
// never picked. Picking index j uniformly and then j (below threshold[j]) or alias[j] gives
// P(i) = (threshold[i] + sum_{j: alias[j] = i} (1 - threshold[j])) / n.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "qvae/ctqmc.hpp"

namespace {

std::vector<double> encoded(const qvae::AliasTable& t) {
  const std::size_t n = t.threshold.size();
  std::vector<double> p(n, 0.0);
  for (std::size_t j = 0; j < n; ++j) {
    p[j] += t.threshold[j] / static_cast<double>(n);
    p[t.alias[j]] += (1.0 - t.threshold[j]) / static_cast<double>(n);
  }
  return p;
}

void expect_encodes(const std::vector<double>& rates) {
  const qvae::AliasTable table(rates);
  double total = 0.0;
  for (double r : rates) total += r;
  EXPECT_DOUBLE_EQ(table.total, total);
  ASSERT_EQ(table.threshold.size(), rates.size());
  const std::vector<double> p = encoded(table);
  for (std::size_t i = 0; i < rates.size(); ++i) {
    EXPECT_GE(table.threshold[i], 0.0f);
    EXPECT_LE(table.threshold[i], 1.0f);
    ASSERT_GE(table.alias[i], 0);
    ASSERT_LT(table.alias[i], static_cast<std::int32_t>(rates.size()));
    // Thresholds are floats: the probabilities hold to float rounding.
    EXPECT_NEAR(p[i], rates[i] / total, 1e-6) << "unit " << i;
    if (rates[i] == 0.0) {
      EXPECT_EQ(p[i], 0.0) << "unit " << i << " has no rate but can be picked";
    }
  }
}

}  // namespace

TEST(AliasTable, EncodesTheRates) {
  expect_encodes({1.0});
  expect_encodes({1.0, 1.0, 1.0, 1.0});
  expect_encodes({1.0, 2.0, 3.0, 4.0});
  expect_encodes({500.0, 1e-3, 0.5, 7.0, 7.0, 0.25, 3.0});
}

TEST(AliasTable, UnitsWithoutAFieldAreNeverPicked) {
  expect_encodes({0.0, 2.0, 0.0, 1.0});
  expect_encodes({0.0, 0.0, 0.0, 5.0});
  expect_encodes({3.0, 0.0});
  const qvae::AliasTable table({0.0, 0.0, 0.0, 5.0});
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(table.threshold[i], 0.0f);
    EXPECT_EQ(table.alias[i], 3);  // the unit of largest rate
  }
}

TEST(AliasTable, AllZeroRatesHaveZeroTotal) {
  const qvae::AliasTable table({0.0, 0.0, 0.0});
  EXPECT_EQ(table.total, 0.0);  // draw_cuts then draws no cut at all
}
