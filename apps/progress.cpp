#include "apps/progress.h"

#include <unistd.h>

#include <cstdio>

namespace crayon {

ProgressBar::ProgressBar(bool quiet) : quiet_(quiet), tty_(!quiet && isatty(STDERR_FILENO)) {}

void ProgressBar::start_epoch(int64_t epoch, int64_t epochs, int64_t batches) {
  epoch_ = epoch;
  epochs_ = epochs;
  batches_ = batches;
  start_ = std::chrono::steady_clock::now();
  last_draw_ = start_ - std::chrono::seconds(1);
}

void ProgressBar::update(int64_t batch, int64_t images, double running_loss, double running_acc) {
  if (!tty_) return;
  const auto now = std::chrono::steady_clock::now();
  if (batch < batches_ && now - last_draw_ < std::chrono::milliseconds(200)) return;
  last_draw_ = now;
  const double s = std::chrono::duration<double>(now - start_).count();
  const double rate = s > 0 ? double(images) / s : 0.0;
  const double eta = batch > 0 ? s / double(batch) * double(batches_ - batch) : 0.0;
  const int width = 24;
  const int filled = batches_ ? int(width * batch / batches_) : width;
  std::string bar(size_t(filled), '#');
  bar.resize(size_t(width), '.');
  std::fprintf(stderr, "\r\033[Kepoch %lld/%lld [%s] %lld/%lld  %.0f img/s  ETA %.0fs  loss %.4f  acc %.2f%%",
               (long long)epoch_, (long long)epochs_, bar.c_str(), (long long)batch, (long long)batches_, rate, eta,
               running_loss, running_acc * 100);
  std::fflush(stderr);
}

void ProgressBar::line(const std::string& text) {
  if (quiet_) return;
  if (tty_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "%s\n", text.c_str());
  std::fflush(stderr);
}

}  // namespace crayon
