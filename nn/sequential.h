#pragma once
#include <memory>
#include <vector>

#include "nn/module.h"

namespace crayon {

// Layers applied in order; children are named "0", "1", ...
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> layers);
  void add(std::shared_ptr<Module> m);
  Variable forward(const Variable& x) override;
  std::string spec() const override;  // the layers' specs joined by '-'
  size_t size() const { return children().size(); }
  Module& operator[](size_t i) const { return *children()[i].second; }
  std::shared_ptr<Module> at(size_t i) const { return children()[i].second; }
  // Insert a layer at position i (used by quant/ to place observers and fake-quant).
  void insert(size_t i, std::shared_ptr<Module> m);
};

}  // namespace crayon
