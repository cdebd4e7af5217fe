#pragma once
// L1 and L2 regularizers written as priors on the weights (DESIGN.md, idea 1: MDL).
//
// A penalty added to a loss measured in nats is a negative log-prior, up to a constant:
//
//   L2: lambda * sum w^2   = sum -ln N(w; 0, sigma^2) - N * 1/2 ln(2 pi sigma^2),
//       with sigma^2 = 1 / (2 lambda)        (a Gaussian prior);
//   L1: lambda * sum |w|   = sum -ln Laplace(w; 0, b) - N * ln(2 b),
//       with b = 1 / lambda                  (a Laplace prior),
//
// where N is the number of weights. The description length of the weights under the
// prior, each weight sent to a precision delta (code length -log2(p(w) delta), valid
// while delta << sigma or b), is
//
//   L2: model_bits = sum [ w^2 / (2 sigma^2 ln 2) + 1/2 log2(2 pi sigma^2) - log2 delta ]
//   L1: model_bits = sum [ |w| / (b ln 2)         + log2(2 b)              - log2 delta ]
//
// i.e. model_bits = (penalty + N * (normalizer - ln delta)) / ln 2, normalizer being the
// constant per-weight term in nats. With data_bits = n * mean cross-entropy / ln 2, the
// MDL total is model_bits + data_bits.
//
// Scale of lambda: a training loss that is the *mean* cross-entropy over n samples plus
// lambda * ||w||^2 equals (1/n) (total cross-entropy + n lambda ||w||^2); the prior that
// objective assumes has lambda_prior = n * lambda. penalty() and model_bits() use the
// lambda they are given; pass the one that matches how the data bits are counted.
//
// Which weights: all the Variables given (the caller passes, e.g., weights, not biases).
// add_gradient() adds d penalty / dw to each gradient before the optimizer's step(); it is
// independent of an optimizer's own weight_decay (which adds wd * w inside step()).
#include <cstdint>
#include <vector>

#include "core/variable.h"

namespace crayon {

// Default precision delta for model_bits: weights sent to 2^-8.
inline constexpr double kWeightPrecision = 1.0 / 256.0;

class Regularizer {
 public:
  virtual ~Regularizer() = default;
  double lambda() const { return lambda_; }
  double precision() const { return precision_; }

  // lambda * sum of the per-weight term over all given weights, in nats.
  virtual double penalty(const std::vector<Variable>& params) const = 0;
  // grad += d penalty / dw for every given parameter (creating the gradient if absent).
  virtual void add_gradient(const std::vector<Variable>& params) const = 0;
  // The per-weight constant -ln p(w) - (penalty term), in nats.
  virtual double normalizer() const = 0;

  // sum ln p(w_i) in nats: -(penalty + N * normalizer).
  double log_prior(const std::vector<Variable>& params) const;
  // sum -log2(p(w_i) * delta), in bits (formulas above).
  double model_bits(const std::vector<Variable>& params) const;

 protected:
  // Throws std::invalid_argument unless lambda and precision are finite and > 0.
  Regularizer(const char* name, double lambda, double precision);

 private:
  double lambda_, precision_;
};

// lambda * sum w^2; gradient 2 lambda w; Gaussian prior with sigma^2 = 1 / (2 lambda).
class L2Regularizer : public Regularizer {
 public:
  explicit L2Regularizer(double lambda, double precision = kWeightPrecision)
      : Regularizer("L2Regularizer", lambda, precision) {}
  double sigma() const;  // sqrt(1 / (2 lambda))
  double penalty(const std::vector<Variable>& params) const override;
  void add_gradient(const std::vector<Variable>& params) const override;
  double normalizer() const override;  // 1/2 ln(2 pi sigma^2)
};

// lambda * sum |w|; gradient lambda sign(w) (0 at w = 0); Laplace prior, b = 1 / lambda.
class L1Regularizer : public Regularizer {
 public:
  explicit L1Regularizer(double lambda, double precision = kWeightPrecision)
      : Regularizer("L1Regularizer", lambda, precision) {}
  double scale() const { return 1.0 / lambda(); }  // b
  double penalty(const std::vector<Variable>& params) const override;
  void add_gradient(const std::vector<Variable>& params) const override;
  double normalizer() const override;  // ln(2 b)
};

// The data's description length given the model: n * mean cross-entropy (nats) / ln 2.
// Throws std::invalid_argument if n < 0 or the cross-entropy is negative or NaN.
double data_bits(double mean_cross_entropy_nats, int64_t n);

}  // namespace crayon
