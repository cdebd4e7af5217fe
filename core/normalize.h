#pragma once
// Input normalization: per-channel statistics in [0, 1] pixel units and the table of what a
// network sees for each 8-bit pixel value. In core because two sides must compute it
// identically: the data loader normalizes through the table, and the int8 export folds the
// same table into the integer engine's input quantization.
#include <cstdint>
#include <vector>

namespace crayon {

struct ChannelStats {
  std::vector<float> mean{};
  std::vector<float> std{};
};

// [c * 256 + v] = (v / 255 - mean[c]) / std[c] in float32 (empty mean/std: 0 and 1).
// Throws std::invalid_argument for a size mismatch or std <= 0.
std::vector<float> pixel_table(const ChannelStats& norm, int64_t channels);

}  // namespace crayon
