#include "data/fetch.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "core/check.h"
#include "data/data_dir.h"
#include "data/md5.h"
#include "data/tar.h"

namespace crayon {

namespace fs = std::filesystem;

// ---- the registry ------------------------------------------------------------------------
// Checksums are the ones the datasets' authors publish (and torchvision checks):
//   MNIST          http://yann.lecun.com/exdb/mnist/ (data/mnist/README.md: our copies match)
//   Fashion-MNIST  github.com/zalandoresearch/fashion-mnist README, "Get the Data"
//   KMNIST         github.com/rois-codh/kmnist (torchvision.datasets.KMNIST)
//   CIFAR-10       https://www.cs.toronto.edu/~kriz/cifar.html, "binary version"

namespace {

std::vector<RemoteFile> idx_files(const std::vector<std::string>& bases,
                                  const std::vector<std::pair<std::string, std::string>>& name_md5,
                                  const std::vector<uint64_t>& sizes) {
  std::vector<RemoteFile> out;
  for (size_t i = 0; i < name_md5.size(); ++i) {
    RemoteFile f;
    f.name = name_md5[i].first;
    for (const auto& b : bases) f.urls.push_back(b + f.name);
    f.md5 = name_md5[i].second;
    f.size = sizes.empty() ? 0 : sizes[i];
    out.push_back(f);
  }
  return out;
}

std::vector<DatasetSource> make_registry() {
  std::vector<DatasetSource> r;
  // yann.lecun.com often refuses downloads (HTTP 403), hence torchvision's mirror after it.
  r.push_back({"mnist", "MNIST handwritten digits: 4 IDX .gz files, 11 MB",
               idx_files({"http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"},
                         {{"train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"},
                          {"train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"},
                          {"t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"},
                          {"t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"}},
                         {9912422, 28881, 1648877, 4542})});
  r.push_back({"fashion-mnist", "Zalando Fashion-MNIST: 4 IDX .gz files, 30 MB",
               idx_files({"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                          "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"},
                         {{"train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"},
                          {"train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"},
                          {"t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"},
                          {"t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"}},
                         {26421880, 29515, 4422102, 5148})});
  r.push_back({"kmnist", "Kuzushiji-MNIST (cursive Japanese): 4 IDX .gz files, 20 MB",
               idx_files({"http://codh.rois.ac.jp/kmnist/dataset/kmnist/"},
                         {{"train-images-idx3-ubyte.gz", "bdb82020997e1d708af4cf47b453dcf7"},
                          {"train-labels-idx1-ubyte.gz", "e144d726b3acfaa3e44228e80efcd344"},
                          {"t10k-images-idx3-ubyte.gz", "5c965bf0a639b31b8f53240b1b52f4d7"},
                          {"t10k-labels-idx1-ubyte.gz", "7320c461ea6c1c855c0b718fb2a4b134"}},
                         {})});
  RemoteFile cifar;
  cifar.name = "cifar-10-binary.tar.gz";
  cifar.urls = {"https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"};
  cifar.md5 = "c32a1d4ab5d03f1284b67883e8d87530";
  cifar.size = 170052171;
  cifar.unpack = true;
  cifar.strip = "cifar-10-batches-bin/";
  cifar.members = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                   "data_batch_5.bin", "test_batch.bin",   "batches.meta.txt"};
  r.push_back({"cifar10", "CIFAR-10 binary version: 1 .tar.gz, 170 MB, unpacked to 6 batches of 10000",
               {cifar}});
  return r;
}

std::string known_names() {
  std::string s;
  for (const auto& d : fetch_registry()) s += (s.empty() ? "" : ", ") + d.name;
  return s;
}

}  // namespace

const std::vector<DatasetSource>& fetch_registry() {
  static const std::vector<DatasetSource> registry = make_registry();
  return registry;
}

const DatasetSource& fetch_source(const std::string& name) {
  for (const auto& d : fetch_registry())
    if (d.name == name) return d;
  throw std::invalid_argument(str("unknown dataset '", name, "': expected one of ", known_names()));
}

std::string fetch_default_dir(const std::string& name) { return (fs::path(data_root()) / name).string(); }

// ---- URLs and HTTP -----------------------------------------------------------------------

std::string with_base_url(const std::string& url, const std::string& base_url) {
  if (base_url.empty()) return url;
  const auto scheme_end = base_url.find("://");
  const std::string scheme = scheme_end == std::string::npos ? "" : base_url.substr(0, scheme_end);
  if ((scheme != "http" && scheme != "https") || base_url.size() == scheme_end + 3)
    throw std::invalid_argument(str("base URL '", base_url, "': expected http://host[:port][/prefix] or https://..."));
  const auto host = url.find("://");
  if (host == std::string::npos) throw std::invalid_argument(str("URL '", url, "': expected scheme://host/path"));
  const auto path = url.find('/', host + 3);
  std::string base = base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base + (path == std::string::npos ? "/" : url.substr(path));
}

namespace {

struct Transfer {
  std::FILE* file = nullptr;
  uint64_t written = 0, max_bytes = 0;
  bool over_limit = false;
  int write_errno = 0;
  const ProgressFn* progress = nullptr;
  std::exception_ptr progress_error;
};

size_t on_write(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t bytes = size * n;
  if (bytes > t->max_bytes - t->written) {
    t->over_limit = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  if (std::fwrite(data, 1, bytes, t->file) != bytes) {
    t->write_errno = errno;
    return 0;
  }
  t->written += bytes;
  return bytes;
}

int on_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  try {  // nothing may unwind through libcurl's C frames
    (*t->progress)(uint64_t(now), uint64_t(total));
  } catch (...) {
    t->progress_error = std::current_exception();
    return 1;
  }
  return 0;
}

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw std::runtime_error("libcurl: initialization failed");
  });
}

}  // namespace

