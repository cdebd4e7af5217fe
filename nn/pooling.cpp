#include "nn/pooling.h"

#include "core/check.h"

namespace crayon {

std::string pool_spec(const char* name, const Pool2dParams& p) {
  auto pair = [](int a, int b) { return a == b ? str(a) : str(a, "x", b); };
  std::string s = str(name, "(", pair(p.kernel_h, p.kernel_w));
  if (p.stride_h != p.kernel_h || p.stride_w != p.kernel_w) s += ",stride=" + pair(p.stride_h, p.stride_w);
  if (p.pad_h || p.pad_w) s += ",pad=" + pair(p.pad_h, p.pad_w);
  return s + ")";
}

std::string MaxPool2d::spec() const { return pool_spec("maxpool", p_); }
std::string AvgPool2d::spec() const { return pool_spec("avgpool", p_); }

}  // namespace crayon
