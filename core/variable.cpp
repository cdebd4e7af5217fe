#include "core/variable.h"

#include <algorithm>
#include <stdexcept>
#include <unordered_set>

#include "core/anomaly.h"
#include "core/check.h"

namespace crayon {

struct Variable::Node {
  Tensor value;
  Tensor grad;
  bool requires_grad = false;
  std::vector<Variable> inputs;
  BackwardFn backward;
  const char* op_name = "leaf";
  std::string layer;  // anomaly detection only: the layer that ran the op

  // Releasing the inputs one by one from here would recurse once per node of the chain
  // behind us (a graph 1e5 ops deep overflows the stack), so nodes this one owns alone
  // are unlinked and freed in a loop instead.
  ~Node() {
    std::vector<std::shared_ptr<Node>> orphans;
    auto unlink = [&orphans](std::vector<Variable>& in) {
      for (Variable& v : in)
        if (v.node_ && v.node_.use_count() == 1) orphans.push_back(std::move(v.node_));
      in.clear();
    };
    unlink(inputs);
    while (!orphans.empty()) {
      std::shared_ptr<Node> n = std::move(orphans.back());
      orphans.pop_back();
      unlink(n->inputs);
    }  // n dies here with no inputs left
  }
};

namespace {
thread_local bool g_grad_enabled = true;
const std::vector<Variable> kNoInputs;

void add_into(Tensor& dst, const Tensor& src) {
  float* d = dst.data();
  const float* s = src.data();
  const int64_t n = dst.numel();
  for (int64_t i = 0; i < n; ++i) d[i] += s[i];
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

Variable::Variable(Tensor value, bool requires_grad) : node_(std::make_shared<Node>()) {
  node_->value = std::move(value);
  node_->requires_grad = requires_grad;
}

const Tensor& Variable::value() const {
  if (!node_) throw std::logic_error("use of an undefined Variable");
  return node_->value;
}
Tensor& Variable::value() {
  if (!node_) throw std::logic_error("use of an undefined Variable");
  return node_->value;
}

bool Variable::requires_grad() const { return node_ && node_->requires_grad; }
void Variable::set_requires_grad(bool on) {
  CRAYON_CHECK(is_leaf(), "requires_grad can only be set on a leaf Variable");
  node_->requires_grad = on;
}
bool Variable::is_leaf() const { return node_ && !node_->backward; }

const Tensor& Variable::grad() const {
  if (!node_) throw std::logic_error("use of an undefined Variable");
  return node_->grad;
}
bool Variable::has_grad() const { return node_ && node_->grad.defined(); }
void Variable::zero_grad() {
  if (node_) node_->grad = Tensor();
}

void Variable::add_grad(const Tensor& g) {
  check_same_shape("gradient", node_->value.shape(), g.shape());
  if (!node_->grad.defined()) {
    // Take a private copy: g may be a view of something the op still uses.
    node_->grad = g.clone();
  } else {
    add_into(node_->grad, g);
  }
}

void Variable::add_fresh_grad(Tensor g) {
  check_same_shape("gradient", node_->value.shape(), g.shape());
  if (!node_->grad.defined()) node_->grad = std::move(g);
  else add_into(node_->grad, g);
}

Tensor& Variable::grad_for_gemm(float* beta) {
  if (!node_->grad.defined()) {
    node_->grad = Tensor::empty(node_->value.shape());
    *beta = 0.f;
  } else {
    *beta = 1.f;
  }
  return node_->grad;
}

Tensor& Variable::grad_accumulator(float* beta) {
  if (!node_->grad.defined()) {
    // Zeros, not empty(): storage is recycled, and 0 * (stale NaN or Inf) is NaN, so a
    // loop writing beta * out + new must never read uninitialized memory.
    node_->grad = Tensor::zeros(node_->value.shape());
    *beta = 0.f;
  } else {
    *beta = 1.f;
  }
  return node_->grad;
}

const char* Variable::op_name() const { return node_ ? node_->op_name : "leaf"; }
const std::vector<Variable>& Variable::inputs() const { return node_ ? node_->inputs : kNoInputs; }

Variable Variable::detach() const { return Variable(value(), false); }

Variable make_result(Tensor value, std::vector<Variable> inputs, BackwardFn backward,
                     const char* op_name) {
  if (detect_anomaly()) check_finite(value, op_name, anomaly_label(), "the output");
  Variable out(std::move(value), false);
  if (!g_grad_enabled) return out;
  const bool any = std::any_of(inputs.begin(), inputs.end(),
                               [](const Variable& v) { return v.requires_grad(); });
  if (!any) return out;
  out.node_->requires_grad = true;
  out.node_->inputs = std::move(inputs);
  out.node_->backward = std::move(backward);
  out.node_->op_name = op_name;
  if (detect_anomaly()) out.node_->layer = anomaly_label();
  return out;
}

void Variable::backward(bool retain_graph) {
  if (value().numel() != 1)
    throw std::invalid_argument(str("backward() without a seed needs a one-element output, got shape ",
                                    shape_str(value().shape())));
  backward(Tensor::ones(value().shape()), retain_graph);
}

void Variable::backward(const Tensor& seed, bool retain_graph) {
  check_same_shape("backward seed", value().shape(), seed.shape());
  if (!requires_grad()) throw std::logic_error("backward() on a Variable that does not require grad");
  if (is_leaf()) {
    add_grad(seed);
    return;
  }

  // Topological order by an iterative depth-first search (no recursion, so a graph of any
  // depth works). A node is emitted after all of its inputs. `order` holds owning
  // pointers: freeing the graph below drops the inputs' handles while we still walk it.
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> visited{node_.get()};
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{node_, 0}};
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const std::shared_ptr<Node>& child = node->inputs[next++].node_;
      if (child && child->requires_grad && child->backward && visited.insert(child.get()).second)
        stack.push_back({child, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }

  // Interior gradients are scratch space for this pass, freed as soon as they have been
  // passed on; only leaves keep (and accumulate) theirs. Each op's backward skips the
  // inputs that do not require a gradient.
  for (auto& n : order) n->grad = Tensor();
  add_grad(seed);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* n = it->get();
    if (n->grad.defined()) {
      n->backward(n->grad, n->inputs);
      if (detect_anomaly())
        for (const Variable& in : n->inputs)
          if (in.node_ && in.node_->requires_grad)
            check_finite(in.node_->grad, n->op_name, n->layer, "the gradient passed back to an input");
    }
    n->grad = Tensor();
    if (!retain_graph) {
      n->inputs.clear();
      n->backward = nullptr;
    }
  }
}

}  // namespace crayon
