#include "qvae/ctqmc.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>

#include "qvae/math.hpp"
#include "qvae/thread_pool.hpp"

namespace qvae {

// ---------------------------------------------------------------- models

AliasTable::AliasTable(const std::vector<double>& rates)
    : threshold(rates.size(), 1.0f), alias(rates.size()) {
  const std::size_t n = rates.size();
  for (double r : rates) total += r;
  for (std::size_t i = 0; i < n; ++i) alias[i] = static_cast<std::int32_t>(i);
  if (total <= 0.0) return;
  std::vector<double> scaled(n);
  std::vector<std::int32_t> small, large;
  for (std::size_t i = 0; i < n; ++i) {
    scaled[i] = rates[i] * static_cast<double>(n) / total;
    (scaled[i] < 1.0 ? small : large).push_back(static_cast<std::int32_t>(i));
  }
  while (!small.empty() && !large.empty()) {
    const std::int32_t s = small.back(), l = large.back();
    small.pop_back();
    threshold[s] = static_cast<float>(scaled[s]);
    alias[s] = l;
    scaled[l] -= 1.0 - scaled[s];
    if (scaled[l] < 1.0) {
      large.pop_back();
      small.push_back(l);
    }
  }
  for (std::int32_t i : small) threshold[i] = 1.0f;  // rounding leftovers
  // A unit without a field is never picked: it always defers to the unit of largest rate.
  const auto top = static_cast<std::int32_t>(std::max_element(rates.begin(), rates.end()) - rates.begin());
  for (std::size_t i = 0; i < n; ++i)
    if (rates[i] <= 0.0) {
      threshold[i] = 0.0f;
      if (rates[alias[i]] <= 0.0) alias[i] = top;
    }
}

QmcBlocks::QmcBlocks(const std::vector<std::int32_t>& block, const std::vector<double>& gamma)
    : block_of(block), local(block.size()) {
  for (std::size_t u = 0; u < gamma.size(); ++u)
    if (!(gamma[u] >= 0.0 && gamma[u] <= kMaxGamma)) {
      char value[32];
      std::snprintf(value, sizeof value, "%.17g", gamma[u]);
      throw std::invalid_argument("gamma: must be in [0, " + std::to_string(static_cast<int>(kMaxGamma)) +
                                  "] (a worldline holds ~Gamma kinks), got " + value + " on unit " +
                                  std::to_string(u));
    }
  const std::int32_t num = block.empty() ? 0 : *std::max_element(block.begin(), block.end()) + 1;
  members.resize(num);
  for (std::size_t u = 0; u < block.size(); ++u) {
    local[u] = static_cast<std::int32_t>(members[block[u]].size());
    members[block[u]].push_back(static_cast<std::int32_t>(u));
  }
  for (const auto& m : members) {
    std::vector<double> rates;
    for (std::int32_t u : m) rates.push_back(gamma[u]);
    cuts.emplace_back(rates);
  }
}

namespace {

std::vector<std::int32_t> rbm_blocks(std::size_t nv, std::size_t nh) {
  std::vector<std::int32_t> b(nv + nh, 0);
  std::fill(b.begin() + nv, b.end(), 1);
  return b;
}

double reference_log_z(const std::vector<double>& gamma, bool clamped) {
  double total = 0.0;
  for (double g : gamma)  // log cosh g without overflow, plus log 2 per free tau = 0 spin
    total += std::abs(g) + std::log1p(std::exp(-2.0 * std::abs(g))) - (clamped ? std::log(2.0) : 0.0);
  return total;
}

}  // namespace

QmcRbmModel::QmcRbmModel(std::shared_ptr<const RbmModel> model, const double* g)
    : classical(std::move(model)), gamma(g, g + classical->num_units()),
      blocks(rbm_blocks(classical->nv, classical->nh), gamma), bias(classical->a64) {
  const RbmModel& m = *classical;
  bias.insert(bias.end(), m.b64.begin(), m.b64.end());
  for (int b = 0; b < 2; ++b) {  // block 0 (visible) sees hidden rows, block 1 sees visible rows
    const std::size_t n = b ? m.nh : m.nv, n_src = b ? m.nv : m.nh;
    Coupling& c = into[b];
    c.ld = pad_to(n, kVec);
    c.src_offset = b ? 0 : m.nv;
    c.n_src = n_src;
    c.rows.assign(n_src * c.ld, 0.0f);
    c.bias = b ? m.b.data() : m.a.data();
    c.table = b ? m.field_to_h.data() : m.field_to_v.data();
    c.padded = pad_to(n, kRbmTile);
    for (std::size_t s = 0; s < n_src; ++s)
      for (std::size_t l = 0; l < n; ++l)
        c.rows[s * c.ld + l] = static_cast<float>(b ? m.w64[s * m.nh + l] : m.wt64[s * m.nv + l]);
  }
}

double QmcRbmModel::local_field(std::size_t u, const std::uint8_t* z) const {
  const RbmModel& m = *classical;
  // A visible unit's row of W, or a hidden unit's row of W^T, over the other layer.
  const bool visible = u < m.nv;
  const std::size_t n_src = visible ? m.nh : m.nv;
  const double* row = visible ? &m.w64[u * m.nh] : &m.wt64[(u - m.nv) * m.nv];
  const std::uint8_t* src = visible ? z + m.nv : z;
  double f = visible ? m.a64[u] : m.b64[u - m.nv];
  for (std::size_t k = 0; k < n_src; ++k) f += src[k] ? row[k] : 0.0;
  return f;
}

double QmcRbmModel::reference_log_z(bool clamped) const { return qvae::reference_log_z(gamma, clamped); }

QmcGraphModel::QmcGraphModel(std::shared_ptr<const GraphModel> model, const double* g)
    : classical(std::move(model)), gamma(g, g + classical->num_units()),
      blocks(classical->color, gamma), into(blocks.num_blocks()) {
  const GraphModel& m = *classical;
  for (std::size_t b = 0; b < into.size(); ++b) {
    Neighbours& nb = into[b];
    nb.ptr.assign(1, 0);
    for (std::size_t u = 0; u < m.n; ++u) {
      for (auto e = m.row_ptr[u]; e < m.row_ptr[u + 1]; ++e)
        if (blocks.block_of[m.nbr[e]] == static_cast<std::int32_t>(b))
          nb.entries.push_back({blocks.local[m.nbr[e]], m.nbr_w[e]});
      nb.ptr.push_back(static_cast<std::int64_t>(nb.entries.size()));
    }
  }
}

double QmcGraphModel::local_field(std::size_t u, const std::uint8_t* z) const {
  const GraphModel& m = *classical;
  double f = m.bias64[u];
  for (auto e = m.row_ptr[u]; e < m.row_ptr[u + 1]; ++e) f += z[m.nbr[e]] ? m.nbr_w64[e] : 0.0;
  return f;
}

double QmcGraphModel::reference_log_z(bool clamped) const { return qvae::reference_log_z(gamma, clamped); }

std::size_t QmcPath::num_kinks() const {
  std::size_t total = 0;
  for (const auto& list : kinks) total += list.size();
  return total;
}

// ---------------------------------------------------------------- the block walk

// Per-task buffers, reused across sweeps: sized up front, filled through indices.
struct QmcScratch {
  AlignedFloats field, offset, seg_start, area, uniforms, value;
  struct Line {  // sparse fields: a unit's integral offset + t slope
    float offset, slope;
  };
  std::vector<Line> lines;
  std::vector<std::uint8_t> z;     // current values of all units during a walk
  std::vector<std::int32_t> slot;
  struct Boundary {  // slots of the segments before and after boundary k (its time and unit: edges[k])
    std::int32_t before, after;
  };
  std::vector<Boundary> bounds;
  std::vector<Kink> cuts, others, fresh, edges;
};

namespace {

// sum_{k < n} term(k) in double, in four partial sums so that the adds do not wait on each other.
template <class Term>
__attribute__((always_inline)) inline double sum4(std::size_t n, Term term) {
  double part[4] = {0.0, 0.0, 0.0, 0.0};
  std::size_t k = 0;
  for (; k + 4 <= n; k += 4)
    for (int r = 0; r < 4; ++r) part[r] += term(k + r);
  for (; k < n; ++k) part[0] += term(k);
  return (part[0] + part[1]) + (part[2] + part[3]);
}

// New cuts of a block: a Poisson process of rate sum_l Gamma_l in time order (exponential
// spacings from a vectorised log, 16 at a time), each given to a member by the alias table.
__attribute__((always_inline)) inline std::size_t draw_cuts(const AliasTable& table, const std::vector<std::int32_t>& members,
                             LaneRng& rng, std::vector<Kink>& cuts) {
  if (table.total <= 0.0) return 0;
  constexpr std::size_t B = LaneRng::kLanes;
  alignas(64) float gap[B], pick[B];
  const float inv_rate = static_cast<float>(1.0 / table.total);
  const std::size_t n = members.size();
  std::size_t count = 0;
  double t = 0.0;
  for (;;) {
    rng.next_uniform(gap);
    rng.next_uniform(pick);
    for (std::size_t k = 0; k < B; k += kVec) vstore(gap + k, -inv_rate * vlog(vload(gap + k)));
    ensure_size(cuts, count + B);
    for (std::size_t k = 0; k < B; ++k) {
      t += gap[k];
      if (t >= 1.0) return count;
      const float x = pick[k] * static_cast<float>(n);
      const std::size_t j = std::min(static_cast<std::size_t>(x), n - 1);
      const std::int32_t l = x - static_cast<float>(j) < table.threshold[j] ? static_cast<std::int32_t>(j)
                                                                             : table.alias[j];
      cuts[count++] = {t, members[l]};
    }
  }
}

// Fields of a block's units along imaginary time, for couplings given as dense rows (RBM).
// Each unit's integral int_0^t field_l is a line, F_l(t) = offset_l + t field_l: a flip of a
// unit of the other layer by sign * row at time t keeps F continuous with offset -= t sign row,
// field += sign row (two independent vector FMAs).
struct DenseFields {
  const QmcRbmModel::Coupling& c;
  QmcScratch& s;

