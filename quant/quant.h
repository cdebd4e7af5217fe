#pragma once
// Everything of crayon_quant: fake-quant, observers, QAT / PTQ, BN folding, error analysis, int8 export.
#include "nn/nn.h"
#include "quant/int8/int8.h"
#include "quant/bn_fold.h"
#include "quant/error.h"
#include "quant/fake_quant.h"
#include "quant/fake_quant_module.h"
#include "quant/int8_export.h"
#include "quant/observer.h"
#include "quant/prediction_kl.h"
#include "quant/qat.h"
#include "quant/qat_config.h"
#include "quant/quant_spec.h"
