#pragma once
// Files that appear whole or not at all. A writer works on "<path>.tmp.<pid>.<n>" beside the
// target; commit_file() fsyncs it, renames it onto the target and fsyncs the folder, so after
// a crash `path` holds the old file or the complete new one. H5Writer (core/h5io.h), the CSV
// writers and the ONNX exporter share it.
#include <string>
#include <string_view>

namespace crayon {

// A fresh temporary name for `path`, unique across threads and processes. First removes the
// temporaries of `path` left by processes that are gone (a SIGKILLed writer's); a live
// process's are left alone. Best effort: what cannot be listed or removed stays.
std::string temp_path_for(const std::string& path);

// Moves the complete file `tmp` onto `path`: fsync, rename, fsync of the folder. Throws
// std::runtime_error naming path (tmp is left for the caller to remove).
void commit_file(const std::string& tmp, const std::string& path);

// Writes `bytes` to `path` that way; on any failure the temporary is removed, `path` is
// untouched, and std::runtime_error names path.
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace crayon
