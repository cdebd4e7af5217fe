#pragma once
// All autograd ops, by family.
#include "core/ops_conv.h"
#include "core/ops_elementwise.h"
#include "core/ops_matmul.h"
#include "core/ops_norm.h"
#include "core/ops_reduce.h"
#include "core/ops_shape.h"
#include "core/ops_softmax.h"
