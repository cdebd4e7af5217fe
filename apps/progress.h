#pragma once
// Training progress on stderr: on a terminal, one line redrawn in place (batch, images/s,
// ETA, running loss and accuracy); otherwise nothing until the epoch's summary line.
#include <chrono>
#include <cstdint>
#include <string>

namespace crayon {

class ProgressBar {
 public:
  ProgressBar(bool quiet);
  void start_epoch(int64_t epoch, int64_t epochs, int64_t batches);
  void update(int64_t batch, int64_t images, double running_loss, double running_acc);
  void line(const std::string& text);  // a permanent line (clears the bar first)
  bool interactive() const { return tty_; }

 private:
  bool quiet_, tty_;
  int64_t epoch_ = 0, epochs_ = 0, batches_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace crayon
