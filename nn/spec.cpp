#include "nn/spec.h"

#include <cctype>
#include <map>
#include <optional>
#include <stdexcept>
#include <vector>

#include "core/check.h"
#include "core/limits.h"
#include "core/parse.h"
#include "core/ops_conv.h"
#include "nn/activations.h"
#include "nn/batchnorm.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "nn/pooling.h"

namespace crayon {

std::string preset_spec(const std::string& name) {
  if (name == "mlp") return "flatten-linear(256)-relu-linear(128)-relu-linear(10)";
  if (name == "lenet5")
    return "conv(6,5,pad=2)-relu6-maxpool(2)-conv(16,5)-relu6-maxpool(2)-flatten-linear(120)-relu6-linear(84)-relu6-"
           "linear(10)";
  if (name == "cifar-cnn")
    return "conv(32,3,pad=1,bias=0)-bn-relu-conv(32,3,pad=1,bias=0)-bn-relu-maxpool(2)-"
           "conv(64,3,pad=1,bias=0)-bn-relu-conv(64,3,pad=1,bias=0)-bn-relu-maxpool(2)-"
           "conv(128,3,pad=1,bias=0)-bn-relu-conv(128,3,pad=1,bias=0)-bn-relu-maxpool(2)-flatten-linear(10)";
  return "";
}

namespace {

struct Arg {
  std::string key;  // empty for positional
  std::string value;
  size_t pos;
};

struct Layer {
  std::string name;
  std::vector<Arg> args;
  size_t pos;
};

// The spec quoted in an error: whole if short, else the stretch around the position.
std::string quote(const std::string& spec, size_t pos) {
  constexpr size_t kShown = 120;
  if (spec.size() <= kShown) return str("'", spec, "'");
  const size_t begin = pos > kShown / 2 ? std::min(pos - kShown / 2, spec.size() - kShown) : 0;
  return str("'", begin > 0 ? "..." : "", spec.substr(begin, kShown), begin + kShown < spec.size() ? "..." : "",
             "' (", spec.size(), " characters)");
}

[[noreturn]] void fail(const std::string& spec, size_t pos, const std::string& msg) {
  throw std::invalid_argument(one_line(str("model spec, position ", pos + 1, ": ", msg, " in ", quote(spec, pos))));
}

std::vector<Layer> tokenize(const std::string& s) {
  std::vector<Layer> layers;
  size_t i = 0;
  auto expect_layer_start = [&] {
    if (i >= s.size() || !std::isalpha(static_cast<unsigned char>(s[i])))
      fail(s, i, i >= s.size() ? "expected a layer name, found the end" : str("expected a layer name, found '", s[i], "'"));
  };
  while (true) {
    expect_layer_start();
    Layer l{"", {}, i};
    while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) l.name += s[i++];
    if (i < s.size() && s[i] == '(') {
      ++i;
      while (true) {
        Arg a{"", "", i};
        std::string tok;
        while (i < s.size() && s[i] != ',' && s[i] != ')' && s[i] != '(' && s[i] != '-') tok += s[i++];
        if (i >= s.size()) fail(s, i, str("expected ')' to close '", l.name, "(', found the end"));
        if (s[i] == '(' || s[i] == '-') fail(s, i, str("expected ',' or ')', found '", s[i], "'"));
        const size_t eq = tok.find('=');
        if (eq != std::string::npos) {
          a.key = tok.substr(0, eq);
          a.value = tok.substr(eq + 1);
        } else {
          a.value = tok;
        }
        if (a.value.empty()) fail(s, a.pos, str("expected an argument value in '", l.name, "'"));
        l.args.push_back(a);
        if (s[i++] == ')') break;
      }
    }
    layers.push_back(l);
    if (i == s.size()) break;
    if (s[i] != '-') fail(s, i, str("expected '-' or '(' after '", l.name, "', found '", s[i], "'"));
    ++i;
  }
  return layers;
}

// Reads a layer's arguments: positional ones by index, named ones by key; anything not
// consumed is an error.
class Args {
 public:
  Args(const std::string& spec, const Layer& l, std::vector<std::string> names)
      : spec_(spec), l_(l), names_(std::move(names)) {
    size_t positional = 0;
    for (const Arg& a : l.args) {
      std::string key = a.key;
      if (key.empty()) {
        if (positional >= names_.size())
          fail(spec, a.pos, str("'", l.name, "' takes at most ", names_.size(), " positional arguments"));
        key = names_[positional++];
      }
      bool known = false;
      for (auto& n : names_) known |= n == key;
      if (!known) fail(spec, a.pos, str("unknown argument '", key, "' for '", l.name, "'"));
      if (values_.count(key)) fail(spec, a.pos, str("argument '", key, "' given twice"));
      values_[key] = a;
    }
  }
  bool has(const std::string& k) const { return values_.count(k) > 0; }
  int64_t integer(const std::string& k, std::optional<int64_t> dflt, int64_t min = 1) const {
    auto it = values_.find(k);
    if (it == values_.end()) {
      if (!dflt) fail(spec_, l_.pos, str("'", l_.name, "' needs argument '", k, "'"));
      return *dflt;
    }
    return parse_int(it->second.value, it->second.pos, k, min);
  }
  // "A" or "AxB"
  std::pair<int, int> pair(const std::string& k, std::optional<std::pair<int, int>> dflt, int64_t min = 1) const {
    auto it = values_.find(k);
    if (it == values_.end()) {
      if (!dflt) fail(spec_, l_.pos, str("'", l_.name, "' needs argument '", k, "'"));
      return *dflt;
    }
    const std::string& v = it->second.value;
    const size_t x = v.find('x');
    if (x == std::string::npos) {
      const int a = int(parse_int(v, it->second.pos, k, min));
      return {a, a};
    }
    return {int(parse_int(v.substr(0, x), it->second.pos, k, min)),
            int(parse_int(v.substr(x + 1), it->second.pos + x + 1, k, min))};
  }
  float real(const std::string& k) const {
    auto it = values_.find(k);
    if (it == values_.end()) fail(spec_, l_.pos, str("'", l_.name, "' needs argument '", k, "'"));
    float v = 0;
    if (parse_number(it->second.value, v)) return v;
    fail(spec_, it->second.pos, str("expected a number for '", k, "', found '", it->second.value, "'"));
  }

