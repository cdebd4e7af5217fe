#pragma once
// The integer engine's file: an Int8Model as HDF5, format "crayon-int8" version 3. Its
// layout, dtypes and arithmetic are documented once, in the README ("int8 model").
#include <cstdint>
#include <string>

#include "quant/int8/model.h"

namespace crayon {

inline constexpr const char* kInt8Format = "crayon-int8";
// Version 2 added act_min / act_max to avgpool2d (version 1 files load, with [-128, 127]).
// Version 3 rounds the requantization once, half to even (quant/int8/requant.h), where 1 and 2
// rounded twice as gemmlowp does; the stored data is the same, and older files load and run
// with the single rounding (an output may move by 1 LSB, toward the model's fake-quant).
inline constexpr int64_t kInt8FormatVersion = 3;

// Atomic (temporary file + rename, core/h5io.h).
void save_int8(const Int8Model& model, const std::string& path);

// Reads and validates everything (core/h5io.h's checks on each dataset, then the model's
// own consistency, and the stored multipliers against the scales); throws
// std::runtime_error naming the file and the object.
Int8Model load_int8(const std::string& path);

// True if path is an HDF5 file whose root says format = "crayon-int8" (false for anything
// else, including files that do not open).
bool is_int8_file(const std::string& path);

}  // namespace crayon
