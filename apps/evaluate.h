#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "nn/module.h"
#include "quant/int8/model.h"

namespace crayon {

struct EvalResult {
  int64_t n = 0;
  double loss = 0;      // mean cross-entropy, nats
  double accuracy = 0;  // fraction correct
  std::vector<int64_t> class_correct, class_total;
};

// Throws std::invalid_argument unless logits are (batch, classes): a model whose last
// layer does not give one logit per class of the dataset cannot be scored on it.
void check_logits(const Shape& logits, int64_t batch, int64_t classes);

// Index of the largest logit of each row of (B, C) logits (the first on ties).
std::vector<int32_t> predictions(const Tensor& logits);

// The model in eval mode over the whole dataset, without recording a graph. all_logits, if
// given, receives every example's logits (N, classes) in dataset order.
EvalResult evaluate(Module& model, const Dataset& data, const ChannelStats& norm, int64_t batch_size = 1000,
                    Tensor* all_logits = nullptr);

// The integer engine over the whole dataset, from its raw pixels (the model's input table
// does the normalization and the input quantization); batches are capped at
// model.largest_batch().
EvalResult evaluate(const Int8Model& model, const Dataset& data, int64_t batch_size = 1000,
                    Tensor* all_logits = nullptr);

// Every example's outputs, one row each in dataset order: index, label, prediction (the first
// largest logit) and the logits (N, classes). path ending in .csv: a CSV with a header
// (index,label,prediction,logit_0,...); anything else: HDF5 datasets index, label,
// prediction (int32 (N,)) and logits (float32 (N, classes)), with root attributes
// `source` and `kind` (what produced them). Written atomically, like every file crayon writes.
void save_logits(const std::string& path, const Tensor& logits, std::span<const int32_t> labels,
                 const std::string& source, const std::string& kind);

}  // namespace crayon
