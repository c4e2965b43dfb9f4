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

// Per-task buffers, reused across sweeps (no allocation once they have grown).
struct QmcScratch {
  std::vector<float> field, integral, seg_start, area, uniforms, value;
  std::vector<std::uint8_t> src_value;
  std::vector<std::int32_t> slot, redirect;
  struct Boundary {
    double time;
    std::int32_t unit, before, after;
  };
  std::vector<Boundary> bounds;
  std::vector<Kink> cuts, out;
};

namespace {

enum class Pass { kUpdate, kEvaluate };

// One time-ordered walk over a target layer `T` given the source layer `S`.
// kUpdate: cluster update of T (cuts, heat bath), returns int_0^1 E dtau of the new path.
// kEvaluate: leaves T unchanged and returns int_0^1 E dtau of the current path.
// The returned integral is -int (bias_T . z_T + z_S W z_T) dtau - int bias_S . z_S dtau.
template <Pass kPass>
__attribute__((always_inline)) inline double layer_pass(const QmcLayer& L, const std::vector<double>& src_bias, const LayerPath& S,
                  LayerPath& T, float lambda, bool clamped, LaneRng& rng,
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

  // New cuts: a Poisson process of rate sum_l Gamma_l in time order, each given to a unit by alias.
  s.cuts.clear();
  if constexpr (kPass == Pass::kUpdate) {
    const double rate = L.cuts.total;
    if (rate > 0.0) {
      double t = 0.0;
      for (;;) {
        t -= std::log1p(-rng.next_double()) / rate;
        if (t >= 1.0) break;
        const double u = rng.next_double() * static_cast<double>(n);
        std::size_t k = std::min(static_cast<std::size_t>(u), n - 1);
        const std::int32_t unit = (u - static_cast<double>(k)) < L.cuts.threshold[k]
                                      ? static_cast<std::int32_t>(k)
                                      : L.cuts.alias[k];
        s.cuts.push_back({t, unit});
      }
    }
  }

  // Slot l (< n) is the segment of unit l through tau = 0; later segments get new slots.
  s.slot.resize(n);
  for (std::size_t l = 0; l < n; ++l) s.slot[l] = static_cast<std::int32_t>(l);
  s.area.assign(n, 0.0f);
  if constexpr (kPass == Pass::kEvaluate) s.value.assign(T.z0.begin(), T.z0.end());
  s.bounds.clear();

  double t_last = 0.0;  // time of the last source event: F_l(t) = integral_l + (t - t_last) field_l
  std::size_t is = 0, it = 0, ic = 0;
  const std::size_t ns = S.kinks.size(), nt = T.kinks.size(), nc = s.cuts.size();
  for (;;) {
    const double ts = is < ns ? S.kinks[is].time : 2.0;
    const double tt = it < nt ? T.kinks[it].time : 2.0;
    const double tc = ic < nc ? s.cuts[ic].time : 2.0;
    if (ts >= 2.0 && tt >= 2.0 && tc >= 2.0) break;
    if (ts <= tt && ts <= tc) {  // a source unit flips: advance all integrals, change the fields
      const std::int32_t m = S.kinks[is++].unit;
      const float dt = static_cast<float>(ts - t_last);
      for (std::size_t l = 0; l < ld; l += kVec)
        vstore(&s.integral[l], vload(&s.integral[l]) + dt * vload(&s.field[l]));
      src_bias_integral += (ts - t_last) * src_bias_rate;
      t_last = ts;
      const float sign = s.src_value[m] ? -1.0f : 1.0f;
      s.src_value[m] ^= 1;
      src_bias_rate += sign * src_bias[m];
      const float* row = &L.w[static_cast<std::size_t>(m) * ld];
      for (std::size_t l = 0; l < ld; l += kVec)
        vstore(&s.field[l], vload(&s.field[l]) + sign * vload(row + l));
    } else {  // a boundary of a target unit: close its segment, open the next
      const bool old_kink = tt <= tc;
      const Kink& k = old_kink ? T.kinks[it++] : s.cuts[ic++];
      const std::int32_t l = k.unit;
      const float F = s.integral[l] + static_cast<float>(k.time - t_last) * s.field[l];
      const std::int32_t next = static_cast<std::int32_t>(s.area.size());
      s.area[s.slot[l]] += F - s.seg_start[l];
      s.area.push_back(0.0f);
      if constexpr (kPass == Pass::kEvaluate) s.value.push_back(1.0f - s.value[s.slot[l]]);
      s.bounds.push_back(Boundary{k.time, l, s.slot[l], next});
      s.seg_start[l] = F;
      s.slot[l] = next;
    }
  }
  {  // close at tau = 1 and fold each unit's last segment into the one through tau = 0
    const float dt = static_cast<float>(1.0 - t_last);
    for (std::size_t l = 0; l < ld; l += kVec)
      vstore(&s.integral[l], vload(&s.integral[l]) + dt * vload(&s.field[l]));
    src_bias_integral += (1.0 - t_last) * src_bias_rate;
  }
  const std::size_t slots = s.area.size();
  s.redirect.resize(slots);
  for (std::size_t k = 0; k < slots; ++k) s.redirect[k] = static_cast<std::int32_t>(k);
  for (std::size_t l = 0; l < n; ++l) {
    s.area[s.slot[l]] += s.integral[l] - s.seg_start[l];
    if (s.slot[l] != static_cast<std::int32_t>(l)) {
      s.area[l] += s.area[s.slot[l]];
      s.redirect[s.slot[l]] = static_cast<std::int32_t>(l);
    }
  }

  if constexpr (kPass == Pass::kUpdate) {  // heat bath on every segment at once
    const std::size_t padded = pad_to(slots, LaneRng::kLanes);
    s.area.resize(padded, 0.0f);
    s.uniforms.resize(padded);
    s.value.resize(padded);
    rng.fill_uniform(s.uniforms.data(), slots);
    for (std::size_t k = 0; k < padded; k += kVec)
      vstore(&s.value[k], vbernoulli_logistic(lambda * vload(&s.area[k]), vload(&s.uniforms[k])));
    if (clamped)
      for (std::size_t l = 0; l < n; ++l) s.value[l] = T.z0[l];
  }
  // int E dtau = -sum over segments with z = 1 of A - int bias_S . z_S
  double coupled = 0.0;
  for (std::size_t k = 0; k < slots; ++k)
    if (s.redirect[k] == static_cast<std::int32_t>(k) && s.value[k] != 0) coupled += s.area[k];

  if constexpr (kPass == Pass::kUpdate) {
    for (std::size_t l = 0; l < n; ++l) T.z0[l] = static_cast<std::uint8_t>(s.value[l]);
    s.out.clear();
    for (const Boundary& b : s.bounds)
      if (s.value[s.redirect[b.before]] != s.value[s.redirect[b.after]])
        s.out.push_back({b.time, b.unit});
    T.kinks.swap(s.out);
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
