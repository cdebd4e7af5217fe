// Train lenet5 on the 8-bit grid (QAT) on MNIST with the libraries alone, export it to int8
// and run the integer engine on the test set.   usage: qat_lenet5 MNIST_DIR [TRAIN_IMAGES]
#include <cstdio>
#include <cstdlib>

#include "data/data.h"
#include "optim/optim.h"
#include "quant/quant.h"

using namespace crayon;

int main(int argc, char** argv) {
  if (argc < 2) return std::fprintf(stderr, "usage: qat_lenet5 MNIST_DIR [TRAIN_IMAGES]\n"), 2;
  Dataset train = load_dataset("mnist", true, argv[1]);
  if (argc > 2) train = train.slice(0, std::atoll(argv[2]));
  const Dataset test = load_dataset("mnist", false, argv[1]);
  Rng rng(1);
  auto model = build_model("lenet5", {1, 28, 28}, rng);
  prepare_qat(*model, QatConfig{});  // W8A8: weights per output channel, activations per tensor
  SGD opt(model->parameters(), {.lr = 0.05f, .momentum = 0.9f});
  DataLoader loader(train, {.batch_size = 64, .shuffle = true, .seed = 1, .norm = mnist_stats()});
  for (Batch b; loader.next(b);) {
    opt.zero_grad();
    cross_entropy((*model)(Variable(b.images)), b.labels).backward();
    opt.step();
  }
  model->eval();
  const Int8Model int8 = export_int8(*model, {1, 28, 28}, mnist_stats());
  save_int8(int8, "lenet5.int8.h5");
  const Tensor logits = int8.forward(int8.quantize_images(test.image(0), test.size()));  // (N, 10)
  int64_t correct = 0;
  for (int64_t i = 0; i < test.size(); ++i) {
    int best = 0;
    for (int c = 1; c < 10; ++c) best = logits.data()[i * 10 + c] > logits.data()[i * 10 + best] ? c : best;
    correct += best == test.labels()[size_t(i)];
  }
  std::printf("lenet5.int8.h5 (int8 engine) on %lld MNIST test images: accuracy %.2f%%\n", (long long)test.size(),
              100.0 * double(correct) / double(test.size()));
}
