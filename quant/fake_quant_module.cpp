#include "quant/fake_quant_module.h"

#include <stdexcept>

#include "core/check.h"
#include "core/replicas.h"

namespace crayon {

namespace {

// Buffer indices, in registration order; observer entries follow kFirstEntry.
enum : size_t { kScale, kZeroPoint, kStep, kObserved, kFrozen, kRng, kLengths, kFirstEntry };

// SampleReservoir's default capacity (quant/observer.h): the most samples a percentile or
// mse observer keeps. A larger state on load is reported, not truncated.
constexpr int64_t kReservoirCapacity = int64_t(1) << 16;

uint64_t read_u64(const Tensor& words, size_t i) {
  const int32_t* p = words.data_as<int32_t>();
  return uint64_t(uint32_t(p[2 * i])) | (uint64_t(uint32_t(p[2 * i + 1])) << 32);
}

void write_u64(Tensor& words, size_t i, uint64_t v) {
  int32_t* p = words.data_as<int32_t>();
  p[2 * i] = int32_t(uint32_t(v));
  p[2 * i + 1] = int32_t(uint32_t(v >> 32));
}

}  // namespace

FakeQuant::FakeQuant(const QuantSpec& spec, const std::string& observer, int64_t warmup_steps, Ste ste,
                     uint64_t seed)
    : qspec_(spec), observer_name_(observer), warmup_(warmup_steps), ste_(ste) {
  if (spec.axis != -1)
    throw std::invalid_argument(str("fakequant: activations are quantized per tensor, got axis ", spec.axis,
                                    " (weights are fake-quantized by a parametrization, quant/qat.h)"));
  if (warmup_steps < 0) throw std::invalid_argument(str("fakequant: warmup steps must be >= 0, got ", warmup_steps));
  observer_ = make_observer(observer, spec);  // validates spec and name

  register_buffer("scale", Tensor::ones({1}));
  register_buffer("zero_point", Tensor::zeros({1}, DType::i32));
  register_buffer("step", Tensor::zeros({2}, DType::i32));
  register_buffer("observed", Tensor::zeros({1}, DType::i32));
  register_buffer("frozen", Tensor::zeros({1}, DType::i32));
  Tensor rng = Tensor::zeros({8}, DType::i32);
  const auto s = Rng(seed).state();
  for (size_t i = 0; i < 4; ++i) write_u64(rng, i, s[i]);
  register_buffer("rng", rng);

  // The shape of every state entry, from a probe that has seen one value; entries that grow
  // with the data (a reservoir's samples) get their capacity.
  auto probe = make_observer(observer, spec);
  probe->observe(Tensor::zeros({1}));
  const NamedTensors shapes = probe->state();
  register_buffer("observer_lengths", Tensor::zeros({int64_t(shapes.size())}, DType::i32));
  for (const auto& [name, t] : shapes) {
    CRAYON_CHECK(t.ndim() == 1, "observer state entry '", name, "' is not 1-D");
    const int64_t capacity = name == "samples" ? kReservoirCapacity : t.numel();
    entries_.push_back(name);
    register_buffer("observer_" + name, Tensor::zeros({capacity}, t.dtype()));
  }
  store_observer();  // the fresh observer's state (lengths 0 where nothing was seen yet)
}

int32_t FakeQuant::flag(size_t index) const { return buffer(index).data_as<int32_t>()[0]; }
void FakeQuant::set_flag(size_t index, int32_t v) { buffer(index).data_as<int32_t>()[0] = v; }
bool FakeQuant::observed() const { return flag(kObserved) != 0; }
bool FakeQuant::frozen() const { return flag(kFrozen) != 0; }
uint64_t FakeQuant::steps() const { return read_u64(buffer(kStep), 0); }

QParams FakeQuant::qparams() const {
  if (!observed())
    throw std::logic_error(str(spec(), ": no quantization parameters yet: it has observed no data "
                                       "(train through the warm-up or calibrate first)"));
  const float scale = buffer(kScale).data()[0];
  const int32_t zero_point = buffer(kZeroPoint).data_as<int32_t>()[0];
  QParams qp{{scale}, {zero_point}, -1};
  validate_qparams(qp, qspec_);  // restored buffers are untrusted
  return qp;
}

void FakeQuant::load_observer() const {
  const Tensor lengths = buffer(kLengths);
  NamedTensors state;
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Tensor b = buffer(kFirstEntry + i);
    const int32_t n = lengths.data_as<int32_t>()[i];
    if (n < 0 || n > b.numel())
      throw std::invalid_argument(str(spec(), ": observer_lengths[", i, "] = ", n, " for observer_", entries_[i],
                                      " (capacity ", b.numel(), ")"));
    state.emplace_back(entries_[i], b.slice(0, n).clone());
  }
  observer_->load_state(state);
}

