#pragma once
#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "nn/module.h"

namespace crayon {

struct EvalResult {
  int64_t n = 0;
  double loss = 0;      // mean cross-entropy, nats
  double accuracy = 0;  // fraction correct
  std::vector<int64_t> class_correct, class_total;
};

// Index of the largest logit of each row of (B, C) logits (the first on ties).
std::vector<int32_t> predictions(const Tensor& logits);

// The model in eval mode over the whole dataset, without recording a graph.
EvalResult evaluate(Module& model, const Dataset& data, const ChannelStats& norm, int64_t batch_size = 1000);

}  // namespace crayon
