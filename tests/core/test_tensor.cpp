// Tensor creation, views and dtypes; the seeded Rng.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "tests/support/tensors.h"

using namespace crayon;
using testing::bitwise_equal;

namespace {
std::vector<float> values_of(const Tensor& t) { return {t.values().begin(), t.values().end()}; }
}  // namespace

TEST_CASE("tensor: zeros, ones, full and scalar have the requested shape and values") {
  const Tensor z = Tensor::zeros({2, 3});
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.numel() == 6);
  CHECK(z.ndim() == 2);
  CHECK(z.dtype() == DType::f32);
  CHECK(z.nbytes() == 24);
  CHECK(values_of(z) == std::vector<float>(6, 0.f));
  CHECK(values_of(Tensor::ones({4})) == std::vector<float>(4, 1.f));
  CHECK(values_of(Tensor::full({2, 2}, -2.5f)) == std::vector<float>(4, -2.5f));
  const Tensor s = Tensor::scalar(3.f);
  CHECK(s.shape() == Shape{});
  CHECK(s.numel() == 1);
  CHECK(s.item() == 3.f);
  CHECK(Tensor::zeros({3, 0}).numel() == 0);
  CHECK_FALSE(Tensor().defined());
  CHECK(z.size(-1) == 3);
  CHECK(z.size(0) == 2);
}

TEST_CASE("tensor: arange counts from start to stop by step") {
  CHECK(values_of(Tensor::arange(5)) == std::vector<float>{0, 1, 2, 3, 4});
  CHECK(values_of(Tensor::arange(1.f, 2.f, 0.25f)) == std::vector<float>{1.f, 1.25f, 1.5f, 1.75f});
  CHECK(values_of(Tensor::arange(3.f, 0.f, -1.f)) == std::vector<float>{3, 2, 1});
  CHECK(Tensor::arange(0).numel() == 0);
  CHECK_THROWS_AS(Tensor::arange(0.f, 1.f, 0.f), std::invalid_argument);
  CHECK_THROWS_AS(Tensor::arange(0.f, 1.f, -1.f), std::invalid_argument);
}

TEST_CASE("tensor: from and at address elements in row-major order") {
  const Tensor t = Tensor::from({2, 3}, {0, 1, 2, 3, 4, 5});
  CHECK(t.at({1, 0}) == 3.f);
  CHECK(t.at({0, 2}) == 2.f);
  CHECK_THROWS_AS(t.at({2, 0}), std::invalid_argument);
  CHECK_THROWS_AS(t.at({0}), std::invalid_argument);
  CHECK_THROWS_AS(t.item(), std::invalid_argument);
}

TEST_CASE("tensor: randn and uniform from the same seed give the same values, other seeds differ") {
  Rng a(123), b(123), c(124);
  const Tensor ta = Tensor::randn({64}, a), tb = Tensor::randn({64}, b), tc = Tensor::randn({64}, c);
  CHECK(bitwise_equal(ta, tb));
  CHECK_FALSE(bitwise_equal(ta, tc));
  const Tensor ua = Tensor::uniform({64}, a, -2.f, 3.f), ub = Tensor::uniform({64}, b, -2.f, 3.f);
  const Tensor uc = Tensor::uniform({64}, c, -2.f, 3.f);
  CHECK(bitwise_equal(ua, ub));
  CHECK_FALSE(bitwise_equal(ua, uc));
  for (float v : ua.values()) {
    CHECK(v >= -2.f);
    CHECK(v < 3.f);
  }
}

TEST_CASE("tensor: randn has roughly the requested mean and standard deviation") {
  Rng rng(5);
  const int64_t n = 100000;
  const Tensor t = Tensor::randn({n}, rng, 2.f, 3.f);
  double s = 0, s2 = 0;
  for (float v : t.values()) {
    s += v;
    s2 += double(v) * v;
  }
  const double mean = s / n, sd = std::sqrt(s2 / n - mean * mean);
  // Standard errors: 3/sqrt(n) ~ 0.0095 for the mean, ~0.0067 for the sd; allow ~5 of them.
  CHECK(std::fabs(mean - 2.0) < 0.05);
  CHECK(std::fabs(sd - 3.0) < 0.035);
}

