// Kink-list merges: merge_by_time is std::merge (the first list first on ties); merge_blocks is a
// stable sort by time of the lists' concatenation, without the skipped list.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "qvae/kinks.hpp"

using qvae::Kink;

namespace {

bool same(const Kink& a, const Kink& b) { return a.time == b.time && a.unit == b.unit; }

// A sorted list of n kinks; times on a coarse grid so that ties within and across lists occur.
std::vector<Kink> sorted_kinks(std::size_t n, std::int32_t first_unit, std::mt19937& gen) {
  std::uniform_int_distribution<int> slot(0, 9);
  std::vector<Kink> list(n);
  for (std::size_t k = 0; k < n; ++k)
    list[k] = {slot(gen) / 10.0, first_unit + static_cast<std::int32_t>(k)};
  std::stable_sort(list.begin(), list.end(), [](const Kink& a, const Kink& b) { return a.time < b.time; });
  return list;
}

bool by_time(const Kink& a, const Kink& b) { return a.time < b.time; }

}  // namespace

TEST(Kinks, MergeByTimeIsAStableMerge) {
  std::mt19937 gen(1);
  // Short lists merge by ranks, longer ones (beyond kRankMergeMax) from both ends: both, and mixed.
  std::vector<std::size_t> sizes;
  for (std::size_t n = 0; n < 12; ++n) sizes.push_back(n);
  for (std::size_t n : {qvae::kRankMergeMax - 1, qvae::kRankMergeMax, qvae::kRankMergeMax + 1, std::size_t{70}})
    sizes.push_back(n);
  for (std::size_t na : sizes)
    for (std::size_t nb : sizes)
      for (int trial = 0; trial < 5; ++trial) {
        const auto a = sorted_kinks(na, 0, gen), b = sorted_kinks(nb, 100, gen);
        std::vector<Kink> expected(na + nb), got(na + nb, Kink{-1.0, -1});
        std::merge(a.begin(), a.end(), b.begin(), b.end(), expected.begin(), by_time);
        qvae::merge_by_time(a.data(), na, b.data(), nb, got.data());
        ASSERT_TRUE(std::equal(expected.begin(), expected.end(), got.begin(), same)) << "na " << na << " nb " << nb;
      }
}

TEST(Kinks, MergeByTimeOfDistinctTimes) {
  const std::vector<Kink> a{{0.1, 0}, {0.4, 1}, {0.9, 2}}, b{{0.2, 3}, {0.3, 4}, {0.95, 5}, {0.99, 6}};
  std::vector<Kink> out(7);
  qvae::merge_by_time(a.data(), a.size(), b.data(), b.size(), out.data());
  const std::vector<std::int32_t> units{0, 3, 4, 1, 2, 5, 6};
  for (std::size_t k = 0; k < out.size(); ++k) EXPECT_EQ(out[k].unit, units[k]);
}

TEST(Kinks, MergeBlocksMergesAllButTheSkippedList) {
  std::mt19937 gen(2);
  for (int trial = 0; trial < 50; ++trial) {
    const std::size_t num_lists = 1 + trial % 5;
    std::vector<std::vector<Kink>> lists;
    for (std::size_t b = 0; b < num_lists; ++b)
      lists.push_back(sorted_kinks(gen() % 9, static_cast<std::int32_t>(100 * b), gen));
    // Buffers as a sweep leaves them: holding stale kinks, of any size.
    std::vector<Kink> out(gen() % 20, Kink{5.0, -7}), tmp(gen() % 20, Kink{6.0, -8});
    for (int skip = -1; skip < static_cast<int>(num_lists); ++skip) {
      std::vector<Kink> expected;
      for (std::size_t b = 0; b < num_lists; ++b)
        if (static_cast<int>(b) != skip) expected.insert(expected.end(), lists[b].begin(), lists[b].end());
      std::stable_sort(expected.begin(), expected.end(), by_time);
      const std::size_t count = qvae::merge_blocks(lists, skip, out, tmp);
      ASSERT_EQ(count, expected.size());
      ASSERT_TRUE(std::equal(expected.begin(), expected.end(), out.begin(), same)) << "skip " << skip;
    }
  }
}
