#pragma once
// Everything of crayon_nn: modules, layers, init, Sequential, model specs.
#include "core/core.h"
#include "nn/activations.h"
#include "nn/batchnorm.h"
#include "nn/conv2d.h"
#include "nn/init.h"
#include "nn/linear.h"
#include "nn/module.h"
#include "nn/pooling.h"
#include "nn/sequential.h"
#include "nn/spec.h"
