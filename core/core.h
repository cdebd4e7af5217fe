#pragma once
// Everything of crayon_core: tensors, autograd, ops, rounding, threads, HDF5 files, limits.
#include "core/check.h"
#include "core/h5io.h"
#include "core/limits.h"
#include "core/normalize.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "core/parse.h"
#include "core/rng.h"
#include "core/rounding.h"
#include "core/tensor.h"
#include "core/variable.h"
