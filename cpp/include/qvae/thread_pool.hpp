// A small persistent thread pool: parallel_for over task indices, caller participates.
//
// Work is split by task index only; any task may run on any thread, so callers
// keep all randomness per task (per chain) to stay reproducible across thread counts.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qvae {

class ThreadPool {
 public:
  explicit ThreadPool(std::size_t num_workers);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Runs fn(i) for i in [0, num_tasks) on up to num_threads threads (caller included).
  // Rethrows the first exception raised by a task. Calls from several threads serialise.
  void parallel_for(std::size_t num_tasks, std::size_t num_threads,
                    const std::function<void(std::size_t)>& fn);

  std::size_t max_threads() const { return workers_.size() + 1; }

  // The process-wide pool sized to the hardware.
  static ThreadPool& global();

 private:
  void worker_loop(std::size_t id);
  void drain();

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one parallel_for at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(std::size_t)>* job_ = nullptr;
  std::size_t num_tasks_ = 0, next_task_ = 0, wanted_ = 0, busy_ = 0;
  std::uint64_t generation_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
};

// Resolves a requested thread count: 0 means all hardware threads.
std::size_t resolve_threads(std::size_t requested);

}  // namespace qvae
