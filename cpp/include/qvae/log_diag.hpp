// Clamped-slice estimates of log <z|e^{-H}|z> for a quantum Boltzmann machine (docs/conventions.md,
// "Quantum annealing on paths"; Eq. E4 of paper 000).
//
// For each state z, population annealing on paths whose tau = 0 slice is clamped to z: they start
// from the transverse-field reference with z(0) = z (log Z_0 = sum_l log cosh Gamma_l), keep that
// slice through every update, and anneal the diagonal part in from beta = 0 to 1.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "qvae/anneal.hpp"

namespace qvae {

// log <z|e^{-H}|z> and its standard error for each of `batch` states (batch, n) into value and
// error (batch,). One single-threaded annealer of `population` paths per state, the states spread
// over options.num_threads threads; state b's annealer draws from the streams of
// subseed(options.seed, b), so the values do not depend on the thread count. poll is called on the
// calling thread only; once it returns true no further state starts, the running ones stop, and
// log_diag returns false (value and error are then incomplete). Model: QmcRbmModel or QmcGraphModel.
template <class Model>
bool log_diag(std::shared_ptr<const Model> model, const std::uint8_t* states, std::size_t batch,
              std::size_t population, const AnnealOptions& options, const PollFn& poll, double* value,
              double* error);

}  // namespace qvae