uint64_t download(const std::string& url, const std::string& dest, uint64_t max_bytes, const ProgressFn& progress) {
  curl_init_once();
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) throw std::runtime_error(str(url, ": libcurl could not start a transfer"));
  Transfer t;
  t.max_bytes = max_bytes;
  t.progress = progress ? &progress : nullptr;
  t.file = std::fopen(dest.c_str(), "wb");
  if (!t.file) throw std::runtime_error(str(dest, ": cannot create: ", std::strerror(errno)));
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(t.file, std::fclose);

  char errbuf[CURL_ERROR_SIZE] = "";
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);  // HTTP >= 400 is an error, its body is not data
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
#if LIBCURL_VERSION_NUM >= 0x075500  // 7.85.0
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(c, CURLOPT_PROTOCOLS, long(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, long(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(max_bytes));  // refuses early on Content-Length
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);  // give up below 1 KB/s for a minute
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "crayon-fetch/0.1");
  if (t.progress) {
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  }

  const CURLcode res = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (t.progress_error) std::rethrow_exception(t.progress_error);
  // The status first: an error page's size says nothing about the file's.
  if (res == CURLE_HTTP_RETURNED_ERROR || status >= 400 || (res == CURLE_OK && (status < 200 || status > 299)))
    throw std::runtime_error(str(url, ": expected HTTP status 200, got ", status));
  if (t.over_limit || res == CURLE_FILESIZE_EXCEEDED)
    throw std::runtime_error(str(url, ": expected at most ", max_bytes, " bytes, the server sends more"));
  if (t.write_errno) throw std::runtime_error(str(dest, ": write error: ", std::strerror(t.write_errno)));
  if (res != CURLE_OK)
    throw std::runtime_error(str(url, ": ", *errbuf ? errbuf : curl_easy_strerror(res)));

  // On disk before anyone renames it into place.
  if (std::fflush(t.file) != 0 || ::fsync(fileno(t.file)) != 0)
    throw std::runtime_error(str(dest, ": write error: ", std::strerror(errno)));
  std::FILE* f = file.release();
  if (std::fclose(f) != 0) throw std::runtime_error(str(dest, ": write error: ", std::strerror(errno)));
  return t.written;
}

// ---- fetching ----------------------------------------------------------------------------

