// parallel_chunks and run_in_rounds: every item once per round, in the chunks asked for.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "qvae/thread_pool.hpp"

TEST(ThreadPool, NumChunksRoundsUp) {
  EXPECT_EQ(qvae::num_chunks(0, 16), 0u);
  EXPECT_EQ(qvae::num_chunks(1, 16), 1u);
  EXPECT_EQ(qvae::num_chunks(16, 16), 1u);
  EXPECT_EQ(qvae::num_chunks(17, 16), 2u);
}

TEST(ThreadPool, ParallelChunksCoverEveryItemOnceInWholeChunks) {
  for (std::size_t threads : {1u, 2u, 0u})
    for (std::size_t count : {0u, 1u, 15u, 16u, 17u, 100u}) {
      std::vector<int> seen(count, 0);
      std::mutex mutex;
      std::vector<std::pair<std::size_t, std::size_t>> ranges;
      qvae::parallel_chunks(count, 16, threads, [&](std::size_t first, std::size_t last) {
        for (std::size_t i = first; i < last; ++i) ++seen[i];
        std::lock_guard<std::mutex> lock(mutex);
        ranges.emplace_back(first, last);
      });
      EXPECT_EQ(seen, std::vector<int>(count, 1));
      EXPECT_EQ(ranges.size(), qvae::num_chunks(count, 16));
      for (const auto& [first, last] : ranges) {
        EXPECT_EQ(first % 16, 0u);
        EXPECT_EQ(last, std::min(count, first + 16));
      }
    }
}

TEST(ThreadPool, RunInRoundsAdvancesEveryItemByTheTotal) {
  std::vector<std::size_t> sweeps(37, 0);
  const std::size_t done = qvae::run_in_rounds(1000, sweeps.size(), 4, 0, nullptr,
                                               [&](std::size_t first, std::size_t last, std::size_t k) {
                                                 for (std::size_t i = first; i < last; ++i) sweeps[i] += k;
                                               });
  EXPECT_EQ(done, 1000u);
  EXPECT_EQ(sweeps, std::vector<std::size_t>(37, 1000));
}

TEST(ThreadPool, RunInRoundsStopsBetweenRoundsWhenPolledTrue) {
  std::vector<std::size_t> sweeps(9, 0);
  const std::thread::id caller = std::this_thread::get_id();
  int polls = 0;
  const std::size_t done = qvae::run_in_rounds(
      1000000, sweeps.size(), 2, 2,
      [&] {
        EXPECT_EQ(std::this_thread::get_id(), caller);  // polled on the calling thread only
        return ++polls == 3;
      },
      [&](std::size_t first, std::size_t last, std::size_t k) {
        for (std::size_t i = first; i < last; ++i) sweeps[i] += k;
      });
  EXPECT_EQ(polls, 3);
  EXPECT_LT(done, 1000000u);
  EXPECT_EQ(sweeps, std::vector<std::size_t>(9, done));  // every item at the same count
}