  // Fields at tau = 0 from the Gibbs tables: one row of sums per nibble of the other layer.
  void start() {
    s.field.assign(c.bias, c.bias + c.padded);
    s.offset.assign(c.ld, 0.0f);
    const std::uint8_t* src = &s.z[c.src_offset];
    const std::size_t nq = RbmModel::num_nibbles(c.n_src), tiles = c.padded / kRbmTile;
    for (std::size_t q = 0; 4 * q < c.n_src; ++q) {
      unsigned p = 0;
      for (std::size_t k = 0; k < 4 && 4 * q + k < c.n_src; ++k) p |= static_cast<unsigned>(src[4 * q + k]) << k;
      for (std::size_t t = 0; t < tiles; ++t) {
        const float* row = RbmModel::table_row(c.table, nq, t, q, p);
        float* field = &s.field[t * kRbmTile];
        for (std::size_t l = 0; l < kRbmTile; l += kVec) vstore(field + l, vload(field + l) + vload(row + l));
      }
    }
  }
  void flip(std::int32_t u, double t, float sign) {
    const float shift = static_cast<float>(t) * sign;
    const float* row = &c.rows[(static_cast<std::size_t>(u) - c.src_offset) * c.ld];
    float* field = s.field.data();
    float* offset = s.offset.data();
    for (std::size_t l = 0; l < c.ld; l += kVec) {
      const vfloat r = vload(row + l);
      vstore(offset + l, vload(offset + l) - shift * r);
      vstore(field + l, vload(field + l) + sign * r);
    }
  }
  float at(std::int32_t l, double t) const { return s.offset[l] + static_cast<float>(t) * s.field[l]; }
  float at_end(std::int32_t l) const { return s.offset[l] + s.field[l]; }
};

// The same for a sparse graph: only the block's neighbours of a flipping unit change, each
// unit's integral one (offset, slope = field) line as in DenseFields.
struct SparseFields {
  const QmcGraphModel& model;
  int block;
  QmcScratch& s;

