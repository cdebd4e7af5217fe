#include "apps/evaluate.h"

#include <cmath>

#include "core/ops.h"

namespace crayon {

std::vector<int32_t> predictions(const Tensor& logits) {
  const int64_t B = logits.size(0), C = logits.size(1);
  const float* p = logits.data();
  std::vector<int32_t> out(size_t(B), 0);
  for (int64_t i = 0; i < B; ++i)
    for (int64_t c = 1; c < C; ++c)
      if (p[i * C + c] > p[i * C + out[size_t(i)]]) out[size_t(i)] = int32_t(c);
  return out;
}

EvalResult evaluate(Module& model, const Dataset& data, const ChannelStats& norm, int64_t batch_size) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  DataLoader loader(data, {.batch_size = batch_size, .shuffle = false, .norm = norm});
  EvalResult r;
  r.class_correct.assign(size_t(data.num_classes()), 0);
  r.class_total.assign(size_t(data.num_classes()), 0);
  double loss_sum = 0;
  Batch b;
  while (loader.next(b)) {
    Variable logits = model(Variable(b.images));
    loss_sum += double(cross_entropy(logits, b.labels).item()) * double(b.size());
    const std::vector<int32_t> pred = predictions(logits.value());
    const int32_t* y = b.labels.data_as<int32_t>();
    for (int64_t i = 0; i < b.size(); ++i) {
      r.class_total[size_t(y[i])]++;
      if (pred[size_t(i)] == y[i]) r.class_correct[size_t(y[i])]++;
    }
    r.n += b.size();
  }
  int64_t correct = 0;
  for (int64_t c : r.class_correct) correct += c;
  r.loss = r.n ? loss_sum / double(r.n) : 0.0;
  r.accuracy = r.n ? double(correct) / double(r.n) : 0.0;
  model.train(was_training);
  return r;
}

}  // namespace crayon
