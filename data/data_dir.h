#pragma once
// Where datasets live. The project ships MNIST in its own data/mnist; the data root is
// the repository's data/ folder (fixed at build time), or $CRAYON_DATA_DIR when set.
//   "mnist"         <root>/mnist
//   "cifar10"       <root>/cifar10
//   "fashion-mnist" <root>/fashion-mnist if that folder exists, else
//                   /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist)
#include <string>
#include <vector>

namespace crayon {

std::string data_root();
std::string default_data_dir(const std::string& dataset);  // throws for an unknown name
std::vector<std::string> known_datasets();                 // the names above

}  // namespace crayon
