#include "core/parallel.h"

#include <cblas.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace crayon {

namespace {

class Pool {
 public:
  ~Pool() { resize(0); }

  int size() const { return int(workers_.size()) + 1; }

  void resize(int workers) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      ++generation_;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    for (int i = 0; i < workers; ++i) workers_.emplace_back([this, i] { loop(i + 1); });
  }

  void run(int parts, const std::function<void(int)>& job) {
    std::unique_lock<std::mutex> lock(mu_);
    job_ = &job;
    parts_ = parts;
    pending_ = parts - 1;
    error_ = nullptr;
    ++generation_;
    lock.unlock();
    cv_.notify_all();
    std::exception_ptr mine;
    try {
      job(0);
    } catch (...) {
      mine = std::current_exception();
    }
    lock.lock();
    done_cv_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
    if (mine) std::rethrow_exception(mine);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void loop(int index) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (!job_ || index >= parts_) continue;
      const auto* job = job_;
      lock.unlock();
      try {
        (*job)(index);
      } catch (...) {
        std::lock_guard<std::mutex> g(mu_);
        if (!error_) error_ = std::current_exception();
      }
      lock.lock();
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int)>* job_ = nullptr;
  int parts_ = 0, pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool p;
  return p;
}
int g_threads = 1;
std::mutex g_run_mu;  // one parallel_for at a time; nested calls run inline
thread_local bool t_inside = false;

}  // namespace

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("thread count must be >= 1, got " + std::to_string(n));
  openblas_set_num_threads(n);
  std::lock_guard<std::mutex> lock(g_run_mu);
  pool().resize(n - 1);
  g_threads = n;
}

int num_threads() { return g_threads; }

namespace {
int run_parts(int64_t n, int64_t parts, const std::function<void(int, int64_t, int64_t)>& f) {
  if (n <= 0) return 0;
  if (parts <= 1 || t_inside) {
    f(0, 0, n);
    return 1;
  }
  std::lock_guard<std::mutex> lock(g_run_mu);
  const std::function<void(int)> job = [&](int part) {
    struct Inside {
      Inside() { t_inside = true; }
      ~Inside() { t_inside = false; }
    } inside;
    const int64_t begin = n * part / parts, end = n * (part + 1) / parts;
    if (begin < end) f(part, begin, end);
  };
  pool().run(int(parts), job);
  return int(parts);
}

int64_t part_count(int64_t n, int64_t min_per_thread) {
  return std::min<int64_t>(g_threads, n / std::max<int64_t>(1, min_per_thread));
}
}  // namespace

void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& f, int64_t min_per_thread) {
  run_parts(n, part_count(n, min_per_thread), [&](int, int64_t b, int64_t e) { f(b, e); });
}

int parallel_parts(int64_t n, const std::function<void(int, int64_t, int64_t)>& f, int64_t min_per_thread) {
  return run_parts(n, part_count(n, min_per_thread), f);
}



SingleThreadedBlas::SingleThreadedBlas() {
  if (g_threads > 1) openblas_set_num_threads(1);
}
SingleThreadedBlas::~SingleThreadedBlas() {
  if (g_threads > 1) openblas_set_num_threads(g_threads);
}

}  // namespace crayon
