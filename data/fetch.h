#pragma once
// Downloading datasets: official URLs, fixed MD5 checksums, nothing half-written.
//
// For each file of a DatasetSource, fetch_dataset
//   1. skips it when the target already holds it and its MD5 matches (unless force);
//   2. downloads it (libcurl) into a temporary file in the target directory, trying the
//      official URL first and then the listed mirrors;
//   3. checks its size (when published) and its MD5 against the values fixed here; on a
//      mismatch the temporary file is removed and nothing else is touched;
//   4. renames it into place, or, for an archive, unpacks it into a temporary directory
//      (data/tar.h validates every member), moves the wanted members into the target and
//      removes the archive; a "<archive>.contents.md5" file (md5sum -c format) then records
//      the unpacked files' MD5s so that the next run can verify and skip them.
// Every failure throws std::runtime_error with one line naming the URL or file, what was
// expected and what was found.
//
// Tests and local mirrors: FetchOptions::base_url replaces the scheme and host of every
// URL (https://www.cs.toronto.edu/~kriz/x.tar.gz -> <base_url>/~kriz/x.tar.gz). The
// `crayon fetch` command takes it from $CRAYON_FETCH_BASE_URL. Checksums never change.
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace crayon {

inline constexpr const char* kFetchBaseUrlEnv = "CRAYON_FETCH_BASE_URL";
// Largest download accepted when a file's size is not published (CIFAR-10 is 170 MB).
inline constexpr uint64_t kFetchMaxBytes = uint64_t(2) << 30;

struct RemoteFile {
  std::string name;               // saved as <dir>/<name> (an archive only while unpacking)
  std::vector<std::string> urls;  // tried in order: the official one first, then mirrors
  std::string md5;                // of the whole file, 32 hex digits
  uint64_t size = 0;              // bytes, when published; 0 = unknown
  // Archives (.tar or .tar.gz) are unpacked: the members under `strip` (e.g. the archive's
  // top folder "cifar-10-batches-bin/") land in <dir> with that prefix removed. `members`
  // lists the ones wanted (relative to strip; each must be present); empty = all files.
  bool unpack = false;
  std::string strip;
  std::vector<std::string> members;
};

struct DatasetSource {
  std::string name;         // "cifar10"
  std::string description;  // one line for --help
  std::vector<RemoteFile> files;
};

// Bytes received so far and the total (0 when the server does not say). It may throw
// FetchCancelled to stop the transfer (on Ctrl-C, say): the download's temporary file is
// removed and no mirror is tried.
using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

struct FetchCancelled : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct FetchOptions {
  std::string base_url;                    // "" = the real URLs; else "http://host[:port][/prefix]"
  bool force = false;                      // download even what is present and verified
  uint64_t max_bytes = kFetchMaxBytes;     // cap for files whose size is unknown
  std::function<void(const std::string&)> log;  // one line per step (library code never prints)
  ProgressFn progress;
};

struct FetchedFile {
  std::string name;
  std::string url;  // where it came from; "" when skipped
  std::string md5;  // verified
  uint64_t bytes = 0;
  bool skipped = false;               // already present and verified
  std::vector<std::string> unpacked;  // for an archive: the files it put in the target
};

// The datasets `crayon fetch` knows: mnist, fashion-mnist, kmnist, cifar10.
const std::vector<DatasetSource>& fetch_registry();
// By name; throws std::invalid_argument listing the known names.
const DatasetSource& fetch_source(const std::string& name);
// Where `crayon fetch NAME` puts it: <data root>/NAME (see data_dir.h), which is where
// load_dataset looks first.
std::string fetch_default_dir(const std::string& name);

// Download, verify and unpack every file of src into dir (created if missing).
std::vector<FetchedFile> fetch_dataset(const DatasetSource& src, const std::string& dir,
                                       const FetchOptions& opts = {});

// One HTTP(S) GET into dest (created or truncated), following redirects. Throws naming
// the URL for a connection error, an HTTP status >= 400, or more than max_bytes.
// Returns the bytes written.
uint64_t download(const std::string& url, const std::string& dest, uint64_t max_bytes = kFetchMaxBytes,
                  const ProgressFn& progress = {});

// url with its scheme and host (and port) replaced by base_url; url itself when base_url
// is empty. Throws std::invalid_argument for a base_url that is not http(s)://host...
std::string with_base_url(const std::string& url, const std::string& base_url);

}  // namespace crayon
