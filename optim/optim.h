#pragma once
// Everything of crayon_optim: SGD, Adam/AdamW, schedules, clipping, priors, the low-precision weight grid.
#include "core/core.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/optimizer.h"
#include "optim/regularizer.h"
#include "optim/schedule.h"
#include "optim/sgd.h"
#include "optim/weight_grid.h"