TEST_CASE("tensor: uniform has the mean and variance of U(lo, hi)") {
  Rng rng(6);
  const int64_t n = 100000;
  const Tensor t = Tensor::uniform({n}, rng, -1.f, 3.f);
  double s = 0, s2 = 0;
  for (float v : t.values()) {
    s += v;
    s2 += double(v) * v;
  }
  const double mean = s / n, var = s2 / n - mean * mean;
  CHECK(std::fabs(mean - 1.0) < 0.02);         // standard error ~0.0037
  CHECK(std::fabs(var - 16.0 / 12.0) < 0.02);  // (hi - lo)^2 / 12; standard error ~0.0038
}

TEST_CASE("tensor: reshape is a view sharing storage, so writes show through both") {
  Tensor t = Tensor::arange(6);
  Tensor v = t.reshape({2, 3});
  CHECK(v.shape() == Shape{2, 3});
  CHECK(v.same_storage(t));
  v.data()[4] = 40.f;
  CHECK(t.data()[4] == 40.f);
  t.data()[0] = -1.f;
  CHECK(v.at({0, 0}) == -1.f);
}

TEST_CASE("tensor: reshape infers one -1 dimension and rejects impossible shapes") {
  const Tensor t = Tensor::zeros({2, 3, 4});
  CHECK(t.reshape({-1}).shape() == Shape{24});
  CHECK(t.reshape({4, -1}).shape() == Shape{4, 6});
  CHECK(t.reshape({-1, 2, 3}).shape() == Shape{4, 2, 3});
  CHECK_THROWS_AS(t.reshape({-1, -1}), std::invalid_argument);
  CHECK_THROWS_AS(t.reshape({5, -1}), std::invalid_argument);
  CHECK_THROWS_AS(t.reshape({0, -1}), std::invalid_argument);
  CHECK_THROWS_AS(t.reshape({-2, 12}), std::invalid_argument);
  CHECK_THROWS_AS(t.reshape({5, 5}), std::invalid_argument);
}

TEST_CASE("tensor: slice(begin, end) is a view of rows begin to end-1 of dim 0") {
  Tensor t = Tensor::arange(12).reshape({4, 3});
  Tensor s = t.slice(1, 3);
  CHECK(s.shape() == Shape{2, 3});
  CHECK(s.same_storage(t));
  CHECK(values_of(s) == std::vector<float>{3, 4, 5, 6, 7, 8});
  s.data()[0] = 100.f;
  CHECK(t.at({1, 0}) == 100.f);
  // A slice of a slice, and a reshape of a slice, keep the offset.
  Tensor ss = s.slice(1, 2);
  CHECK(values_of(ss) == std::vector<float>{6, 7, 8});
  CHECK(s.reshape({6}).at({5}) == 8.f);
  CHECK(t.slice(4, 4).numel() == 0);
  CHECK_THROWS_AS(t.slice(3, 5), std::invalid_argument);
  CHECK_THROWS_AS(t.slice(2, 1), std::invalid_argument);
  CHECK_THROWS_AS(t.slice(-1, 1), std::invalid_argument);
  CHECK_THROWS_AS(Tensor::scalar(1.f).slice(0, 1), std::invalid_argument);
}

TEST_CASE("tensor: clone is a deep copy, also of a view") {
  Tensor t = Tensor::arange(6).reshape({3, 2});
  Tensor c = t.clone();
  CHECK_FALSE(c.same_storage(t));
  c.data()[0] = 9.f;
  CHECK(t.data()[0] == 0.f);
  Tensor sc = t.slice(1, 3).clone();
  CHECK(values_of(sc) == std::vector<float>{2, 3, 4, 5});
  CHECK_FALSE(Tensor().clone().defined());
}

TEST_CASE("tensor: fill and copy_from write in place, copy_from checks shape and dtype") {
  Tensor t = Tensor::zeros({2, 2});
  Tensor view = t.reshape({4});
  view.fill(7.f);
  CHECK(t.at({1, 1}) == 7.f);
  t.copy_from(Tensor::from({2, 2}, {1, 2, 3, 4}));
  CHECK(view.at({2}) == 3.f);
  CHECK_THROWS_AS(t.copy_from(Tensor::zeros({4})), std::invalid_argument);
  CHECK_THROWS_AS(t.copy_from(Tensor::zeros({2, 2}, DType::i32)), std::invalid_argument);
}

