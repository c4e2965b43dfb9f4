#include "qvae/ctqmc.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "qvae/math.hpp"
#include "qvae/thread_pool.hpp"

namespace qvae {

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
    std::int32_t s = small.back(), l = large.back();
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

namespace {

QmcLayer make_layer(std::size_t n, std::size_t n_src, const double* w64 /* (rows, cols) */,
                    bool transpose, const double* bias, const double* gamma) {
  QmcLayer L;
  L.n = n;
  L.n_src = n_src;
  L.ld = pad_to(n, kVec);
  L.w.assign(n_src * L.ld, 0.0f);
  L.bias.assign(L.ld, 0.0f);
  for (std::size_t m = 0; m < n_src; ++m)
    for (std::size_t l = 0; l < n; ++l)
      L.w[m * L.ld + l] = static_cast<float>(transpose ? w64[l * n_src + m] : w64[m * n + l]);
  L.bias64.assign(bias, bias + n);
  for (std::size_t l = 0; l < n; ++l) L.bias[l] = static_cast<float>(bias[l]);
  L.gamma.assign(gamma, gamma + n);
  L.cuts = AliasTable(L.gamma);
  return L;
}

}  // namespace

QmcRbmModel::QmcRbmModel(std::shared_ptr<const RbmModel> model, const double* g)
    : classical(std::move(model)), gamma(g, g + classical->num_units()) {
  const RbmModel& m = *classical;
  hidden = make_layer(m.nh, m.nv, m.w64.data(), false, m.b64.data(), g + m.nv);
  visible = make_layer(m.nv, m.nh, m.w64.data(), true, m.a64.data(), g);
}

double QmcRbmModel::reference_log_z(bool clamped) const {
  double total = 0.0;
  for (double g : gamma) total += std::log(std::cosh(g)) + (clamped ? 0.0 : std::log(2.0));
  return total;
}

// Per-task buffers, reused across sweeps: sized up front, filled through indices.
struct QmcScratch {
  std::vector<float> field, integral, seg_start, area, uniforms, value, spacing;
  std::vector<std::uint8_t> src_value;
  std::vector<std::int32_t> slot, redirect;
  struct Boundary {
    double time;
    std::int32_t unit, before, after;
  };
  std::vector<Boundary> bounds;
  std::vector<Kink> cuts, edges, out;
};

namespace {

enum class Pass { kUpdate, kEvaluate };

template <class T>
inline void ensure_size(std::vector<T>& v, std::size_t n) {
  if (v.size() < n) v.resize(n + n / 2);
}

// New cuts of a layer: a Poisson process of rate sum_l Gamma_l in time order (exponential
// spacings from a vectorised log, 16 at a time), each given to a unit by the alias table.
inline std::size_t draw_cuts(const QmcLayer& L, LaneRng& rng, QmcScratch& s) {
  const double rate = L.cuts.total;
  if (rate <= 0.0) return 0;
  constexpr std::size_t B = LaneRng::kLanes;
  alignas(64) float u[B], pick[B];
  const float inv_rate = static_cast<float>(1.0 / rate);
  const float n = static_cast<float>(L.n);
  std::size_t count = 0;
  double t = 0.0;
  for (;;) {
    rng.next_uniform(u);
    rng.next_uniform(pick);
    for (std::size_t k = 0; k < B; k += kVec)
      vstore(u + k, -inv_rate * vlog(vload(u + k)));
    ensure_size(s.cuts, count + B);
    for (std::size_t k = 0; k < B; ++k) {
      t += u[k];
      if (t >= 1.0) return count;
      const float x = pick[k] * n;
      std::size_t j = std::min(static_cast<std::size_t>(x), L.n - 1);
      const float frac = x - static_cast<float>(j);
      s.cuts[count++] = {t, frac < L.cuts.threshold[j] ? static_cast<std::int32_t>(j) : L.cuts.alias[j]};
    }
  }
}

// One time-ordered walk over a target layer `T` given the source layer `S`.
// kUpdate: cluster update of T (cuts, heat bath), returns int_0^1 E dtau of the new path.
// kEvaluate: leaves T unchanged and returns int_0^1 E dtau of the current path.
// The returned integral is -int (bias_T . z_T + z_S W z_T) dtau - int bias_S . z_S dtau.
template <Pass kPass>
__attribute__((always_inline)) inline double layer_pass(const QmcLayer& L,
                                                        const std::vector<double>& src_bias,
                                                        const LayerPath& S, LayerPath& T,
                                                        float lambda, bool clamped, LaneRng& rng,
                                                        QmcScratch& s) {
  using Boundary = QmcScratch::Boundary;
  const std::size_t n = L.n, ld = L.ld;
  s.field.assign(L.bias.begin(), L.bias.end());
  s.integral.assign(ld, 0.0f);
  s.seg_start.assign(ld, 0.0f);
  s.src_value.assign(S.z0.begin(), S.z0.end());
  double src_bias_rate = 0.0;  // sum_m bias_m z_m(tau) on the current piece
  for (std::size_t m = 0; m < S.z0.size(); ++m) {
    if (!S.z0[m]) continue;
    src_bias_rate += src_bias[m];
    const float* row = &L.w[m * ld];
    for (std::size_t l = 0; l < ld; l += kVec) vstore(&s.field[l], vload(&s.field[l]) + vload(row + l));
  }
  double src_bias_integral = 0.0;

  // Boundaries of the target worldlines: their kinks, merged with new cuts when updating.
  const Kink* edges = T.kinks.data();
  std::size_t num_edges = T.kinks.size();
  if constexpr (kPass == Pass::kUpdate) {
    const std::size_t num_cuts = draw_cuts(L, rng, s);
    if (num_cuts > 0) {
      ensure_size(s.edges, num_edges + num_cuts);
      std::merge(T.kinks.begin(), T.kinks.end(), s.cuts.begin(), s.cuts.begin() + num_cuts,
                 s.edges.begin(), [](const Kink& a, const Kink& b) { return a.time < b.time; });
      edges = s.edges.data();
      num_edges += num_cuts;
    }
  }

  // Slot l (< n) is the segment of unit l through tau = 0; boundary k opens slot n + k.
  const std::size_t slots = n + num_edges;
  const std::size_t padded = pad_to(slots, LaneRng::kLanes);
  ensure_size(s.area, padded);
  ensure_size(s.value, padded);
  ensure_size(s.redirect, slots);
  ensure_size(s.bounds, num_edges);
  s.slot.resize(n);
  for (std::size_t l = 0; l < n; ++l) s.slot[l] = static_cast<std::int32_t>(l);
  std::fill_n(s.area.begin(), padded, 0.0f);
  if constexpr (kPass == Pass::kEvaluate) std::copy(T.z0.begin(), T.z0.end(), s.value.begin());

  double t_last = 0.0;  // time of the last source event: F_l(t) = integral_l + (t - t_last) field_l
  std::size_t is = 0;
  const std::size_t ns = S.kinks.size();
  for (std::size_t k = 0; k < num_edges; ++k) {
    const double te = edges[k].time;
    for (; is < ns && S.kinks[is].time <= te; ++is) {  // source flips: advance integrals, fields
      const double ts = S.kinks[is].time;
      const std::int32_t m = S.kinks[is].unit;
      const float dt = static_cast<float>(ts - t_last);
      const float sign = s.src_value[m] ? -1.0f : 1.0f;
      const float* row = &L.w[static_cast<std::size_t>(m) * ld];
      for (std::size_t l = 0; l < ld; l += kVec) {
        const vfloat f = vload(&s.field[l]);
        vstore(&s.integral[l], vload(&s.integral[l]) + dt * f);
        vstore(&s.field[l], f + sign * vload(row + l));
      }
      src_bias_integral += (ts - t_last) * src_bias_rate;
      src_bias_rate += sign * src_bias[m];
      s.src_value[m] ^= 1;
      t_last = ts;
    }
    // Boundary of unit l: close its segment and open slot n + k.
    const std::int32_t l = edges[k].unit;
    const float F = s.integral[l] + static_cast<float>(te - t_last) * s.field[l];
    const std::int32_t before = s.slot[l], after = static_cast<std::int32_t>(n + k);
    s.area[before] += F - s.seg_start[l];
    if constexpr (kPass == Pass::kEvaluate) s.value[after] = 1.0f - s.value[before];
    s.bounds[k] = Boundary{te, l, before, after};
    s.seg_start[l] = F;
    s.slot[l] = after;
  }
  for (; is < ns; ++is) {  // remaining source flips
    const double ts = S.kinks[is].time;
    const std::int32_t m = S.kinks[is].unit;
    const float dt = static_cast<float>(ts - t_last);
    const float sign = s.src_value[m] ? -1.0f : 1.0f;
    const float* row = &L.w[static_cast<std::size_t>(m) * ld];
    for (std::size_t l = 0; l < ld; l += kVec) {
      const vfloat f = vload(&s.field[l]);
      vstore(&s.integral[l], vload(&s.integral[l]) + dt * f);
      vstore(&s.field[l], f + sign * vload(row + l));
    }
    src_bias_integral += (ts - t_last) * src_bias_rate;
    src_bias_rate += sign * src_bias[m];
    s.src_value[m] ^= 1;
    t_last = ts;
  }
  {  // close at tau = 1
    const float dt = static_cast<float>(1.0 - t_last);
    for (std::size_t l = 0; l < ld; l += kVec)
      vstore(&s.integral[l], vload(&s.integral[l]) + dt * vload(&s.field[l]));
    src_bias_integral += (1.0 - t_last) * src_bias_rate;
  }
  // Each unit's last segment joins the one through tau = 0 (periodic worldlines).
  for (std::size_t k = 0; k < slots; ++k) s.redirect[k] = static_cast<std::int32_t>(k);
  for (std::size_t l = 0; l < n; ++l) {
    s.area[s.slot[l]] += s.integral[l] - s.seg_start[l];
    if (s.slot[l] != static_cast<std::int32_t>(l)) {
      s.area[l] += s.area[s.slot[l]];
      s.redirect[s.slot[l]] = static_cast<std::int32_t>(l);
    }
  }

  if constexpr (kPass == Pass::kUpdate) {  // heat bath on every segment at once
    ensure_size(s.uniforms, padded);
    rng.fill_uniform(s.uniforms.data(), slots);
    for (std::size_t k = 0; k < padded; k += kVec)
      vstore(&s.value[k], vbernoulli_logistic(lambda * vload(&s.area[k]), vload(&s.uniforms[k])));
    if (clamped)
      for (std::size_t l = 0; l < n; ++l) s.value[l] = T.z0[l];
  }
  // int E dtau = -sum over segments with z = 1 of A - int bias_S . z_S
  // (A redirected slot's area was folded into its unit's first slot: count it there only.)
  double coupled = 0.0;
  for (std::size_t l = 0; l < n; ++l) coupled += s.value[l] * s.area[l];
  for (std::size_t k = n; k < slots; ++k)
    coupled += (s.redirect[k] == static_cast<std::int32_t>(k)) * s.value[k] * s.area[k];

  if constexpr (kPass == Pass::kUpdate) {
    for (std::size_t l = 0; l < n; ++l) T.z0[l] = static_cast<std::uint8_t>(s.value[l]);
    ensure_size(s.out, num_edges);
    std::size_t kept = 0;
    for (std::size_t k = 0; k < num_edges; ++k) {
      const Boundary& b = s.bounds[k];
      s.out[kept] = {b.time, b.unit};
      kept += s.value[s.redirect[b.before]] != s.value[s.redirect[b.after]];
    }
    T.kinks.assign(s.out.begin(), s.out.begin() + kept);
  }
  return -coupled - src_bias_integral;
}

// A number of sweeps of one chain: hidden layer, then visible layer; returns int E dtau.
QVAE_MULTIVERSION
double sweep_kernel(const QmcRbmModel& m, ChainPath& p, std::size_t num_sweeps, float lambda,
                    bool clamped, LaneRng& rng, QmcScratch& s) {
  double energy = p.energy_integral;
  for (std::size_t k = 0; k < num_sweeps; ++k) {
    layer_pass<Pass::kUpdate>(m.hidden, m.visible.bias64, p.v, p.h, lambda, clamped, rng, s);
    energy = layer_pass<Pass::kUpdate>(m.visible, m.hidden.bias64, p.h, p.v, lambda, clamped, rng, s);
  }
  return energy;
}

}  // namespace

QmcRbmChains::~QmcRbmChains() = default;

QmcRbmChains::QmcRbmChains(std::shared_ptr<const QmcRbmModel> model, std::size_t num_chains,
                           std::uint64_t seed, const std::uint8_t* initial_state)
    : model_(std::move(model)), paths_(num_chains), rng_(num_chains) {
  const std::size_t nv = model_->visible.n, nh = model_->hidden.n, n = nv + nh;
  for (std::size_t c = 0; c < num_chains; ++c) rng_[c].reseed(seed, c);
  std::vector<float> u(LaneRng::padded(n));
  for (std::size_t c = 0; c < num_chains; ++c) {
    ChainPath& p = paths_[c];
    p.v.z0.resize(nv);
    p.h.z0.resize(nh);
    if (!initial_state) rng_[c].fill_uniform(u.data(), n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint8_t z = initial_state ? initial_state[c * n + i] : (u[i] < 0.5f);
      (i < nv ? p.v.z0[i] : p.h.z0[i - nv]) = z;
    }
  }
  const std::size_t chunks = (num_chains + kChunk - 1) / kChunk;
  for (std::size_t k = 0; k < chunks; ++k) scratch_.push_back(std::make_unique<QmcScratch>());
  for (std::size_t c = 0; c < num_chains; ++c)
    paths_[c].energy_integral = layer_pass<Pass::kEvaluate>(
        model_->hidden, model_->visible.bias64, paths_[c].v, paths_[c].h, 1.0f, false, rng_[c],
        *scratch_[c / kChunk]);
}

void QmcRbmChains::set_model(std::shared_ptr<const QmcRbmModel> model) {
  if (model->visible.n != model_->visible.n || model->hidden.n != model_->hidden.n)
    throw std::invalid_argument("model: layer sizes differ from the chains'");
  model_ = std::move(model);
  for (std::size_t c = 0; c < paths_.size(); ++c)
    paths_[c].energy_integral = layer_pass<Pass::kEvaluate>(
        model_->hidden, model_->visible.bias64, paths_[c].v, paths_[c].h, 1.0f, false, rng_[c],
        *scratch_[c / kChunk]);
}

void QmcRbmChains::sample_reference(const std::uint8_t* clamp) {
  const QmcRbmModel& m = *model_;
  const std::size_t nv = m.visible.n;
  for (std::size_t c = 0; c < paths_.size(); ++c) {
    LaneRng& rng = rng_[c];
    for (LayerPath* layer : {&paths_[c].v, &paths_[c].h}) {
      const bool vis = layer == &paths_[c].v;
      const std::vector<double>& gamma = vis ? m.visible.gamma : m.hidden.gamma;
      layer->kinks.clear();
      for (std::size_t l = 0; l < gamma.size(); ++l) {
        const std::size_t unit = vis ? l : nv + l;
        layer->z0[l] = clamp ? clamp[unit] : (rng.next_double() < 0.5);
        if (gamma[l] <= 0.0) continue;
        // Poisson(Gamma) conditioned on even, by rejection (acceptance >= 1/2).
        std::size_t k;
        do {
          const double limit = std::exp(-gamma[l]);
          double prod = rng.next_double();
          for (k = 0; prod > limit; ++k) prod *= rng.next_double();
        } while (k % 2 != 0);
        for (std::size_t j = 0; j < k; ++j)
          layer->kinks.push_back({rng.next_double(), static_cast<std::int32_t>(l)});
      }
      std::sort(layer->kinks.begin(), layer->kinks.end(),
                [](const Kink& a, const Kink& b) { return a.time < b.time; });
    }
    paths_[c].energy_integral = layer_pass<Pass::kEvaluate>(
        m.hidden, m.visible.bias64, paths_[c].v, paths_[c].h, 1.0f, false, rng, *scratch_[c / kChunk]);
  }
}

void QmcRbmChains::sweep_chain(std::size_t c, std::size_t num_sweeps, float lambda) {
  paths_[c].energy_integral =
      sweep_kernel(*model_, paths_[c], num_sweeps, lambda, clamped_, rng_[c], *scratch_[c / kChunk]);
}

std::size_t QmcRbmChains::run(std::size_t num_sweeps, double lambda, std::size_t num_threads,
                              const PollFn& poll) {
  const float l = static_cast<float>(lambda);
  const std::size_t chunks = (paths_.size() + kChunk - 1) / kChunk;
  return run_in_rounds(num_sweeps, chunks, resolve_threads(num_threads), poll,
                       [&](std::size_t chunk, std::size_t sweeps) {
                         for (std::size_t c = chunk * kChunk;
                              c < std::min(paths_.size(), (chunk + 1) * kChunk); ++c)
                           sweep_chain(c, sweeps, l);
                       });
}

void QmcRbmChains::get_state(std::uint8_t* out) const {
  const std::size_t nv = model_->visible.n, n = num_units();
  for (std::size_t c = 0; c < paths_.size(); ++c) {
    std::copy(paths_[c].v.z0.begin(), paths_[c].v.z0.end(), out + c * n);
    std::copy(paths_[c].h.z0.begin(), paths_[c].h.z0.end(), out + c * n + nv);
  }
}

void QmcRbmChains::kink_counts(std::int64_t* out) const {
  const std::size_t nv = model_->visible.n, n = num_units();
  std::fill(out, out + paths_.size() * n, 0);
  for (std::size_t c = 0; c < paths_.size(); ++c) {
    for (const Kink& k : paths_[c].v.kinks) ++out[c * n + k.unit];
    for (const Kink& k : paths_[c].h.kinks) ++out[c * n + nv + k.unit];
  }
}

double QmcRbmChains::mean_kinks_per_unit() const {
  double total = 0.0;
  for (const ChainPath& p : paths_) total += static_cast<double>(p.v.kinks.size() + p.h.kinks.size());
  return total / static_cast<double>(paths_.size() * num_units());
}

void QmcRbmChains::energies(double* out, std::size_t) const {
  for (std::size_t c = 0; c < paths_.size(); ++c) out[c] = paths_[c].energy_integral;
}

void QmcRbmChains::log_weights(double t, double t_next, double* out, std::size_t) const {
  for (std::size_t c = 0; c < paths_.size(); ++c) out[c] = -(t_next - t) * paths_[c].energy_integral;
}

void QmcRbmChains::permute(const std::vector<std::size_t>& parent) {
  spare_.resize(paths_.size());
  for (std::size_t c = 0; c < paths_.size(); ++c) spare_[c] = paths_[parent[c]];  // reuses capacity
  paths_.swap(spare_);
}

}  // namespace qvae
