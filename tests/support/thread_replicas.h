#pragma once
// Data-parallel replicas inside one test process: n threads, one Replicas each, whose
// reductions meet at a barrier (the rank order of the contributions fixed, as in MPI). For
// the core/replicas.h users' tests without mpirun; each thread runs its replica's step. The
// tests set crayon's pool to one thread first (ThreadCount), so no two threads share it.
#include <barrier>
#include <functional>
#include <span>
#include <thread>
#include <vector>

#include "core/replicas.h"

namespace crayon::test {

class ThreadReplicas {
 public:
  explicit ThreadReplicas(int n) : n_(n), slots_(size_t(n)), sync_(n) {
    for (int r = 0; r < n; ++r) members_.emplace_back(this, r);
  }
  // Runs step(replicas, rank) on n threads, each with its ReplicaScope, and waits for all.
  void run(const std::function<void(Replicas&, int)>& step) {
    std::vector<std::thread> threads;
    for (int r = 0; r < n_; ++r)
      threads.emplace_back([&, r] {
        ReplicaScope scope(&members_[size_t(r)]);
        step(members_[size_t(r)], r);
      });
    for (std::thread& t : threads) t.join();
  }

 private:
  struct Member final : Replicas {
    Member(ThreadReplicas* g, int r) : g(g), r(r) {}
    int rank() const override { return r; }
    int size() const override { return g->n_; }
    void sum(std::span<double> v) override { g->reduce(r, v, [](double a, double b) { return a + b; }); }
    void sum(std::span<float> v) override { g->reduce(r, v, [](float a, float b) { return a + b; }); }
    void min(std::span<float> v) override { g->reduce(r, v, [](float a, float b) { return a < b ? a : b; }); }
    void max(std::span<float> v) override { g->reduce(r, v, [](float a, float b) { return a > b ? a : b; }); }
    void broadcast(std::span<std::byte> bytes, int root) override {
      g->reduce(r, bytes, [this, root](std::byte, std::byte) { return std::byte{}; }, root);
    }
    ThreadReplicas* g;
    int r;
  };

  // Every member's v replaced by op folded over the members' values in rank order (or, with
  // root >= 0, by member root's values).
  template <class T, class Op>
  void reduce(int r, std::span<T> v, Op op, int root = -1) {
    slots_[size_t(r)] = v.data();
    sync_.arrive_and_wait();  // every member's input is there
    std::vector<T> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      if (root >= 0) {
        out[i] = static_cast<const T*>(slots_[size_t(root)])[i];
        continue;
      }
      T acc = static_cast<const T*>(slots_[0])[i];
      for (int k = 1; k < n_; ++k) acc = op(acc, static_cast<const T*>(slots_[size_t(k)])[i]);
      out[i] = acc;
    }
    sync_.arrive_and_wait();  // everyone has read every input
    std::copy(out.begin(), out.end(), v.begin());
  }

  int n_;
  std::vector<const void*> slots_;
  std::barrier<> sync_;
  std::vector<Member> members_;
};

}  // namespace crayon::test