  void start() {
    const auto& members = model.blocks.members[block];
    s.lines.resize(members.size());
    const GraphModel& g = *model.classical;
    for (std::size_t l = 0; l < members.size(); ++l) {
      const std::int32_t u = members[l];
      float f = g.bias[u];
      for (auto e = g.row_ptr[u]; e < g.row_ptr[u + 1]; ++e) f += static_cast<float>(s.z[g.nbr[e]]) * g.nbr_w[e];
      s.lines[l] = {0.0f, f};
    }
  }
  void flip(std::int32_t u, double t, float sign) {
    const QmcGraphModel::Neighbours& nb = model.into[block];
    const float tf = static_cast<float>(t);
    const QmcGraphModel::Neighbour* e = nb.entries.data() + nb.ptr[u];
    const QmcGraphModel::Neighbour* end = nb.entries.data() + nb.ptr[u + 1];
    for (; e != end; ++e) {
      const float d = sign * e->w;
      QmcScratch::Line& line = s.lines[e->local];
      line.offset -= tf * d;
      line.slope += d;
    }
  }
  float at(std::int32_t l, double t) const {
    const QmcScratch::Line& line = s.lines[l];
    return line.offset + static_cast<float>(t) * line.slope;
  }
  float at_end(std::int32_t l) const { return s.lines[l].offset + s.lines[l].slope; }
};

// Cluster update of one block (clusters = segments between cuts and kinks, heat bath on each).
// With `energy` asked, returns -(sum of A over segments set to 1) - int sum_{m not in block} b_m z_m
// dtau, which is int_0^1 E dtau whenever every edge touches the block (two blocks); else NaN (only
// the last update of a run is asked: the sums would be wasted on the others).
// Inlined into each multiversioned sweep kernel, so it is compiled for that target.
template <class Fields>
__attribute__((always_inline)) inline double update_block(const QmcBlocks& blocks, const std::vector<double>& bias, int block,
                    Fields fields, QmcPath& path, float beta, bool clamped, bool energy, LaneRng& rng,
                    QmcScratch& s) {
  using Boundary = QmcScratch::Boundary;
  const auto& members = blocks.members[block];
  const std::size_t n = members.size();
  s.z.assign(path.z0.begin(), path.z0.end());
  fields.start();
  // Two blocks: the other block's kinks need no merging, and the update yields int E dtau (with
  // more, the edges between the other blocks are unseen).
  const bool two_blocks = blocks.num_blocks() == 2;
  const bool with_energy = energy && two_blocks;
  // int_0^t sum_{m not in block} b_m z_m dtau as a line, src_offset + t src_rate (as the fields)
  double src_rate = 0.0, src_offset = 0.0;
  if (with_energy)
    src_rate = sum4(blocks.members[1 - block].size(), [&](std::size_t k) {
      const std::int32_t u = blocks.members[1 - block][k];
      return s.z[u] * bias[u];
    });

  const std::size_t num_cuts = draw_cuts(blocks.cuts[block], members, rng, s.cuts);
  // Kinks of the other blocks change the fields.
  const Kink* sources;
  std::size_t num_others;
  if (two_blocks) {
    sources = path.kinks[1 - block].data();
    num_others = path.kinks[1 - block].size();
  } else {
    num_others = merge_blocks(path.kinks, block, s.others, s.fresh);
    sources = s.others.data();
  }
  std::vector<Kink>& own = path.kinks[block];
  const std::size_t num_own = own.size();
  const std::size_t max_slots = n + num_own + num_cuts;  // a segment per member and per boundary
  const std::size_t padded = pad_to(max_slots, LaneRng::kLanes);
  ensure_size(s.area, padded);
  ensure_size(s.value, padded);
  ensure_size(s.bounds, num_own + num_cuts);
  s.seg_start.assign(n, 0.0f);
  std::fill_n(s.area.begin(), n, 0.0f);
  s.slot.resize(n);
  for (std::size_t l = 0; l < n; ++l) s.slot[l] = static_cast<std::int32_t>(l);

  // The block's boundaries: its own kinks and the cuts, in one time order.
  const std::size_t num_bounds = num_own + num_cuts;
  ensure_size(s.edges, num_bounds);
  merge_by_time(own.data(), num_own, s.cuts.data(), num_cuts, s.edges.data());

  // Slot l (< n) is the segment of member l through tau = 0; boundary k opens slot n + k.
  // Outer loop: pieces between field changes; inner loop: the boundaries inside a piece.
  std::size_t k = 0;
  auto close_segments_until = [&](double t_end) {
    for (; k < num_bounds && s.edges[k].time < t_end; ++k) {
      const Kink& b = s.edges[k];
      const std::int32_t l = blocks.local[b.unit];
      const float F = fields.at(l, b.time);
      const std::int32_t before = s.slot[l], after = static_cast<std::int32_t>(n + k);
      s.area[before] += F - s.seg_start[l];
      s.area[after] = 0.0f;
      s.bounds[k] = Boundary{before, after};
      s.seg_start[l] = F;
      s.slot[l] = after;
    }
  };
  for (std::size_t i = 0; i < num_others; ++i) {
    const Kink& src = sources[i];
    close_segments_until(src.time);
    const float sign = 1.0f - 2.0f * static_cast<float>(s.z[src.unit]);  // no branch: it mispredicts
    fields.flip(src.unit, src.time, sign);
    if (with_energy) {  // the same every iteration: predicted
      const double d = sign * bias[src.unit];
      src_offset -= src.time * d;
      src_rate += d;
    }
    s.z[src.unit] ^= 1;
  }
  close_segments_until(2.0);

  // Each member's last segment joins the one through tau = 0 (periodic worldlines): its area
  // moves there and it takes that segment's value after the draw (no branches: they mispredict).
  const std::size_t slots = n + num_bounds;
  for (std::size_t l = 0; l < n; ++l) {
    const std::int32_t last = s.slot[l];
    const float tail = s.area[last] + (fields.at_end(static_cast<std::int32_t>(l)) - s.seg_start[l]);
    const float wraps = static_cast<float>(last != static_cast<std::int32_t>(l));  // arithmetic: GCC
    s.area[last] = (1.0f - wraps) * tail;                                             // branches on ?:
    s.area[l] += wraps * tail;
  }

  // Heat bath on every segment at once; a clamped slice keeps the segments through tau = 0.
  const std::size_t padded_slots = pad_to(slots, LaneRng::kLanes);
  std::fill(s.area.begin() + slots, s.area.begin() + padded_slots, 0.0f);
  ensure_size(s.uniforms, padded_slots);
  rng.fill_uniform(s.uniforms.data(), slots);
  for (std::size_t k = 0; k < padded_slots; k += kVec)
    vstore(&s.value[k], vbernoulli_logistic(beta * vload(&s.area[k]), vload(&s.uniforms[k])));
  if (clamped)
    for (std::size_t l = 0; l < n; ++l) s.value[l] = path.z0[members[l]];
  for (std::size_t l = 0; l < n; ++l) s.value[s.slot[l]] = s.value[l];

  // (A folded slot's area is zero: it was counted in its member's first slot.)
  const double coupled = !with_energy ? 0.0 : sum4(slots, [&](std::size_t k) {
    return s.value[k] * static_cast<double>(s.area[k]);
  });

  // New state: z(0) of the members and their kinks, where adjacent segments differ.
  for (std::size_t l = 0; l < n; ++l) path.z0[members[l]] = static_cast<std::uint8_t>(s.value[l]);
  std::size_t kept = 0;  // compacted in place (kept <= k): no resize that zero-fills `own`
  for (std::size_t k = 0; k < num_bounds; ++k) {
    const Boundary& b = s.bounds[k];
    s.edges[kept] = s.edges[k];
    kept += s.value[b.before] != s.value[b.after];
  }
  own.assign(s.edges.begin(), s.edges.begin() + static_cast<std::ptrdiff_t>(kept));
  return with_energy ? -coupled - (src_offset + src_rate) : std::numeric_limits<double>::quiet_NaN();
}

// A number of sweeps (every block once, in order) of one chain; returns the last update's value.
// (sweeps > 0: the caller keeps the path's value otherwise.)
QVAE_MULTIVERSION
double sweep_kernel(const QmcRbmModel& m, QmcPath& p, std::size_t sweeps, float beta,
                    bool clamped, LaneRng& rng, QmcScratch& s) {
  double energy = 0.0;
  for (std::size_t k = 0; k < sweeps; ++k)
    for (int b = 0; b < 2; ++b)
      energy = update_block(m.blocks, m.bias, b, DenseFields{m.into[b], s}, p, beta, clamped,
                            k + 1 == sweeps && b == 1, rng, s);
  return energy;
}

QVAE_MULTIVERSION
double sweep_kernel(const QmcGraphModel& m, QmcPath& p, std::size_t sweeps, float beta,
                    bool clamped, LaneRng& rng, QmcScratch& s) {
  const std::size_t num_blocks = m.blocks.num_blocks();
  double energy = 0.0;
  for (std::size_t k = 0; k < sweeps; ++k)
    for (std::size_t b = 0; b < num_blocks; ++b)
      energy = update_block(m.blocks, m.classical->bias64, static_cast<int>(b),
                            SparseFields{m, static_cast<int>(b), s}, p, beta, clamped,
                            k + 1 == sweeps && b + 1 == num_blocks, rng, s);
  return energy;
}

}  // namespace

namespace {

// int_0^1 E(z(tau)) dtau of a path, exactly, by walking all its kinks in time order.
template <class Model>
double path_energy_integral(const Model& model, const QmcPath& path, QmcScratch& s) {
  const std::size_t num_kinks = merge_blocks(path.kinks, -1, s.others, s.fresh);
  std::vector<std::uint8_t>& z = s.z;
  z.assign(path.z0.begin(), path.z0.end());
  double e = model.classical->energy(z.data()), total = 0.0, t = 0.0;
  for (std::size_t i = 0; i < num_kinks; ++i) {
    const Kink& k = s.others[i];
    total += (k.time - t) * e;
    t = k.time;
    const double f = model.local_field(k.unit, z.data());  // E = -f z_u + (terms without z_u)
    e += z[k.unit] ? f : -f;
    z[k.unit] ^= 1;
  }
  return total + (1.0 - t) * e;
}

}  // namespace

// ---------------------------------------------------------------- chains

template <class Model>
QmcChains<Model>::QmcChains(std::shared_ptr<const Model> model, std::size_t num_chains,
                            std::uint64_t seed, const std::uint8_t* initial_state)
    : model_(std::move(model)), paths_(num_chains), rng_(num_chains) {
  const std::size_t n = num_units();
  std::vector<float> u(LaneRng::padded(n));
  for (std::size_t c = 0; c < num_chains; ++c) {
    rng_[c].reseed(seed, c);
    QmcPath& p = paths_[c];
    p.kinks.resize(model_->blocks.num_blocks());
    if (initial_state) {
      p.z0.assign(initial_state + c * n, initial_state + (c + 1) * n);
    } else {
      rng_[c].fill_uniform(u.data(), n);
      p.z0.resize(n);
      for (std::size_t i = 0; i < n; ++i) p.z0[i] = u[i] < 0.5f;
    }
  }
  for (std::size_t k = 0; k < num_chunks(num_chains, kChunk); ++k)
    scratch_.push_back(std::make_unique<QmcScratch>());
}

template <class Model>
QmcChains<Model>::~QmcChains() = default;

template <class Model>
void QmcChains<Model>::refresh_energy(std::size_t c) {
  paths_[c].energy_integral = path_energy_integral(*model_, paths_[c], *scratch_[c / kChunk]);
}

template <class Model>
void QmcChains<Model>::set_model(std::shared_ptr<const Model> model) {
  if (model->num_units() != model_->num_units() ||
      model->blocks.block_of != model_->blocks.block_of)
    throw std::invalid_argument("model: units or blocks differ from the chains'");
  model_ = std::move(model);
  for (QmcPath& p : paths_) p.energy_integral = std::numeric_limits<double>::quiet_NaN();
}

template <class Model>
void QmcChains<Model>::sample_reference(const std::uint8_t* clamp) {
  const std::vector<double>& gamma = model_->gamma;
  for (std::size_t c = 0; c < paths_.size(); ++c) {
    LaneRng& rng = rng_[c];
    QmcPath& p = paths_[c];
    for (auto& list : p.kinks) list.clear();
    for (std::size_t l = 0; l < gamma.size(); ++l) {
      p.z0[l] = clamp ? clamp[l] : (rng.next_double() < 0.5);
      if (gamma[l] <= 0.0) continue;
      const double limit = std::exp(-gamma[l]);
      std::size_t k;  // Poisson(Gamma) conditioned on even, by rejection (acceptance >= 1/2)
      do {
        double prod = rng.next_double();
        for (k = 0; prod > limit; ++k) prod *= rng.next_double();
      } while (k % 2 != 0);
      auto& list = p.kinks[model_->blocks.block_of[l]];
      for (std::size_t j = 0; j < k; ++j) list.push_back({rng.next_double(), static_cast<std::int32_t>(l)});
    }
    for (auto& list : p.kinks)
      std::sort(list.begin(), list.end(), [](const Kink& a, const Kink& b) { return a.time < b.time; });
    p.energy_integral = std::numeric_limits<double>::quiet_NaN();
  }
}

template <class Model>
void QmcChains<Model>::sweep_chain(std::size_t c, std::size_t num_sweeps, float beta) {
  if (num_sweeps == 0) return;
  paths_[c].energy_integral = sweep_kernel(*model_, paths_[c], num_sweeps, beta, clamped_, rng_[c],
                                            *scratch_[c / kChunk]);  // NaN: stale, see energies()
}

template <class Model>
void QmcChains<Model>::refresh_stale_energies(std::size_t num_threads) {
  parallel_chunks(paths_.size(), kChunk, num_threads, [&](std::size_t first, std::size_t last) {
    for (std::size_t c = first; c < last; ++c)
      if (std::isnan(paths_[c].energy_integral)) refresh_energy(c);
  });
}

template <class Model>
std::size_t QmcChains<Model>::run(std::size_t num_sweeps, double beta, std::size_t num_threads,
                                  const PollFn& poll) {
  const float b = static_cast<float>(beta);
  return run_in_rounds(num_sweeps, paths_.size(), kChunk, num_threads, poll,
                       [&](std::size_t first, std::size_t last, std::size_t sweeps) {
                         for (std::size_t c = first; c < last; ++c) sweep_chain(c, sweeps, b);
                       });
}

template <class Model>
void QmcChains<Model>::get_state(std::uint8_t* out) const {
  const std::size_t n = num_units();
  for (std::size_t c = 0; c < paths_.size(); ++c) std::copy(paths_[c].z0.begin(), paths_[c].z0.end(), out + c * n);
}

template <class Model>
void QmcChains<Model>::kink_counts(std::int64_t* out) const {
  const std::size_t n = num_units();
  std::fill(out, out + paths_.size() * n, 0);
  for (std::size_t c = 0; c < paths_.size(); ++c)
    for (const auto& list : paths_[c].kinks)
      for (const Kink& k : list) ++out[c * n + k.unit];
}

template <class Model>
std::vector<std::int64_t> QmcChains<Model>::kink_offsets() const {
  std::vector<std::int64_t> offsets(1, 0);
  for (const QmcPath& p : paths_) offsets.push_back(offsets.back() + static_cast<std::int64_t>(p.num_kinks()));
  return offsets;
}

template <class Model>
void QmcChains<Model>::get_kinks(double* times, std::int32_t* units) const {
  for (const QmcPath& p : paths_)
    for (const auto& list : p.kinks)
      for (const Kink& k : list) {
        *times++ = k.time;
        *units++ = k.unit;
      }
}

template <class Model>
void QmcChains<Model>::set_kinks(const std::int64_t* offsets, std::size_t num_kinks, const double* times,
                                 const std::int32_t* units) {
  const std::size_t n = num_units();
  // Every offset checked before any kink is read: each chain's range then lies inside the arrays.
  if (offsets[0] != 0 || offsets[paths_.size()] != static_cast<std::int64_t>(num_kinks))
    throw std::invalid_argument("kinks: offsets must run from 0 to the number of kinks");
  for (std::size_t c = 0; c < paths_.size(); ++c)
    if (offsets[c + 1] < offsets[c]) throw std::invalid_argument("kinks: offsets decrease at chain " + std::to_string(c));
  const auto& block_of = model_->blocks.block_of;
  std::vector<std::vector<std::vector<Kink>>> kinks(paths_.size());
  std::vector<std::size_t> per_unit(n);
  for (std::size_t c = 0; c < paths_.size(); ++c) {
    kinks[c].resize(model_->blocks.num_blocks());
    std::fill(per_unit.begin(), per_unit.end(), 0);
    for (auto i = offsets[c]; i < offsets[c + 1]; ++i) {
      if (units[i] < 0 || static_cast<std::size_t>(units[i]) >= n)
        throw std::invalid_argument("kinks: unit out of range in chain " + std::to_string(c));
      if (!(times[i] >= 0.0 && times[i] < 1.0))
        throw std::invalid_argument("kinks: time outside [0, 1) in chain " + std::to_string(c));
      auto& list = kinks[c][block_of[units[i]]];
      if (!list.empty() && !(list.back().time < times[i]))
        throw std::invalid_argument("kinks: times not increasing within a block in chain " + std::to_string(c));
      list.push_back({times[i], units[i]});
      ++per_unit[units[i]];
    }
    for (std::size_t u = 0; u < n; ++u)
      if (per_unit[u] % 2 != 0)
        throw std::invalid_argument("kinks: an odd number on unit " + std::to_string(u) + " in chain " + std::to_string(c));
  }
  for (std::size_t c = 0; c < paths_.size(); ++c) {
    paths_[c].kinks.swap(kinks[c]);
    paths_[c].energy_integral = std::numeric_limits<double>::quiet_NaN();
  }
}

template <class Model>
double QmcChains<Model>::mean_kinks_per_unit() const {
  double total = 0.0;
  for (const QmcPath& p : paths_) total += static_cast<double>(p.num_kinks());
  return total / static_cast<double>(paths_.size() * num_units());
}

template <class Model>
void QmcChains<Model>::energies(double* out, std::size_t num_threads) {
  refresh_stale_energies(num_threads);
  weight_slope(0.0, out, num_threads);
}

template <class Model>
void QmcChains<Model>::weight_slope(double, double* out, std::size_t) const {
  for (std::size_t c = 0; c < paths_.size(); ++c) out[c] = paths_[c].energy_integral;
}

template <class Model>
void QmcChains<Model>::log_weights(double t, double t_next, double* out, std::size_t) const {
  for (std::size_t c = 0; c < paths_.size(); ++c) out[c] = -(t_next - t) * paths_[c].energy_integral;
}

template <class Model>
void QmcChains<Model>::permute(const std::vector<std::size_t>& parent) {
  spare_.resize(paths_.size());
  for (std::size_t c = 0; c < paths_.size(); ++c) spare_[c] = paths_[parent[c]];  // reuses capacity
  paths_.swap(spare_);
}

template class QmcChains<QmcRbmModel>;
template class QmcChains<QmcGraphModel>;

}  // namespace qvae
