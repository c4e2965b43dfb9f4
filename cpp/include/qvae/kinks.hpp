// Kink lists of a CT-QMC path (ctqmc.hpp): a kink is a flip of one unit's worldline at an
// imaginary time in [0, 1); a path keeps one time-sorted list per block. Merges in time order.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace qvae {

struct Kink {
  double time;
  std::int32_t unit;
};

// Grows v to hold at least n elements, with room to spare; never shrinks (reused buffers are
// filled through indices, so a resize that zero-fills them every time is avoided).
template <class Vector>
inline void ensure_size(Vector& v, std::size_t n) {
  if (v.size() < n) v.resize(n + n / 2);
}

// Lists this short are merged by ranks (merge_by_time).
constexpr std::size_t kRankMergeMax = 32;

// Merges two time-sorted kink lists (a first on ties) without data-dependent branches. Short lists
// go by ranks: an element's place is its index plus the number of the other list's elements before
// it, counted by vector compares (over b's times for a, over a's ranks for b) with no dependence
// between elements, where a merge waits on a load and a comparison per element. Longer lists fill
// the output from both ends at once: the two halves are independent chains of dependent loads,
// which halves the time of a merge bound by load latency. Cursors a[i..ia], b[j..jb] bound what is
// left; a list with nothing left loses every comparison.
__attribute__((always_inline)) inline void merge_by_time(const Kink* a, std::size_t na, const Kink* b,
                                                         std::size_t nb, Kink* out) {
  if (na == 0 || nb == 0) {
    std::copy(b, b + nb, std::copy(a, a + na, out));
    return;
  }
  if (na <= kRankMergeMax && nb <= kRankMergeMax) {
    // a[i] has rank[i] elements of b before it (b[j] < a[i]); then a[i] <= b[j] exactly when
    // rank[i] <= j, so b[j]'s count of a's before it is an integer count over the ranks.
    alignas(32) double tb[kRankMergeMax];
    alignas(32) std::int32_t rank[kRankMergeMax];
    const std::size_t pa = (na + 7) / 8 * 8, pb = (nb + 3) / 4 * 4;
    for (std::size_t j = 0; j < pb; ++j) tb[j] = j < nb ? b[j].time : std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < na; ++i) {
      std::size_t before = 0;
      for (std::size_t j = 0; j < pb; ++j) before += tb[j] < a[i].time;
      rank[i] = static_cast<std::int32_t>(before);
      out[i + before] = a[i];
    }
    for (std::size_t i = na; i < pa; ++i) rank[i] = std::numeric_limits<std::int32_t>::max();
    for (std::size_t j = 0; j < nb; ++j) {
      std::int32_t before = 0;
      for (std::size_t i = 0; i < pa; ++i) before += rank[i] <= static_cast<std::int32_t>(j);
      out[j + static_cast<std::size_t>(before)] = b[j];
    }
    return;
  }
  const std::size_t total = na + nb;
  const std::ptrdiff_t last_a = static_cast<std::ptrdiff_t>(na) - 1, last_b = static_cast<std::ptrdiff_t>(nb) - 1;
  std::ptrdiff_t i = 0, j = 0, ia = last_a, jb = last_b;
  Kink* front = out;
  Kink* back = out + total;
  // Which element goes out is a coin flip to the branch predictor, so it is picked by address
  // arithmetic: GCC turns a ?: between the two into a branch.
  auto pick = [](bool take_a, const Kink& x, const Kink& y) -> const Kink& {
    const auto ax = reinterpret_cast<std::uintptr_t>(&x), ay = reinterpret_cast<std::uintptr_t>(&y);
    return *reinterpret_cast<const Kink*>(ay ^ ((ax ^ ay) & (std::uintptr_t{0} - take_a)));
  };
  auto front_step = [&] {
    const Kink& x = a[std::min(i, last_a)];
    const Kink& y = b[std::min(j, last_b)];
    const bool take_a = (i <= ia) & ((j > jb) | (x.time <= y.time));
    *front++ = pick(take_a, x, y);
    i += take_a;
    j += !take_a;
  };
  auto back_step = [&] {
    const Kink& x = a[std::max<std::ptrdiff_t>(ia, 0)];
    const Kink& y = b[std::max<std::ptrdiff_t>(jb, 0)];
    const bool take_a = (ia >= i) & ((jb < j) | (x.time > y.time));
    *--back = pick(take_a, x, y);
    ia -= take_a;
    jb -= !take_a;
  };
  for (std::size_t k = 0; k < total / 2; ++k) {
    front_step();
    back_step();
  }
  if (total % 2) front_step();
}

// The kinks of every list except lists[skip] (skip = -1: all lists) in one time order, earlier
// lists first on ties, into out[0, count); returns count. tmp is scratch; both buffers only grow.
std::size_t merge_blocks(const std::vector<std::vector<Kink>>& lists, int skip, std::vector<Kink>& out,
                         std::vector<Kink>& tmp);

}  // namespace qvae
