#include "qvae/log_diag.hpp"

#include <atomic>
#include <thread>

#include "qvae/ctqmc.hpp"
#include "qvae/rng.hpp"
#include "qvae/thread_pool.hpp"

namespace qvae {

template <class Model>
bool log_diag(std::shared_ptr<const Model> model, const std::uint8_t* states, std::size_t batch,
              std::size_t population, const AnnealOptions& options, const PollFn& poll, double* value,
              double* error) {
  const std::size_t n = model->num_units();
  const double log_z0 = model->reference_log_z(true);
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> finished{0};
  const std::thread::id caller = std::this_thread::get_id();
  auto poll_caller = [&] {  // only the caller polls; the flag stops the other threads' annealers
    if (!stop && poll && std::this_thread::get_id() == caller && poll()) stop = true;
    return stop.load();
  };
  ThreadPool::global().parallel_for(batch, resolve_threads(options.num_threads), [&](std::size_t b) {
    if (stop) return;
    AnnealOptions one = options;
    one.seed = subseed(options.seed, b);
    one.num_threads = 1;
    one.progress = nullptr;
    QmcChains<Model> chains(model, population, one.seed, nullptr);
    chains.sample_reference(states + b * n);
    chains.set_clamped(true);
    const AnnealResult r = population_anneal(chains, log_z0, one, poll_caller);
    value[b] = r.log_z;
    error[b] = r.log_z_std;
    if (options.progress && !r.interrupted) {  // a running maximum: states finish on several threads
      const double count = static_cast<double>(++finished);
      double seen = options.progress->load(std::memory_order_relaxed);
      while (seen < count && !options.progress->compare_exchange_weak(seen, count, std::memory_order_relaxed)) {
      }
    }
  });
  return !stop;
}

template bool log_diag<QmcRbmModel>(std::shared_ptr<const QmcRbmModel>, const std::uint8_t*, std::size_t,
                                    std::size_t, const AnnealOptions&, const PollFn&, double*, double*);
template bool log_diag<QmcGraphModel>(std::shared_ptr<const QmcGraphModel>, const std::uint8_t*, std::size_t,
                                      std::size_t, const AnnealOptions&, const PollFn&, double*, double*);

}  // namespace qvae
