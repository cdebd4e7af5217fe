#pragma once
// Everything of crayon_int8, the integer engine: Int8Model, its file, its kernels.
#include "core/core.h"
#include "quant/int8/file.h"
#include "quant/int8/gemm.h"
#include "quant/int8/model.h"
#include "quant/int8/ops.h"
#include "quant/int8/requant.h"
