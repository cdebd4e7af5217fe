#pragma once
// softmax, log_softmax and the fused cross-entropy, all stable for any finite logits:
// the row max is subtracted before exp, so nothing overflows (logits of +-1e4 are fine).
#include "core/variable.h"

namespace crayon {

Variable softmax(const Variable& x, int axis = -1);
Variable log_softmax(const Variable& x, int axis = -1);

// logits: (B, C), labels: int32 (B,) with values in [0, C) -> mean over the batch of
// -log softmax(logits)[label]. Backward: (softmax - onehot) / B.
Variable cross_entropy(const Variable& logits, const Tensor& labels);

}  // namespace crayon