void FakeQuant::sync_buffers() const {
  if (observer_dirty_) store_observer();
  observer_dirty_ = false;
  buffers_exposed_ = true;
}

void FakeQuant::store_observer() const {
  Tensor lengths = buffer(kLengths);
  const NamedTensors state = observer_->state();
  CRAYON_CHECK(state.size() == entries_.size(), "observer state has ", state.size(), " entries, expected ",
               entries_.size());
  for (size_t i = 0; i < entries_.size(); ++i) {
    CRAYON_CHECK(state[i].first == entries_[i], "observer state entry ", state[i].first, " != ", entries_[i]);
    Tensor b = buffer(kFirstEntry + i);
    const Tensor& t = state[i].second;
    CRAYON_CHECK(t.numel() <= b.numel(), "observer state entry ", entries_[i], " holds ", t.numel(),
                 " values, capacity ", b.numel());
    b.slice(0, t.numel()).copy_from(t);
    lengths.data_as<int32_t>()[i] = int32_t(t.numel());
  }
}

void FakeQuant::observe(const Tensor& x) {
  if (frozen()) return;
  if (buffers_exposed_) load_observer();
  buffers_exposed_ = false;
  try {
    observer_->observe(x);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(str(spec(), ": ", e.what()));
  }
  observer_dirty_ = true;
  if (!calibrating_) set_qparams();  // calibration chooses the grid once, at freeze()
}

void FakeQuant::set_qparams() {
  const QParams qp = observer_->qparams();
  buffer(kScale).data()[0] = qp.scale[0];
  buffer(kZeroPoint).data_as<int32_t>()[0] = qp.zero_point[0];
  set_flag(kObserved, 1);
}

void FakeQuant::freeze() {
  calibrating_ = false;
  if (frozen()) return;
  if (buffers_exposed_) load_observer();
  buffers_exposed_ = false;
  if (!observer_->has_observed()) throw std::logic_error(str(spec(), ": freeze() before any observation"));
  set_qparams();
  set_flag(kFrozen, 1);
}

void FakeQuant::reset() {
  observer_ = make_observer(observer_name_, qspec_);
  store_observer();
  observer_dirty_ = buffers_exposed_ = false;
  buffer(kScale).data()[0] = 1.f;
  buffer(kZeroPoint).data_as<int32_t>()[0] = 0;
  Tensor step = buffer(kStep);
  write_u64(step, 0, 0);
  set_flag(kObserved, 0);
  set_flag(kFrozen, 0);
}

Variable FakeQuant::forward(const Variable& x) {
  // x: any shape -> same shape
  if (calibrating_) {
    observe(x.value());
    return x;
  }
  if (is_training() && !frozen() && steps() < uint64_t(warmup_)) {
    observe(x.value());
    Tensor step = buffer(kStep);
    const uint64_t n = read_u64(step, 0) + 1;
    write_u64(step, 0, n);
    if (n == uint64_t(warmup_)) set_flag(kFrozen, 1);  // the qparams just chosen stay
  }
  const QParams qp = qparams();  // throws if never observed
  QuantSpec s = qspec_;
  if (!is_training()) s.rounding = Rounding::nearest_even;  // what the integer engine does
  if (s.rounding != Rounding::stochastic) return fake_quant(x, qp, s, ste_);
  Tensor words = buffer(kRng);
  Rng rng;
  rng.set_state({read_u64(words, 0), read_u64(words, 1), read_u64(words, 2), read_u64(words, 3)});
  // One draw per element; a data-parallel replica draws for the whole batch (core/replicas.h).
  const ShardDraws skip = shard_draws(x.shape());
  rng.discard(skip.before);
  Variable y = fake_quant(x, qp, s, ste_, &rng);
  rng.discard(skip.after);
  const auto st = rng.state();
  for (size_t i = 0; i < 4; ++i) write_u64(words, i, st[i]);
  return y;
}

std::string FakeQuant::spec() const {
  std::string s = str("fakequant(", qspec_.bits);
  if (qspec_.symmetric) s += ",symmetric";
  if (qspec_.narrow_range) s += ",narrow";
  if (observer_name_ != "minmax") s += ",observer=" + observer_name_;
  return s + ")";
}

}  // namespace crayon
