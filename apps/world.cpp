#include "apps/world.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/check.h"

#if CRAYON_MPI
#include <mpi.h>
#endif

namespace crayon {

World& world() {
  static World w;
  return w;
}

std::string rank_label() { return world().mpi() ? str("(rank ", world().rank(), " of ", world().size(), ")") : ""; }

int World::default_threads() const {
  return std::max(1, int(std::thread::hardware_concurrency()) / std::max(1, local_size_));
}

void World::distribute(int64_t n, const std::function<std::string(int64_t)>& work,
                       const std::function<void(const std::string&)>& deliver) {
  if (!mpi()) {
    for (int64_t i = 0; i < n; ++i) deliver(work(i));
    return;
  }
  distribute_mpi(n, work, deliver);
}

void World::abort(int code) {
  std::fflush(nullptr);
#if CRAYON_MPI
  if (mpi()) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

#if CRAYON_MPI

namespace {

bool launched_as_rank() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

bool g_started = false;
MPI_Comm g_work = MPI_COMM_NULL;  // distribute()'s messages, apart from all other traffic

int count_of(size_t n) {
  if (n > size_t(INT_MAX)) throw std::length_error(str("MPI message of ", n, " elements (at most ", INT_MAX, ")"));
  return int(n);
}

// Waits for a request without the busy polling of a blocking MPI call, which would take a
// core from the ranks (and rank 0's worker thread) still computing.
void wait_quietly(MPI_Request& req) {
  for (int done = 0;;) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (done) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace

WorldSession::WorldSession(int& argc, char**& argv) {
  if (!launched_as_rank()) return;
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  g_started = true;
  // distribute() runs work on a second thread of rank 0 while the first makes the MPI calls.
  if (provided < MPI_THREAD_FUNNELED) {
    std::fprintf(stderr, "crayon: this MPI library provides thread level %d, crayon needs MPI_THREAD_FUNNELED (%d)\n",
                 provided, MPI_THREAD_FUNNELED);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Comm_dup(MPI_COMM_WORLD, &g_work);
  World& w = world();
  MPI_Comm_rank(MPI_COMM_WORLD, &w.rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &w.size_);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
  MPI_Comm_size(local, &w.local_size_);
  MPI_Comm_free(&local);
}

WorldSession::~WorldSession() {
  if (!g_started) return;
  MPI_Comm_free(&g_work);
  MPI_Finalize();
}

void World::sum(std::span<double> v) {
  if (mpi()) MPI_Allreduce(MPI_IN_PLACE, v.data(), count_of(v.size()), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
void World::sum(std::span<float> v) {
  if (mpi()) MPI_Allreduce(MPI_IN_PLACE, v.data(), count_of(v.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
void World::min(std::span<float> v) {
  if (mpi()) MPI_Allreduce(MPI_IN_PLACE, v.data(), count_of(v.size()), MPI_FLOAT, MPI_MIN, MPI_COMM_WORLD);
}
void World::max(std::span<float> v) {
  if (mpi()) MPI_Allreduce(MPI_IN_PLACE, v.data(), count_of(v.size()), MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD);
}
void World::broadcast(std::span<std::byte> bytes, int root) {
  if (mpi()) MPI_Bcast(bytes.data(), count_of(bytes.size()), MPI_BYTE, root, MPI_COMM_WORLD);
}

void World::barrier() {
  if (!mpi()) return;
  MPI_Request req;
  MPI_Ibarrier(MPI_COMM_WORLD, &req);
  wait_quietly(req);
}

void World::distribute_mpi(int64_t n, const std::function<std::string(int64_t)>& work,
                           const std::function<void(const std::string&)>& deliver) {
  // Rank r != 0 sends kAsk ("F" first, then "R" + the result of its last item) and gets back
  // the next item (kItem: an int64, -1 when none is left).
  constexpr int kAsk = 1, kItem = 2;
  if (!is_root()) {
    std::string message = "F";
    while (true) {
      MPI_Send(message.data(), count_of(message.size()), MPI_CHAR, 0, kAsk, g_work);
      int64_t i = -1;
      MPI_Request req;
      MPI_Irecv(&i, 1, MPI_INT64_T, 0, kItem, g_work, &req);
      wait_quietly(req);
      if (i < 0) break;
      const std::string result = work(i);
      message.assign(1, 'R');
      message.append(result);
    }
    barrier();  // no rank asks for the next phase's items before rank 0 is there
    return;
  }
  std::atomic<int64_t> next{0};
  std::atomic<bool> local_done{false};
  std::mutex mu;
  std::vector<std::string> local_results;
  std::exception_ptr failure;
  std::thread worker([&] {
    try {
      for (int64_t i; (i = next++) < n;) {
        std::string r = work(i);
        std::lock_guard<std::mutex> lock(mu);
        local_results.push_back(std::move(r));
      }
    } catch (...) {
      failure = std::current_exception();
    }
    local_done = true;
  });
  try {
    int asking = size_ - 1;  // ranks that have not been told "none left"
    while (asking > 0 || !local_done) {
      bool idle = true;
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, kAsk, g_work, &flag, &st);
      if (flag) {
        int len = 0;
        MPI_Get_count(&st, MPI_CHAR, &len);
        std::string message(size_t(len), '\0');
        MPI_Recv(message.data(), len, MPI_CHAR, st.MPI_SOURCE, kAsk, g_work, MPI_STATUS_IGNORE);
        if (!message.empty() && message[0] == 'R') deliver(std::string(message.begin() + 1, message.end()));
        int64_t i = next++;
        if (i >= n) i = -1, --asking;
        MPI_Send(&i, 1, MPI_INT64_T, st.MPI_SOURCE, kItem, g_work);
        idle = false;
      }
      std::vector<std::string> mine;
      {
        std::lock_guard<std::mutex> lock(mu);
        mine.swap(local_results);
      }
      for (const std::string& r : mine) deliver(r), idle = false;
      if (local_done && failure) std::rethrow_exception(failure);
      if (idle) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  } catch (const std::exception& e) {
    // The worker still uses this frame and the caller's: end the job here, not by unwinding.
    std::fprintf(stderr, "crayon %s: %s\n", rank_label().c_str(), one_line(e.what()).c_str());
    abort(1);
  }
  worker.join();
  if (failure) std::rethrow_exception(failure);
  for (const std::string& r : local_results) deliver(r);
  barrier();
}

#else  // a world of one

WorldSession::WorldSession(int&, char**&) {}
WorldSession::~WorldSession() {}
void World::sum(std::span<double>) {}
void World::sum(std::span<float>) {}
void World::min(std::span<float>) {}
void World::max(std::span<float>) {}
void World::broadcast(std::span<std::byte>, int) {}
void World::barrier() {}
void World::distribute_mpi(int64_t, const std::function<std::string(int64_t)>&,
                           const std::function<void(const std::string&)>&) {}

#endif

}  // namespace crayon