namespace {

// A temporary file or directory, removed (with its contents) unless released.
class TempPath {
 public:
  explicit TempPath(fs::path p) : path_(std::move(p)) {}
  TempPath(TempPath&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  TempPath& operator=(TempPath&&) = delete;
  ~TempPath() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  fs::path path_;
};

mode_t file_mode() {  // what a plain creat(0666) would give: mkstemp makes 0600 files
  const mode_t mask = ::umask(0);
  ::umask(mask);
  return 0666 & ~mask;
}

// Hidden names in the target dir, so that a crash leaves nothing a loader would pick up.
TempPath temp_file(const fs::path& dir, const std::string& stem) {
  std::string name = (dir / ("." + stem + ".part-XXXXXX")).string();
  const int fd = ::mkstemp(name.data());
  if (fd < 0) throw std::runtime_error(str(dir.string(), ": cannot create a temporary file: ", std::strerror(errno)));
  ::fchmod(fd, file_mode());
  ::close(fd);
  return TempPath(name);
}

TempPath temp_dir(const fs::path& dir, const std::string& stem) {
  std::string name = (dir / ("." + stem + ".unpack-XXXXXX")).string();
  if (!::mkdtemp(name.data()))
    throw std::runtime_error(str(dir.string(), ": cannot create a temporary directory: ", std::strerror(errno)));
  return TempPath(name);
}

void say(const FetchOptions& o, const std::string& line) {
  if (o.log) o.log(line);
}

bool is_md5(const std::string& s) {
  return s.size() == 32 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

bool is_safe_relative(const std::string& p) {
  if (p.empty() || p[0] == '/') return false;
  for (const auto& part : fs::path(p))
    if (part == ".." || part == ".") return false;
  return true;
}

void validate(const DatasetSource& src) {
  const auto bad = [&](const std::string& what) {
    throw std::invalid_argument(str("dataset source '", src.name, "': ", what));
  };
  if (src.files.empty()) bad("expected at least one file");
  for (const auto& f : src.files) {
    if (f.name.empty() || f.name.find('/') != std::string::npos || f.name[0] == '.')
      bad(str("file name '", f.name, "': expected a plain name, not a path or a hidden file"));
    if (f.urls.empty()) bad(str(f.name, ": expected at least one URL"));
    if (!is_md5(f.md5)) bad(str(f.name, ": expected an MD5 of 32 lowercase hex digits, got '", f.md5, "'"));
    for (const auto& m : f.members)
      if (!is_safe_relative(m)) bad(str(f.name, ": member '", m, "' is not a plain relative path"));
    if (!f.unpack && (!f.members.empty() || !f.strip.empty())) bad(str(f.name, ": members given but unpack is off"));
  }
}

// Try each URL in turn; return the verified temporary file.
TempPath download_verified(const RemoteFile& f, const fs::path& dir, const FetchOptions& o, FetchedFile& out) {
  std::string errors;
  for (size_t i = 0; i < f.urls.size(); ++i) {
    const std::string url = with_base_url(f.urls[i], o.base_url);
    TempPath tmp = temp_file(dir, f.name);
    try {
      say(o, str("downloading ", url));
      const uint64_t n = download(url, tmp.path().string(), f.size ? f.size : o.max_bytes, o.progress);
      if (f.size && n != f.size) throw std::runtime_error(str(url, ": expected ", f.size, " bytes, got ", n));
      const std::string md5 = md5_file(tmp.path().string());
      if (md5 != f.md5)
        throw std::runtime_error(str(url, ": checksum mismatch for ", f.name, ": expected MD5 ", f.md5, ", got ", md5,
                                     " (", n, " bytes)"));
      say(o, str(f.name, ": ", n, " bytes, MD5 ", md5, " verified"));
      out.url = url;
      out.md5 = md5;
      out.bytes = n;
      return tmp;
    } catch (const FetchCancelled&) {
      throw;
    } catch (const std::exception& e) {
      errors += (errors.empty() ? "" : "; ") + std::string(e.what());
      if (i + 1 < f.urls.size()) say(o, str(e.what(), " (trying the next mirror)"));
    }
  }
  throw std::runtime_error(errors);
}

void move_into_place(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) throw std::runtime_error(str(to.string(), ": cannot move the verified file into place: ", ec.message()));
}

FetchedFile fetch_plain(const RemoteFile& f, const fs::path& dir, const FetchOptions& o) {
  FetchedFile out;
  out.name = f.name;
  const fs::path target = dir / f.name;
  std::error_code ec;
  if (!o.force && fs::is_regular_file(target, ec)) {
    const std::string md5 = md5_file(target.string());
    if (md5 == f.md5) {
      say(o, str(f.name, ": present, MD5 ", md5, " verified, skipped"));
      out.md5 = md5;
      out.bytes = fs::file_size(target, ec);
      out.skipped = true;
      return out;
    }
    say(o, str(target.string(), ": MD5 is ", md5, ", expected ", f.md5, "; downloading it again"));
  }
  TempPath tmp = download_verified(f, dir, o, out);
  move_into_place(tmp.path(), target);
  tmp.release();
  return out;
}

// The manifest an unpacked archive leaves: "<md5>  <file>" lines (md5sum -c format).
fs::path manifest_path(const fs::path& dir, const RemoteFile& f) { return dir / (f.name + ".contents.md5"); }

// The files a previous run unpacked, when they are all still there with their MD5s.
std::optional<std::vector<std::string>> verified_contents(const fs::path& dir, const RemoteFile& f,
                                                          const FetchOptions& o) {
  std::ifstream in(manifest_path(dir, f));
  if (!in) return std::nullopt;
  std::vector<std::pair<std::string, std::string>> entries;  // (file, md5)
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() < 35 || !is_md5(line.substr(0, 32)) || line.substr(32, 2) != "  " ||
        !is_safe_relative(line.substr(34)))
      return std::nullopt;
    entries.emplace_back(line.substr(34), line.substr(0, 32));
  }
  if (entries.empty()) return std::nullopt;
  for (const auto& want : f.members) {
    bool listed = false;
    for (const auto& e : entries) listed = listed || e.first == want;
    if (!listed) return std::nullopt;
  }
  std::vector<std::string> names;
  for (const auto& [name, md5] : entries) {
    std::error_code ec;
    const fs::path p = dir / name;
    if (!fs::is_regular_file(p, ec) || md5_file(p.string()) != md5) {
      say(o, str(p.string(), ": missing or changed since ", f.name, " was unpacked; fetching it again"));
      return std::nullopt;
    }
    names.push_back(name);
  }
  return names;
}

