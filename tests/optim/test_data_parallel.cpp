// optim/data_parallel.h: the bucketed gradient sum and the broadcast, over replicas as
// threads (tests/support/thread_replicas.h).
#include <doctest/doctest.h>

#include <vector>

#include "optim/data_parallel.h"
#include "tests/support/thread_replicas.h"
#include "tests/support/threads.h"

using namespace crayon;

TEST_CASE("data parallel: gradients are summed over 3 replicas in any bucket size and parameters without one are skipped") {
  ThreadCount one(1);
  const std::vector<Shape> shapes{{4, 3}, {3}, {7}, {2, 2}};
  // Replica r's gradient of parameter p, element i: (r + 1) * (p * 100 + i); parameter 3 has
  // none (on every replica, as the same graph gives).
  auto grad_of = [](int r, size_t p, int64_t n) {
    std::vector<float> g(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) g[size_t(i)] = float(r + 1) * float(int64_t(p) * 100 + i);
    return g;
  };
  for (int64_t bucket : {int64_t(1), int64_t(5), int64_t(12), int64_t(1) << 20}) {
    CAPTURE(bucket);
    std::vector<std::vector<Variable>> params(3);
    std::vector<GradientSync> syncs(3, GradientSync{.bucket_floats = bucket});
    test::ThreadReplicas replicas(3);
    replicas.run([&](Replicas& rep, int r) {
      for (size_t p = 0; p < shapes.size(); ++p) {
        Variable v(Tensor::zeros(shapes[p]), true);
        if (p < 3) v.add_grad(Tensor::from(shapes[p], grad_of(r, p, shape_numel(shapes[p]))));
        params[size_t(r)].push_back(v);
      }
      sum_gradients(params[size_t(r)], rep, syncs[size_t(r)]);
    });
    for (int r = 0; r < 3; ++r) {
      for (size_t p = 0; p < 3; ++p) {
        REQUIRE(params[size_t(r)][p].has_grad());
        const int64_t n = shape_numel(shapes[p]);
        const std::vector<float> want = grad_of(5, p, n);  // (1 + 2 + 3) x = (5 + 1) x
        const std::span<const float> got = params[size_t(r)][p].grad().values();
        CHECK(std::vector<float>(got.begin(), got.end()) == want);
      }
      CHECK_FALSE(params[size_t(r)][3].has_grad());
      CHECK(syncs[size_t(r)].floats_per_step == 12 + 3 + 7);
      // Buckets hold whole gradients: at most bucket floats unless one gradient alone is larger.
      CHECK(syncs[size_t(r)].buckets_per_step == (bucket == 1 ? 3 : bucket == 5 ? 3 : bucket == 12 ? 2 : 1));
    }
  }
}

TEST_CASE("data parallel: broadcast_tensors gives every replica rank 0's float and integer tensors") {
  ThreadCount one(1);
  std::vector<std::vector<Tensor>> mine(2);
  test::ThreadReplicas replicas(2);
  replicas.run([&](Replicas& rep, int r) {
    mine[size_t(r)] = {Tensor::full({5}, float(r + 1)), Tensor::from_i32({2}, std::vector<int32_t>{r * 10, r * 20}),
                       Tensor::zeros({0})};
    broadcast_tensors(mine[size_t(r)], rep);
  });
  for (int r = 0; r < 2; ++r) {
    CHECK(mine[size_t(r)][0].at({4}) == 1.f);
    CHECK(mine[size_t(r)][1].data_as<int32_t>()[0] == 0);
    CHECK(mine[size_t(r)][1].data_as<int32_t>()[1] == 0);
  }
}
