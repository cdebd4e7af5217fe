#include "nn/sequential.h"

#include <algorithm>
#include <string>

#include "core/anomaly.h"
#include "core/check.h"

namespace crayon {

Sequential::Sequential(std::vector<std::shared_ptr<Module>> layers) {
  for (auto& m : layers) add(std::move(m));
}

void Sequential::add(std::shared_ptr<Module> m) { register_module(std::to_string(size()), std::move(m)); }

void Sequential::insert(size_t i, std::shared_ptr<Module> m) {
  std::vector<std::shared_ptr<Module>> layers;
  for (auto& [n, c] : children()) layers.push_back(c);
  layers.insert(layers.begin() + std::ptrdiff_t(std::min(i, layers.size())), std::move(m));
  clear_modules();
  for (auto& l : layers) add(std::move(l));
}

Variable Sequential::forward(const Variable& x) {
  Variable h = x;
  for (auto& [n, m] : children()) {
    if (!detect_anomaly()) {
      h = m->forward(h);
      continue;
    }
    const std::string label = str("layer ", n, " (", m->spec(), ")");  // what an anomaly names
    const AnomalyLabel scope(label);
    h = m->forward(h);
  }
  return h;
}

std::string Sequential::spec() const {
  std::string s;
  for (auto& [n, m] : children()) {
    if (!s.empty()) s += "-";
    s += m->spec();
  }
  return s;
}

}  // namespace crayon
