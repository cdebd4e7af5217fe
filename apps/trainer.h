#pragma once
// The training driver behind `crayon train`: data -> model -> loss -> backward ->
// regularizer -> clip -> optimizer step, an evaluation and an atomic checkpoint after every
// epoch, one log row per epoch. Kept out of main() so tests can run it in-process.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "apps/train_config.h"
#include "core/replicas.h"
#include "nn/module.h"

namespace crayon {

struct TrainRun {
  TrainConfig config;
  std::string out = "model.h5";  // checkpoint path, rewritten after every epoch
  std::string resume;            // continue from this checkpoint
  std::string log;               // per-epoch log: .csv, or .jsonl / .json
  bool quiet = false;
  bool detect_anomaly = false;  // check every op's output and gradient for NaN / Inf (core/anomaly.h)
  int threads = 2;
  int64_t stop_after = 0;  // return after this many epochs of this call (0: run to the end);
                           // stands in for an interruption in tests
  // Data-parallel peers (apps/world.h, mpirun): every batch of config.batch_size is split
  // over them, gradients summed after backward (optim/data_parallel.h), batch norm, the
  // observers and the per-element random draws synchronized (core/replicas.h); rank 0 alone
  // writes the checkpoint and the log and shows progress. nullptr or a size of 1: alone. The
  // result is the same for any size up to float summation order, so a checkpoint resumes
  // with any number of ranks.
  Replicas* replicas = nullptr;
};

struct EpochRecord {
  int64_t epoch = 0, step = 0;
  double lr = 0, train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0;
  double val_loss = -1, val_acc = -1;  // -1: no validation split
  double data_bits = 0, model_bits = 0, grad_norm = 0;
  double seconds = 0, images_per_s = 0;
};

// Weights the priors apply to: matrices and kernels, not biases or batch-norm scales.
std::vector<Variable> prior_weights(const Module& m);

// The weights' description length in bits (DESIGN.md idea 1) under the prior training used
// (--l1 / --l2 with strength n * lambda for n training examples; without either, a Gaussian
// with sigma fitted to the weights), each weight to precision 2^-8 (optim/regularizer.h).
double prior_bits(const TrainConfig& c, const std::vector<Variable>& weights, int64_t n);

// Throws std::runtime_error / std::invalid_argument with a one-line message on bad input
// or a non-finite loss (naming the epoch and step; the last checkpoint is left intact).
std::vector<EpochRecord> run_training(const TrainRun& run);

}  // namespace crayon