FetchedFile fetch_archive(const RemoteFile& f, const fs::path& dir, const FetchOptions& o) {
  FetchedFile out;
  out.name = f.name;
  if (!o.force)
    if (auto names = verified_contents(dir, f, o)) {
      say(o, str(f.name, ": its ", names->size(), " files are present, MD5s verified against ",
                 manifest_path(dir, f).filename().string(), ", skipped"));
      out.skipped = true;
      out.md5 = f.md5;
      out.unpacked = *names;
      return out;
    }
  TempPath archive = download_verified(f, dir, o, out);
  TempPath unpack = temp_dir(dir, f.name);
  say(o, str("unpacking ", f.name));
  std::vector<TarMember> members;
  try {
    members = extract_tar(archive.path().string(), unpack.path().string());
  } catch (const std::runtime_error& e) {
    // Name the URL and the file, not the hidden temporary the archive was read from.
    std::string msg = e.what();
    const std::string tmp = archive.path().string();
    for (size_t at; (at = msg.find(tmp)) != std::string::npos;) msg.replace(at, tmp.size(), f.name);
    if (msg.rfind(f.name + ": ", 0) == 0) msg.erase(0, f.name.size() + 2);
    throw std::runtime_error(str(out.url, ": ", msg));
  }

  // Choose the members (paths below f.strip) that land in dir.
  std::string strip = f.strip;
  if (!strip.empty() && strip.back() != '/') strip += '/';
  std::vector<std::string> chosen = f.members;
  if (chosen.empty())
    for (const auto& m : members)
      if (m.type == TarMember::Type::kFile && m.path.size() > strip.size() && m.path.compare(0, strip.size(), strip) == 0)
        chosen.push_back(m.path.substr(strip.size()));
  if (chosen.empty()) throw std::runtime_error(str(out.url, ": expected files under '", strip, "' in ", f.name, ", found none"));
  const fs::path root = unpack.path() / strip;
  std::string manifest;
  for (const auto& c : chosen) {
    std::error_code ec;
    if (!fs::is_regular_file(root / c, ec))
      throw std::runtime_error(str(out.url, ": expected the member '", strip, c, "' in ", f.name, ", not found"));
    manifest += md5_file((root / c).string()) + "  " + c + "\n";
  }
  // Everything is verified and unpacked: only renames are left. The manifest goes last,
  // so an interruption before it makes the next run unpack again.
  for (const auto& c : chosen) {
    std::error_code ec;
    fs::create_directories((dir / c).parent_path(), ec);
    move_into_place(root / c, dir / c);
    say(o, str("  ", (dir / c).string()));
  }
  TempPath tmp = temp_file(dir, manifest_path(dir, f).filename().string());
  {
    std::ofstream m(tmp.path(), std::ios::binary | std::ios::trunc);
    m << manifest;
    m.flush();
    if (!m) throw std::runtime_error(str(tmp.path().string(), ": write error"));
  }
  move_into_place(tmp.path(), manifest_path(dir, f));
  tmp.release();
  out.unpacked = chosen;
  return out;
}

}  // namespace

std::vector<FetchedFile> fetch_dataset(const DatasetSource& src, const std::string& dir, const FetchOptions& opts) {
  validate(src);
  with_base_url(src.files[0].urls[0], opts.base_url);  // a bad base URL fails before anything is touched
  if (dir.empty()) throw std::invalid_argument(str("fetch ", src.name, ": expected a target directory, got ''"));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir, ec)) {
    throw std::runtime_error(str(dir, ": cannot create the target directory: ",
                                 ec ? ec.message() : "a file of that name exists"));
  }
  std::vector<FetchedFile> out;
  for (const auto& f : src.files) out.push_back(f.unpack ? fetch_archive(f, dir, opts) : fetch_plain(f, dir, opts));
  return out;
}

}  // namespace crayon
