#include "apps/evaluate.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "core/atomic_file.h"
#include "core/check.h"
#include "core/h5io.h"
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
  release_cached_blocks();  // the caller's blocks (a training step's) fit no evaluation batch
  while (loader.next(b)) tally.add(model(Variable(b.images)).value(), b.labels);
  release_cached_blocks();
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

void save_logits(const std::string& path, const Tensor& logits, std::span<const int32_t> labels,
                 const std::string& source, const std::string& kind) {
  const int64_t n = int64_t(labels.size());
  if (logits.ndim() != 2 || logits.size(0) != n)
    throw std::invalid_argument(str(path, ": expected logits for ", n, " examples, got ", shape_str(logits.shape())));
  const int64_t classes = logits.size(1);
  const std::vector<int32_t> pred = predictions(logits);
  if (path.ends_with(".csv")) {
    std::ostringstream f;
    f << "index,label,prediction";
    for (int64_t c = 0; c < classes; ++c) f << ",logit_" << c;
    f << "\n";
    char buf[32];
    for (int64_t i = 0; i < n; ++i) {
      f << i << ',' << labels[size_t(i)] << ',' << pred[size_t(i)];
      for (int64_t c = 0; c < classes; ++c) {
        std::snprintf(buf, sizeof buf, ",%.9g", double(logits.data()[i * classes + c]));  // round-trips float32
        f << buf;
      }
      f << '\n';
    }
    write_file_atomic(path, f.str());  // complete or not at all
    return;
  }
  std::vector<int32_t> index(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) index[size_t(i)] = int32_t(i);
  H5Writer w(path);
  w.set_attr("/", "source", source);
  w.set_attr("/", "kind", kind);
  w.write_tensor("index", Tensor::from_i32({n}, index));
  w.write_tensor("label", Tensor::from_i32({n}, labels));
  w.write_tensor("prediction", Tensor::from_i32({n}, pred));
  w.write_tensor("logits", logits);
  w.commit();
}

}  // namespace crayon
