#include "apps/evaluate.h"

#include <cmath>
#include <cstring>

#include "core/check.h"
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

void check_logits(const Shape& logits, int64_t batch, int64_t classes) {
  if (logits != Shape{batch, classes})
    throw std::invalid_argument(str("the model outputs ", shape_str(logits), " for a batch of ", batch,
                                    " images, but the dataset has ", classes, " classes (expected (", batch, ", ",
                                    classes, "): one logit per class)"));
}

namespace {

// Accuracy, loss and per-class counts over consecutive batches of logits; optionally keeps
// every row of logits.
class Tally {
 public:
  Tally(const Dataset& data, Tensor* all_logits) : classes_(data.num_classes()), all_(all_logits) {
    r_.class_correct.assign(size_t(data.num_classes()), 0);
    r_.class_total.assign(size_t(data.num_classes()), 0);
    if (all_) *all_ = Tensor::empty({data.size(), data.num_classes()});
  }
  void add(const Tensor& logits, const Tensor& labels) {
    const int64_t n = labels.numel();
    check_logits(logits.shape(), n, classes_);
    loss_sum_ += double(cross_entropy(Variable(logits), labels).item()) * double(n);
    const std::vector<int32_t> pred = predictions(logits);
    const int32_t* y = labels.data_as<int32_t>();
    for (int64_t i = 0; i < n; ++i) {
      r_.class_total[size_t(y[i])]++;
      if (pred[size_t(i)] == y[i]) r_.class_correct[size_t(y[i])]++;
    }
    if (all_) std::memcpy(all_->data() + r_.n * logits.size(1), logits.data(), logits.nbytes());
    r_.n += n;
  }
  EvalResult finish() {
    int64_t correct = 0;
    for (int64_t c : r_.class_correct) correct += c;
    r_.loss = r_.n ? loss_sum_ / double(r_.n) : 0.0;
    r_.accuracy = r_.n ? double(correct) / double(r_.n) : 0.0;
    return r_;
  }

 private:
  EvalResult r_;
  double loss_sum_ = 0;
  int64_t classes_;
  Tensor* all_;
};

}  // namespace

EvalResult evaluate(Module& model, const Dataset& data, const ChannelStats& norm, int64_t batch_size,
                    Tensor* all_logits) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  DataLoader loader(data, {.batch_size = batch_size, .shuffle = false, .norm = norm});
  Tally tally(data, all_logits);
  Batch b;
  while (loader.next(b)) tally.add(model(Variable(b.images)).value(), b.labels);
  model.train(was_training);
  return tally.finish();
}

EvalResult evaluate(const Int8Model& model, const Dataset& data, int64_t batch_size, Tensor* all_logits) {
  const Shape image{data.channels(), data.height(), data.width()};
  if (image != model.input_shape)
    throw std::invalid_argument(str("the int8 model takes ", shape_str(model.input_shape), " images, the data has ",
                                    shape_str(image)));
  check_logits({1, model.num_classes()}, 1, data.num_classes());
  batch_size = std::min(batch_size, model.largest_batch());
  Tally tally(data, all_logits);
  for (int64_t begin = 0; begin < data.size(); begin += batch_size) {
    const int64_t n = std::min(batch_size, data.size() - begin);
    const Tensor q = model.quantize_images(data.image(begin), n);
    tally.add(model.forward(q), Tensor::from_i32({n}, data.labels().subspan(size_t(begin), size_t(n))));
  }
  return tally.finish();
}

}  // namespace crayon