 private:
  int64_t parse_int(const std::string& v, size_t pos, const std::string& k, int64_t min) const {
    uint32_t digits = 0;  // no sign, at most 9 digits: any value fits an int
    const bool ok = v.size() <= 9 && parse_number(v, digits);
    const int64_t out = digits;
    if (!ok || out < min)
      fail(spec_, pos, str("expected an integer >= ", min, " for '", k, "' of '", l_.name, "', found '", v, "'"));
    return out;
  }
  const std::string& spec_;
  const Layer& l_;
  std::vector<std::string> names_;
  std::map<std::string, Arg> values_;
};

}  // namespace

namespace {

// Runs the shapes through the spec, checking every layer and the limits before anything is
// allocated; with a model, also builds it.
ModelSize walk(const std::string& spec_or_preset, const Shape& input, Rng& rng, Init init, Sequential* model) {
  const std::string preset = preset_spec(spec_or_preset);
  const std::string spec = preset.empty() ? spec_or_preset : preset;
  if (input.size() != 3 || input[0] < 1 || input[1] < 1 || input[2] < 1)
    throw std::invalid_argument(str("build_model: expected an input shape (C, H, W) of positive sizes, got ",
                                    shape_str(input)));
  const Limits& lim = limits();
  const std::vector<Layer> layers = tokenize(spec);
  if (int64_t(layers.size()) > lim.layers)
    throw std::invalid_argument(str("model spec: ", layers.size(), " layers is too many ",
                                    limit_hint(lim.layers, "CRAYON_MAX_LAYERS")));
  ModelSize size;
  size.layers = int64_t(layers.size());
  // Elements of one example's tensor of this shape, checked against the activation limit
  // (float32, for the largest batch of one).
  auto activation = [&](const Shape& s, size_t pos, const std::string& what) {
    int64_t n = 1;
    for (int64_t d : s) n = mul_or_overflow(n, d);
    if (n < 0 || n > lim.activation_bytes / 4)
      fail(spec, pos, str(what, " of ", shape_str(s), " per example exceeds the activation limit of ",
                          lim.activation_bytes, " bytes ", limit_hint(lim.activation_bytes, "CRAYON_MAX_ACTIVATION_BYTES")));
    size.largest_activation = std::max(size.largest_activation, n);
  };
  auto parameters = [&](std::initializer_list<int64_t> dims, int64_t extra, const Layer& l) {
    int64_t n = 1;
    for (int64_t d : dims) n = mul_or_overflow(n, d);
    const int64_t total = n < 0 ? -1 : n + extra + size.parameters;
    if (total < 0 || total > lim.parameters)
      fail(spec, l.pos, str("'", l.name, "' brings the model to ", total < 0 ? std::string("over 2^63") : str(total),
                            " parameters ", limit_hint(lim.parameters, "CRAYON_MAX_PARAMETERS")));
    size.parameters = total;
  };
  auto add = [&](auto make) {
    if (model) model->add(make());
  };
  activation(input, 0, "the input");
  Shape shape = input;  // per-example shape flowing through the net
  for (const Layer& l : layers) {
    auto need_rank = [&](size_t r, const char* what) {
      if (shape.size() != r)
        fail(spec, l.pos, str("'", l.name, "' needs ", what, " input, but the previous layers give ", shape_str(shape),
                              r == 1 ? " (add 'flatten' before it)" : ""));
    };
    // Output height and width of a sliding window over the current (C, H, W).
    auto window_out = [&](int kh, int kw, int sh, int sw, int ph, int pw, const std::string& what) {
      try {
        return std::pair{window_out_size(shape[1], kh, sh, ph, (what + " height").c_str()),
                         window_out_size(shape[2], kw, sw, pw, (what + " width").c_str())};
      } catch (const std::invalid_argument& e) {
        fail(spec, l.pos, str(e.what(), " (input ", shape_str(shape), ")"));
      }
    };
    if (l.name == "conv") {
      Args a(spec, l, {"out", "kernel", "stride", "pad", "bias"});
      need_rank(3, "(C, H, W)");
      const auto [kh, kw] = a.pair("kernel", std::nullopt);
      const auto [sh, sw] = a.pair("stride", std::pair{1, 1});
      const auto [ph, pw] = a.pair("pad", std::pair{0, 0}, 0);
      const Conv2dParams p{sh, sw, ph, pw};
      const int64_t out = a.integer("out", std::nullopt);
      const bool bias = a.integer("bias", 1, 0) != 0;
      const auto [oh, ow] = window_out(kh, kw, sh, sw, ph, pw, "conv");
      parameters({out, shape[0], kh, kw}, bias ? out : 0, l);
      activation({out, oh, ow}, l.pos, str("'", l.name, "' outputs"));
      const int k_h = kh, k_w = kw;  // clang 14 cannot capture structured bindings
      add([&] { return std::make_shared<Conv2d>(shape[0], out, k_h, k_w, p, bias, rng, init); });
      shape = {out, oh, ow};
    } else if (l.name == "linear") {
      Args a(spec, l, {"out", "bias"});
      need_rank(1, "flat (features)");
      const int64_t out = a.integer("out", std::nullopt);
      const bool bias = a.integer("bias", 1, 0) != 0;
      parameters({out, shape[0]}, bias ? out : 0, l);
      add([&] { return std::make_shared<Linear>(shape[0], out, bias, rng, init); });
      shape = {out};
    } else if (l.name == "maxpool" || l.name == "avgpool") {
      Args a(spec, l, {"kernel", "stride", "pad"});
      need_rank(3, "(C, H, W)");
      const auto [kh, kw] = a.pair("kernel", std::nullopt);
      const auto [sh, sw] = a.pair("stride", std::pair{kh, kw});
      const auto [ph, pw] = a.pair("pad", std::pair{0, 0}, 0);
      const Pool2dParams p{kh, kw, sh, sw, ph, pw};
      if (2 * ph > kh || 2 * pw > kw) fail(spec, l.pos, "pooling padding must be at most half the kernel");
      const auto [oh, ow] = window_out(kh, kw, sh, sw, ph, pw, "pool");
      activation({shape[0], oh, ow}, l.pos, str("'", l.name, "' outputs"));
      if (l.name == "maxpool") add([&] { return std::make_shared<MaxPool2d>(p); });
      else add([&] { return std::make_shared<AvgPool2d>(p); });
      shape = {shape[0], oh, ow};
    } else if (l.name == "bn" || l.name == "batchnorm") {
      Args a(spec, l, {});
      parameters({2, shape[0]}, 0, l);
      add([&] { return std::make_shared<BatchNorm>(shape[0]); });
    } else if (l.name == "relu" || l.name == "relu6" || l.name == "flatten") {
      Args a(spec, l, {});
      if (l.name == "relu") add([] { return std::make_shared<ReLU>(); });
      else if (l.name == "relu6") add([] { return std::make_shared<ReLU6>(); });
      else {
        add([] { return std::make_shared<Flatten>(); });
        shape = {shape_numel(shape)};
      }
    } else if (l.name == "dropout") {
      Args a(spec, l, {"p"});
      const float p = a.real("p");
      if (!(p >= 0.f && p < 1.f)) fail(spec, l.pos, str("dropout probability must be in [0, 1), got ", p));
      add([&] { return std::make_shared<Dropout>(p, rng.next_u64()); });
    } else {
      fail(spec, l.pos,
           str("unknown layer '", l.name,
               "' (expected conv, linear, maxpool, avgpool, bn, relu, relu6, flatten or dropout, or a preset: mlp, lenet5, "
               "cifar-cnn)"));
    }
  }
  return size;
}

}  // namespace

ModelSize model_size(const std::string& spec_or_preset, const Shape& input) {
  Rng rng(0);
  return walk(spec_or_preset, input, rng, Init::pytorch, nullptr);
}

int64_t largest_batch(const ModelSize& size) {
  return std::max<int64_t>(1, limits().activation_bytes / (4 * std::max<int64_t>(1, size.largest_activation)));
}

void check_batch(const ModelSize& size, int64_t batch, const std::string& who) {
  const int64_t fit = largest_batch(size);
  if (batch > fit)
    throw std::invalid_argument(str(who, ": a batch of ", batch, " makes the largest activation (", size.largest_activation,
                                    " float32 values per example) exceed ", limits().activation_bytes,
                                    " bytes; at most ", fit, " fit ",
                                    limit_hint(limits().activation_bytes, "CRAYON_MAX_ACTIVATION_BYTES")));
}

std::shared_ptr<Sequential> build_model(const std::string& spec_or_preset, const Shape& input, Rng& rng, Init init,
                                        ModelSize* size) {
  auto model = std::make_shared<Sequential>();
  const ModelSize s = walk(spec_or_preset, input, rng, init, model.get());
  if (size) *size = s;
  return model;
}

}  // namespace crayon
