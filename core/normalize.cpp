#include "core/normalize.h"

#include <stdexcept>

#include "core/check.h"

namespace crayon {

std::vector<float> pixel_table(const ChannelStats& norm, int64_t channels) {
  std::vector<float> mean = norm.mean, stdev = norm.std;
  if (mean.empty()) mean.assign(size_t(channels), 0.f);
  if (stdev.empty()) stdev.assign(size_t(channels), 1.f);
  if (int64_t(mean.size()) != channels || int64_t(stdev.size()) != channels)
    throw std::invalid_argument(str("normalization: expected ", channels, " per-channel mean and std values, got ",
                                    mean.size(), " and ", stdev.size()));
  std::vector<float> table(size_t(channels) * 256);
  for (int64_t c = 0; c < channels; ++c) {
    if (!(stdev[size_t(c)] > 0.f))
      throw std::invalid_argument(str("normalization: expected std > 0, got ", stdev[size_t(c)], " for channel ", c));
    for (int v = 0; v < 256; ++v) table[size_t(c * 256 + v)] = (float(v) / 255.f - mean[size_t(c)]) / stdev[size_t(c)];
  }
  return table;
}

}  // namespace crayon
