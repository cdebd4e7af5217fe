// core/replicas.h: batch norm over data-parallel replicas computes what one process does on
// the whole batch (replicas as threads: tests/support/thread_replicas.h).
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/ops.h"
#include "core/replicas.h"
#include "tests/support/thread_replicas.h"
#include "tests/support/threads.h"

using namespace crayon;

namespace {

float max_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.numel() == b.numel());
  float d = 0;
  for (int64_t i = 0; i < a.numel(); ++i) d = std::max(d, std::fabs(a.data()[i] - b.data()[i]));
  return d;
}

}  // namespace

TEST_CASE("replicas: batch norm over 2 unequal shards gives the whole batch's output and gradients and statistics") {
  ThreadCount one(1);
  Rng rng(7);
  const int64_t B = 6, C = 3, H = 5, W = 5;
  const Tensor x = Tensor::randn({B, C, H, W}, rng, 2.f, 3.f), dy = Tensor::randn({B, C, H, W}, rng);
  const Tensor g0 = Tensor::uniform({C}, rng, 0.5f, 1.5f), b0 = Tensor::randn({C}, rng);

  struct Result {
    Tensor y, dx, dgamma, dbeta, mean, var;
  };
  auto step = [&](int64_t lo, int64_t hi) {
    Variable xv(x.slice(lo, hi).clone(), true), g(g0.clone(), true), b(b0.clone(), true);
    Result r{Tensor(), Tensor(), Tensor(), Tensor(), Tensor::zeros({C}), Tensor::ones({C})};
    Variable y = batch_norm(xv, g, b, r.mean, r.var, true, 0.1f, 1e-5f);
    y.backward(dy.slice(lo, hi).clone());
    r.y = y.value(), r.dx = xv.grad(), r.dgamma = g.grad(), r.dbeta = b.grad();
    return r;
  };
  const Result whole = step(0, B);

  const int64_t cut[3] = {0, 2, B};
  std::vector<Result> part(2);
  test::ThreadReplicas replicas(2);
  replicas.run([&](Replicas&, int r) { part[size_t(r)] = step(cut[r], cut[r + 1]); });

  for (int r = 0; r < 2; ++r) {
    CHECK(max_diff(part[size_t(r)].y, whole.y.slice(cut[r], cut[r + 1])) < 1e-5f);
    CHECK(max_diff(part[size_t(r)].dx, whole.dx.slice(cut[r], cut[r + 1])) < 1e-5f);
    CHECK(max_diff(part[size_t(r)].mean, whole.mean) < 1e-6f);
    CHECK(max_diff(part[size_t(r)].var, whole.var) < 1e-5f);
  }
  // The parameters' gradients stay each shard's own: their sum (what the gradient sum after
  // backward makes of them) is the whole batch's.
  for (int64_t c = 0; c < C; ++c) {
    CHECK(part[0].dgamma.data()[c] + part[1].dgamma.data()[c] == doctest::Approx(whole.dgamma.data()[c]).epsilon(1e-5));
    CHECK(part[0].dbeta.data()[c] + part[1].dbeta.data()[c] == doctest::Approx(whole.dbeta.data()[c]).epsilon(1e-5));
  }
  // Without the replicas each shard normalizes by its own statistics: far from the whole's.
  const Result alone = step(0, 2);
  CHECK(max_diff(alone.y, whole.y.slice(0, 2)) > 1e-2f);
}

TEST_CASE("replicas: none is active outside a scope and scopes nest") {
  CHECK(active_replicas() == nullptr);
  test::ThreadReplicas replicas(1);
  replicas.run([](Replicas& r, int) {
    CHECK(active_replicas() == &r);
    {
      ReplicaScope off(nullptr);
      CHECK(active_replicas() == nullptr);
    }
    CHECK(active_replicas() == &r);
  });
  CHECK(active_replicas() == nullptr);
}
