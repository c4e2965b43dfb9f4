// A small persistent thread pool: parallel_for over task indices, caller participates; the
// chunked loops and the rounds of a long run built on it.
//
// Work is split by task index only; any task may run on any thread, so callers
// keep all randomness per task (per chain) to stay reproducible across thread counts.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
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

// Number of chunks of `chunk` items that cover `count` items.
inline std::size_t num_chunks(std::size_t count, std::size_t chunk) { return (count + chunk - 1) / chunk; }

// Runs fn(first, last) on the consecutive chunks [first, last) of at most `chunk` items that cover
// [0, count), spread over up to num_threads threads (0: all); a chunk's items run on one thread.
template <class Fn>
void parallel_chunks(std::size_t count, std::size_t chunk, std::size_t num_threads, const Fn& fn) {
  ThreadPool::global().parallel_for(num_chunks(count, chunk), resolve_threads(num_threads),
                                    [&](std::size_t k) { fn(k * chunk, std::min(count, (k + 1) * chunk)); });
}

// Called between rounds of a long run (on the thread that started the run); true stops it.
using PollFn = std::function<bool()>;

// Runs `total` sweeps of `count` items in chunks of `chunk` (see parallel_chunks), in rounds sized
// to ~20 ms: work(first, last, sweeps) advances items [first, last) by `sweeps`, and poll() is
// called between rounds. Returns the sweeps completed (total unless poll stopped the run).
std::size_t run_in_rounds(std::size_t total, std::size_t count, std::size_t chunk, std::size_t num_threads,
                          const PollFn& poll,
                          const std::function<void(std::size_t first, std::size_t last, std::size_t sweeps)>& work);

}  // namespace qvae
