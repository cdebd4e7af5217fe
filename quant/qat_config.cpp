#include "quant/qat_config.h"

#include <cstdint>
#include <sstream>
#include <stdexcept>

#include "core/check.h"
#include "core/parse.h"
#include "quant/observer.h"

namespace crayon {

void validate(const QatConfig& c) {
  auto spec = [](const QuantSpec& s, const char* who) {
    try {
      s.validate();
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(str("qat config: ", who, ": ", e.what()));
    }
  };
  spec(c.weight, "weight");
  spec(c.act, "act");
  if (c.weight.axis > 0)
    throw std::invalid_argument(str("qat config: weight axis must be 0 (per output channel) or -1 (per tensor), got ",
                                    c.weight.axis));
  if (c.act.axis != -1)
    throw std::invalid_argument(str("qat config: activations are quantized per tensor, got axis ", c.act.axis));
  for (int b : c.layer_weight_bits)
    if (b < 2 || b > 8) throw std::invalid_argument(str("qat config: layer_weight_bits: expected 2..8 each, got ", b));
  if (c.warmup_steps < 0)
    throw std::invalid_argument(str("qat config: warmup must be >= 0, got ", c.warmup_steps));
  try {
    make_observer(c.observer, c.act);  // throws for an unknown name or an unsupported spec
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(str("qat config: observer: ", e.what()));
  }
}

namespace {

// ",layer_weight_bits=8:4:4", or "" when unset.
std::string layer_bits_text(const std::vector<int>& bits) {
  std::string s;
  for (int b : bits) s += str(s.empty() ? ",layer_weight_bits=" : ":", b);
  return s;
}

}  // namespace

std::string grid_name(const QatConfig& c) {
  if (c.layer_weight_bits.empty()) return str("W", c.weight.bits, "A", c.act.bits);
  std::string w = "W[";
  for (size_t i = 0; i < c.layer_weight_bits.size(); ++i) w += str(i ? ":" : "", c.layer_weight_bits[i]);
  return str(w, "]A", c.act.bits);
}

std::string describe(const QatConfig& c) {
  std::string s = str("weight_bits=", c.weight.bits, ",weight_symmetric=", int(c.weight.symmetric),
                      ",weight_narrow=", int(c.weight.narrow_range), ",per_channel=", int(c.weight.axis >= 0),
                      ",act_bits=", c.act.bits, ",act_symmetric=", int(c.act.symmetric),
                      ",rounding=", rounding_name(c.weight.rounding));
  if (c.act.rounding != c.weight.rounding) s += str(",act_rounding=", rounding_name(c.act.rounding));
  return s + str(",ste=", c.ste == Ste::plain ? "plain" : "clipped", ",observer=", c.observer,
                 ",warmup=", c.warmup_steps, ",fold_bn=", int(c.fold_bn), ",seed=", c.seed,
                 layer_bits_text(c.layer_weight_bits));
}

namespace {

[[noreturn]] void bad(const std::string& key, const std::string& value, const char* expected) {
  throw std::invalid_argument(one_line(str("qat option '", key, "': expected ", expected, ", got '", value, "'")));
}

// Digits only (no sign, no spaces), the whole text.
uint64_t unsigned_value(const std::string& key, const std::string& v, const char* expected) {
  uint64_t n = 0;
  if (!parse_number(v, n)) bad(key, v, expected);
  return n;
}

bool bool_value(const std::string& key, const std::string& v) {
  if (v == "1" || v == "true" || v == "on") return true;
  if (v == "0" || v == "false" || v == "off") return false;
  bad(key, v, "0 or 1");
}

}  // namespace

void set_qat_option(QatConfig& c, const std::string& key_in, const std::string& v) {
  std::string key = key_in.rfind("--", 0) == 0 ? key_in.substr(2) : key_in;
  for (char& ch : key)
    if (ch == '-') ch = '_';
  auto bits = [&] {
    const uint64_t b = unsigned_value(key_in, v, "an integer in [2, 8]");
    if (b < 2 || b > 8) bad(key_in, v, "an integer in [2, 8]");
    return int(b);
  };
  auto rounding = [&] {
    try {
      return parse_rounding(v);
    } catch (const std::invalid_argument&) {
      bad(key_in, v, "nearest, nearest-even, nearest-away or stochastic");
    }
  };
  if (key == "weight_bits") c.weight.bits = bits();
  else if (key == "act_bits") c.act.bits = bits();
  else if (key == "per_channel") c.weight.axis = bool_value(key_in, v) ? 0 : -1;
  else if (key == "weight_symmetric") c.weight.symmetric = bool_value(key_in, v);
  else if (key == "weight_narrow") c.weight.narrow_range = bool_value(key_in, v);
  else if (key == "act_symmetric") c.act.symmetric = bool_value(key_in, v);
  else if (key == "rounding") c.weight.rounding = c.act.rounding = rounding();
  else if (key == "act_rounding") c.act.rounding = rounding();
  else if (key == "ste") {
    if (v != "plain" && v != "clipped") bad(key_in, v, "plain or clipped");
    c.ste = parse_ste(v);
  } else if (key == "observer") {
    try {
      make_observer(v, c.act);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(one_line(str("qat option '", key_in, "': ", e.what())));
    }
    c.observer = v;
  } else if (key == "warmup") {
    const uint64_t n = unsigned_value(key_in, v, "an integer >= 0");
    if (n > uint64_t(INT64_MAX)) bad(key_in, v, "an integer >= 0");
    c.warmup_steps = int64_t(n);
  } else if (key == "layer_weight_bits") {
    c.layer_weight_bits.clear();
    std::stringstream ss(v);
    std::string item;
    while (std::getline(ss, item, ':')) {
      const uint64_t b = unsigned_value(key_in, item, "bit widths in [2, 8] separated by ':'");
      if (b < 2 || b > 8) bad(key_in, v, "bit widths in [2, 8] separated by ':'");
      c.layer_weight_bits.push_back(int(b));
    }
    if (c.layer_weight_bits.empty() || v.back() == ':') bad(key_in, v, "bit widths in [2, 8] separated by ':'");
  } else if (key == "fold_bn") c.fold_bn = bool_value(key_in, v);
  else if (key == "seed") c.seed = unsigned_value(key_in, v, "an integer >= 0");
  else
    throw std::invalid_argument(
        one_line(str("unknown qat option '", key_in,
                     "' (expected weight_bits, act_bits, per_channel, weight_symmetric, weight_narrow, "
                     "act_symmetric, rounding, act_rounding, ste, observer, warmup, fold_bn, seed or layer_weight_bits)")));
}

QatConfig parse_qat_config(const std::string& text) {
  QatConfig c;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::invalid_argument(one_line(str("qat config '", text, "': expected key=value, got '", item, "'")));
    set_qat_option(c, item.substr(0, eq), item.substr(eq + 1));
  }
  validate(c);
  return c;
}

}  // namespace crayon
