#include "data/data_dir.h"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "core/check.h"

#ifndef CRAYON_DATA_DIR
#error "CRAYON_DATA_DIR must be defined by data/CMakeLists.txt"
#endif

namespace crayon {

std::string data_root() {
  const char* env = std::getenv("CRAYON_DATA_DIR");
  return env && *env ? env : CRAYON_DATA_DIR;
}

std::vector<std::string> known_datasets() { return {"mnist", "fashion-mnist", "cifar10"}; }

std::string default_data_dir(const std::string& dataset) {
  const std::filesystem::path root = data_root();
  if (dataset == "mnist") return (root / "mnist").string();
  if (dataset == "cifar10") return (root / "cifar10").string();
  if (dataset == "fashion-mnist") {
    const auto local = root / "fashion-mnist";
    std::error_code ec;
    if (std::filesystem::is_directory(local, ec)) return local.string();
    return "/usr/share/datasets/fashion-mnist";
  }
  std::string names;
  for (const auto& n : known_datasets()) names += (names.empty() ? "" : ", ") + n;
  throw std::invalid_argument(str("unknown dataset '", dataset, "': expected one of ", names));
}

}  // namespace crayon
