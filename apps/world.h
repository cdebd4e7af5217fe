#pragma once
// The processes one crayon job runs as: a single process, or the ranks of an MPI job
// (`mpirun -np N crayon train|sweep ...` with a build configured -DCRAYON_MPI=ON). MPI is
// started only in a process a launcher started as a rank (mpirun / srun set its rank in the
// environment); every other run, and every run of the default build, is a world of one.
//
// World is the core/replicas.h transport for data-parallel training (MPI_Allreduce,
// MPI_Bcast on MPI_COMM_WORLD) and runs the sweep's dynamic assignment (distribute). The
// MPI calls are made by the thread that started MPI alone (MPI_THREAD_FUNNELED).
#include <cstdint>
#include <functional>
#include <string>

#include "core/replicas.h"

namespace crayon {

class World final : public Replicas {
 public:
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const { return local_size_; }  // ranks on this machine
  bool is_root() const { return rank_ == 0; }
  bool mpi() const { return size_ > 1; }
  // Threads per rank unless --threads says otherwise: the machine's cores over its ranks.
  int default_threads() const;

  void sum(std::span<double> v) override;
  void sum(std::span<float> v) override;
  void min(std::span<float> v) override;
  void max(std::span<float> v) override;
  void broadcast(std::span<std::byte> bytes, int root) override;
  void barrier();

  // Runs work(i) for every i in [0, n) over all ranks, dynamically: a rank that finishes asks
  // rank 0 for the next i nobody has taken, so a slow item does not idle the others. On rank
  // 0 one thread does its share of the work while the calling thread hands out items and
  // passes every item's result (work's return value, from any rank) to deliver(), one at a
  // time in order of completion. Returns when every item is done on every rank.
  void distribute(int64_t n, const std::function<std::string(int64_t)>& work,
                  const std::function<void(const std::string&)>& deliver);

  // Ends every rank of the job with this exit code (MPI_Abort); alone, exits.
  [[noreturn]] void abort(int code);

 private:
  friend class WorldSession;
  void distribute_mpi(int64_t n, const std::function<std::string(int64_t)>& work,
                      const std::function<void(const std::string&)>& deliver);
  int rank_ = 0, size_ = 1, local_size_ = 1;
};

// The world of this process (a world of one until a WorldSession starts MPI).
World& world();

// main()'s: starts MPI if this process is a launched rank of an MPI build, finalizes it at
// the end. "(rank R of N)" for messages, empty alone.
class WorldSession {
 public:
  WorldSession(int& argc, char**& argv);
  ~WorldSession();
  WorldSession(const WorldSession&) = delete;
  WorldSession& operator=(const WorldSession&) = delete;
};
std::string rank_label();

}  // namespace crayon
