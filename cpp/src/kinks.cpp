#include "qvae/kinks.hpp"

namespace qvae {

std::size_t merge_blocks(const std::vector<std::vector<Kink>>& lists, int skip, std::vector<Kink>& out,
                         std::vector<Kink>& tmp) {
  std::size_t count = 0;
  for (std::size_t b = 0; b < lists.size(); ++b) {
    if (static_cast<int>(b) == skip) continue;
    const auto& list = lists[b];
    ensure_size(tmp, count + list.size());
    merge_by_time(out.data(), count, list.data(), list.size(), tmp.data());
    count += list.size();
    out.swap(tmp);
  }
  return count;
}

}  // namespace qvae
