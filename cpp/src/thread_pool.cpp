#include "qvae/thread_pool.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace qvae {

ThreadPool::ThreadPool(std::size_t num_workers) {
  workers_.reserve(num_workers);
  for (std::size_t i = 0; i < num_workers; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool(std::max<std::size_t>(1, std::thread::hardware_concurrency()) - 1);
  return pool;
}

std::size_t resolve_threads(std::size_t requested) {
  std::size_t hw = ThreadPool::global().max_threads();
  return requested == 0 ? hw : std::min(requested, hw);
}

// Takes tasks until none is left; records the first exception and skips the rest.
void ThreadPool::drain() {
  for (;;) {
    std::size_t i;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (next_task_ >= num_tasks_) return;
      i = next_task_++;
    }
    try {
      (*job_)(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      next_task_ = num_tasks_;
    }
  }
}

void ThreadPool::worker_loop(std::size_t id) {
  std::uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      if (id >= wanted_) continue;
      ++busy_;
    }
    drain();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --busy_;
    }
    done_.notify_all();
  }
}

void ThreadPool::parallel_for(std::size_t num_tasks, std::size_t num_threads,
                              const std::function<void(std::size_t)>& fn) {
  if (num_tasks == 0) return;
  if (num_threads == 1 || num_tasks == 1) {  // inline: also safe inside another pool task
    for (std::size_t i = 0; i < num_tasks; ++i) fn(i);
    return;
  }
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  std::size_t helpers = std::min({num_threads == 0 ? max_threads() : num_threads, max_threads(),
                                  num_tasks}) - 1;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    num_tasks_ = num_tasks;
    next_task_ = 0;
    wanted_ = helpers;
    error_ = nullptr;
    ++generation_;
  }
  if (helpers > 0) wake_.notify_all();
  drain();
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return busy_ == 0; });
    job_ = nullptr;
  }
  if (error_) std::rethrow_exception(error_);
}

std::size_t run_in_rounds(std::size_t total, std::size_t count, std::size_t chunk, std::size_t num_threads,
                          const PollFn& poll,
                          const std::function<void(std::size_t, std::size_t, std::size_t)>& work) {
  using clock = std::chrono::steady_clock;
  constexpr double kRoundSeconds = 0.02;
  std::size_t done = 0, round = 1;
  while (done < total) {
    std::size_t k = std::min(round, total - done);
    auto t0 = clock::now();
    parallel_chunks(count, chunk, num_threads, [&](std::size_t first, std::size_t last) { work(first, last, k); });
    double dt = std::chrono::duration<double>(clock::now() - t0).count();
    done += k;
    if (done < total && poll && poll()) break;
    // Aim rounds at ~20 ms so an interrupt is seen quickly without costing throughput.
    double growth = dt > 0 ? kRoundSeconds / dt : 4.0;
    round = std::max<std::size_t>(1, static_cast<std::size_t>(k * std::min(4.0, growth)));
  }
  return done;
}

}  // namespace qvae