TEST_CASE("tensor: int8 and int32 tensors hold integers with the same view machinery") {
  Tensor q = Tensor::zeros({2, 4}, DType::i8);
  CHECK(q.dtype() == DType::i8);
  CHECK(q.nbytes() == 8);
  int8_t* p = q.data_as<int8_t>();
  p[0] = -128;
  p[7] = 127;
  CHECK(q.reshape({8}).data_as<int8_t>()[7] == 127);
  CHECK(q.slice(1, 2).data_as<int8_t>()[3] == 127);
  CHECK(q.clone().data_as<int8_t>()[0] == -128);

  const Tensor l = Tensor::from_i32({3}, std::vector<int32_t>{-5, 0, 1 << 30});
  CHECK(l.dtype() == DType::i32);
  CHECK(l.nbytes() == 12);
  CHECK(l.data_as<int32_t>()[2] == (1 << 30));
  CHECK(l.slice(1, 3).data_as<int32_t>()[0] == 0);
  CHECK(std::string(dtype_name(DType::i8)) == "int8");
  CHECK(dtype_size(DType::i32) == 4);
}

TEST_CASE("tensor: reading a tensor as the wrong dtype throws, naming both dtypes") {
  const Tensor q = Tensor::zeros({3}, DType::i8);
  CHECK_THROWS_WITH_AS(q.data(), doctest::Contains("int8"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(q.data(), doctest::Contains("float32"), std::invalid_argument);
  CHECK_THROWS_AS(q.data_as<int32_t>(), std::invalid_argument);
  CHECK_THROWS_AS(Tensor::zeros({2}).data_as<int8_t>(), std::invalid_argument);
  CHECK_THROWS_AS(Tensor::from_i32({1}, std::vector<int32_t>{1}).item(), std::invalid_argument);
  CHECK_THROWS_AS(Tensor().data(), std::logic_error);
}

TEST_CASE("tensor: shape_str and shape_numel") {
  CHECK(shape_str({}) == "()");
  CHECK(shape_str({3}) == "(3,)");
  CHECK(shape_str({2, 3}) == "(2, 3)");
  CHECK(shape_numel({}) == 1);
  CHECK(shape_numel({2, 0, 5}) == 0);
  CHECK_THROWS_AS(shape_numel({2, -1}), std::invalid_argument);
  CHECK_THROWS_AS(shape_numel({int64_t(1) << 40, int64_t(1) << 40}), std::invalid_argument);
  CHECK_THROWS_AS(Tensor::zeros({-3}), std::invalid_argument);
}

TEST_CASE("rng: restoring a saved state reproduces the sequence") {
  Rng rng(99);
  for (int i = 0; i < 10; ++i) rng.next_u64();
  const auto saved = rng.state();
  std::vector<float> first;
  for (int i = 0; i < 20; ++i) first.push_back(i % 2 ? rng.normal() : rng.uniform());
  const uint64_t first_u = rng.next_u64();

  Rng other(1);
  other.set_state(saved);
  std::vector<float> second;
  for (int i = 0; i < 20; ++i) second.push_back(i % 2 ? other.normal() : other.uniform());
  CHECK(first == second);
  CHECK(other.next_u64() == first_u);
  CHECK(other.state() == rng.state());
}

TEST_CASE("rng: the same seed gives the same stream, different seeds different streams") {
  Rng a(7), b(7), c(8);
  bool all_same = true, any_diff_seed_same = false;
  for (int i = 0; i < 100; ++i) {
    const uint64_t va = a.next_u64(), vb = b.next_u64(), vc = c.next_u64();
    all_same = all_same && va == vb;
    any_diff_seed_same = any_diff_seed_same || va == vc;
  }
  CHECK(all_same);
  CHECK_FALSE(any_diff_seed_same);
}

TEST_CASE("rng: below(n) returns each of 0 to n-1 and nothing else") {
  Rng rng(3);
  for (uint64_t n : {uint64_t(1), uint64_t(2), uint64_t(3), uint64_t(7), uint64_t(1000), uint64_t(1) << 63,
                     ~uint64_t(0)}) {
    CAPTURE(n);
    bool in_range = true;
    for (int i = 0; i < 2000; ++i) in_range = in_range && rng.below(n) < n;
    CHECK(in_range);
  }
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 70000; ++i) ++counts[rng.below(7)];
  for (int c : counts) CHECK(std::abs(c - 10000) < 500);  // standard deviation ~93
}

TEST_CASE("rng: uniform(lo, hi) includes lo and never reaches hi") {
  Rng rng(4);
  bool ok = true;
  for (int i = 0; i < 100000; ++i) {
    const float u = rng.uniform(), v = rng.uniform(-3.f, -1.f);
    ok = ok && u >= 0.f && u < 1.f && v >= -3.f && v < -1.f;
  }
  CHECK(ok);
}
