#pragma once
// Everything of crayon_data: MNIST / Fashion-MNIST / CIFAR-10 readers, Dataset, DataLoader (crayon fetch: data/fetch.h, target crayon_fetch).
#include "core/core.h"
#include "data/cifar.h"
#include "data/data_dir.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "data/loader.h"
