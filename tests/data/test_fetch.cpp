// crayon fetch against a real HTTP server on 127.0.0.1 (python3 -m http.server over a
// temporary directory of files the test writes): there is no internet here, and the
// official hosts are mapped onto it with FetchOptions::base_url.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "data/dataset.h"
#include "data/fetch.h"
#include "data/md5.h"
#include "tests/data/files.h"
#include "tests/data/tar_writer.h"

using namespace crayon;
using namespace crayon::test;
namespace fs = std::filesystem;

namespace {

int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("test: cannot find a free port");
  ::close(s);
  return ntohs(a.sin_port);
}

bool answers(int port) {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(uint16_t(port));
  const bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(s);
  return ok;
}

// Debian's interpreter when present: a version-manager shim first in PATH can take a
// second to start.
const char* python() { return ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3"; }

// python3 -m http.server on 127.0.0.1 serving a temporary directory; killed when it goes
// out of scope (a failed CHECK or an exception included), and by the kernel should the
// test process die first (PR_SET_PDEATHSIG).
class HttpServer {
 public:
  HttpServer() {
    // Never send 127.0.0.1 through a proxy a developer may have configured.
    ::setenv("no_proxy", "127.0.0.1,localhost", 1);
    ::setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    for (int attempt = 0; attempt < 5; ++attempt) {  // the free port may be taken in between
      port_ = free_port();
      start();
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (std::chrono::steady_clock::now() < deadline) {
        int status;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          break;  // exited: port taken, or no python3
        }
        if (answers(port_)) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      stop();
    }
    throw std::runtime_error("test: python3 -m http.server did not start");
  }
  ~HttpServer() { stop(); }
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Put a file at URL path rel (e.g. "~kriz/cifar-10-binary.tar.gz").
  void serve(const std::string& rel, const Bytes& bytes) const {
    const fs::path p = root_.path() / rel;
    fs::create_directories(p.parent_path());
    write_raw(p.string(), bytes);
  }
  void unserve(const std::string& rel) const { fs::remove(root_.path() / rel); }

 private:
  void start() {
    const std::string port = std::to_string(port_), root = root_.path().string();
    const char* py = python();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("test: fork failed");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
      ::execlp(py, "python3", "-m", "http.server", "--bind", "127.0.0.1", port.c_str(), "--directory",
               root.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  TempDir root_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// Every name in dir, hidden ones included, sorted.
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string md5_of(const Bytes& b) { return md5_hex(std::string_view(reinterpret_cast<const char*>(b.data()), b.size())); }

// A tiny cifar-10-binary.tar.gz laid out like the official one: 3 valid records per batch.
Bytes tiny_cifar_archive() {
  std::vector<TarEntry> entries = {{"cifar-10-batches-bin/", {}, '5'}};
  for (int k = 1; k <= 5; ++k) entries.push_back({"cifar-10-batches-bin/data_batch_" + std::to_string(k) + ".bin", cifar_bytes(3)});
  entries.push_back({"cifar-10-batches-bin/test_batch.bin", cifar_bytes(3)});
  entries.push_back({"cifar-10-batches-bin/batches.meta.txt",
                     text_bytes("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n")});
  entries.push_back({"cifar-10-batches-bin/readme.html", text_bytes("<html>not wanted</html>")});
  return gzip_bytes(tar_bytes(entries));
}

// The registry's CIFAR-10 source (official URL, prefix, members) with the checksum and
// size of the archive the test serves: the only thing a test may change.
DatasetSource cifar_source_for(const Bytes& archive) {
  DatasetSource src = fetch_source("cifar10");
  src.files.at(0).md5 = md5_of(archive);
  src.files.at(0).size = archive.size();
  return src;
}

// A one-file source with a URL on example.org (mapped onto the test server).
DatasetSource one_file(const std::string& name, const std::string& url, const std::string& md5, uint64_t size) {
  RemoteFile f;
  f.name = name;
  f.urls = {url};
  f.md5 = md5;
  f.size = size;
  DatasetSource src;
  src.name = "one";
  src.files = {f};
  return src;
}

const char* kCifarPath = "~kriz/cifar-10-binary.tar.gz";

}  // namespace

TEST_CASE("fetch: the registry holds the official URLs and published checksums") {
  const RemoteFile& cifar = fetch_source("cifar10").files.at(0);
  CHECK(cifar.urls.at(0) == "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz");
  CHECK(cifar.md5 == "c32a1d4ab5d03f1284b67883e8d87530");
  CHECK(cifar.unpack);
  // Our MNIST copies are byte-identical to the official files: the registry must agree.
  for (const RemoteFile& f : fetch_source("mnist").files) {
    CAPTURE(f.name);
    const std::string local = std::string(CRAYON_SOURCE_DIR) + "/data/mnist/" + f.name;
    CHECK(md5_file(local) == f.md5);
    CHECK(fs::file_size(local) == f.size);
  }
  CHECK(fetch_source("fashion-mnist").files.at(0).md5 == "8d4fb7e6c68d591d4c3dfef9ec88bf0d");
  CHECK(fetch_source("kmnist").files.size() == 4);
  const std::string err = error_of([] { fetch_source("imagenet"); });
  CHECK(contains(err, "unknown dataset 'imagenet'"));
  CHECK(contains(err, "cifar10"));
}

TEST_CASE("fetch: the base URL replaces scheme and host, keeping the path") {
  CHECK(with_base_url("https://www.cs.toronto.edu/~kriz/c.tar.gz", "http://127.0.0.1:8000") ==
        "http://127.0.0.1:8000/~kriz/c.tar.gz");
  CHECK(with_base_url("https://www.cs.toronto.edu/~kriz/c.tar.gz", "http://mirror/data/") ==
        "http://mirror/data/~kriz/c.tar.gz");
  CHECK(with_base_url("https://host/x", "") == "https://host/x");
  CHECK(contains(error_of([] { with_base_url("https://host/x", "ftp://mirror"); }), "base URL 'ftp://mirror'"));
  CHECK(contains(error_of([] { with_base_url("https://host/x", "127.0.0.1:8000"); }), "expected http://"));
}

TEST_CASE("fetch: a verified tar.gz unpacks into place, loads with load_cifar10, and is skipped next time") {
  HttpServer server;
  const Bytes archive = tiny_cifar_archive();
  server.serve(kCifarPath, archive);
  const DatasetSource src = cifar_source_for(archive);
  TempDir work;
  const fs::path dir = work.path() / "cifar10";
  std::vector<std::string> log;
  FetchOptions o;
  o.base_url = server.url();
  o.log = [&](const std::string& line) { log.push_back(line); };

  const auto got = fetch_dataset(src, dir.string(), o);
  REQUIRE(got.size() == 1);
  CHECK(!got[0].skipped);
  CHECK(got[0].url == server.url() + "/~kriz/cifar-10-binary.tar.gz");
  CHECK(got[0].md5 == md5_of(archive));
  CHECK(got[0].unpacked.size() == 7);
  // The batches directly in dir, no archive, no readme, no temporary files.
  CHECK(listing(dir) == std::vector<std::string>{"batches.meta.txt", "cifar-10-binary.tar.gz.contents.md5",
                                                 "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                                 "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"});
  const Dataset train = load_cifar10(dir.string(), true), test = load_cifar10(dir.string(), false);
  CHECK(train.size() == 15);
  CHECK(test.size() == 3);
  CHECK(train.class_names().at(9) == "truck");
  CHECK(contains(read_text(dir / "cifar-10-binary.tar.gz.contents.md5"),
                 md5_of(cifar_bytes(3)) + "  data_batch_1.bin\n"));
  CHECK(listing(work.path()) == std::vector<std::string>{"cifar10"});


  // A second run verifies the unpacked files against the manifest and downloads nothing.
  server.unserve(kCifarPath);  // it would be a 404 if it tried
  const auto again = fetch_dataset(src, dir.string(), o);
  CHECK(again.at(0).skipped);
  CHECK(again.at(0).unpacked.size() == 7);
  CHECK(contains(log.back(), "skipped"));

  // A changed file is noticed and the archive fetched again.
  server.serve(kCifarPath, archive);
  write_raw((dir / "data_batch_3.bin").string(), cifar_bytes(2));
  CHECK(!fetch_dataset(src, dir.string(), o).at(0).skipped);
  CHECK(load_cifar10(dir.string(), true).size() == 15);

  // force downloads even what is present and verified.
  o.force = true;
  CHECK(!fetch_dataset(src, dir.string(), o).at(0).skipped);
  CHECK(listing(dir).size() == 8);
}

TEST_CASE("fetch: plain IDX files download from a mirror when the official URL fails, and load") {
  HttpServer server;
  DatasetSource src = fetch_source("mnist");  // official yann.lecun.com first, then the ossci mirror
  const Bytes images = gzip_bytes(idx_bytes({3, 28, 28}, pattern_pixels(3, 28, 28)));
  const Bytes labels = gzip_bytes(idx_bytes({3}, pattern_labels(3)));
  for (RemoteFile& f : src.files) {
    const Bytes& b = f.name.find("images") != std::string::npos ? images : labels;
    f.md5 = md5_of(b);
    f.size = b.size();
    server.serve("mnist/" + f.name, b);  // the mirror's path only: /exdb/mnist/... is a 404
  }
  TempDir work;
  std::vector<std::string> log;
  FetchOptions o;
  o.base_url = server.url();
  o.log = [&](const std::string& line) { log.push_back(line); };
  const auto got = fetch_dataset(src, work.path().string(), o);
  REQUIRE(got.size() == 4);
  CHECK(got[0].url == server.url() + "/mnist/train-images-idx3-ubyte.gz");
  CHECK(listing(work.path()) == std::vector<std::string>{"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                                                         "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"});
  CHECK(load_mnist_like(work.path().string(), true).size() == 3);
  bool told = false;
  for (const auto& line : log) told = told || (contains(line, "/exdb/mnist/") && contains(line, "404"));
  CHECK(told);

  const auto again = fetch_dataset(src, work.path().string(), o);
  for (const auto& f : again) CHECK(f.skipped);
}

TEST_CASE("fetch: a checksum mismatch names the URL and both MD5s and leaves nothing behind") {
  HttpServer server;
  const Bytes archive = tiny_cifar_archive();
  DatasetSource src = cifar_source_for(archive);
  const std::string expected = src.files[0].md5;
  Bytes tampered = archive;
  tampered[tampered.size() / 2] ^= 0x40;
  server.serve(kCifarPath, tampered);
  TempDir work;
  const fs::path dir = work.path() / "cifar10";
  FetchOptions o;
  o.base_url = server.url();
  const std::string err = error_of([&] { fetch_dataset(src, dir.string(), o); });
  CHECK(contains(err, server.url() + "/~kriz/cifar-10-binary.tar.gz"));
  CHECK(contains(err, "checksum mismatch"));
  CHECK(contains(err, "expected MD5 " + expected));
  CHECK(contains(err, "got " + md5_of(tampered)));
  CHECK(listing(dir).empty());  // no temporary file, nothing unpacked
}

TEST_CASE("fetch: a file already present with the wrong MD5 is replaced only by a verified one") {
  HttpServer server;
  DatasetSource src = one_file("f.gz", "https://example.org/files/f.gz", md5_of(text_bytes("good")), 4);
  TempDir work;
  write_raw((work / "f.gz"), text_bytes("old!"));
  FetchOptions o;
  o.base_url = server.url();
  server.serve("files/f.gz", text_bytes("bad!"));
  CHECK(contains(error_of([&] { fetch_dataset(src, work.path().string(), o); }), "checksum mismatch"));
  CHECK(read_text(work.path() / "f.gz") == "old!");  // untouched by the failed download
  server.serve("files/f.gz", text_bytes("good"));
  CHECK(!fetch_dataset(src, work.path().string(), o).at(0).skipped);
  CHECK(read_text(work.path() / "f.gz") == "good");
  CHECK(listing(work.path()) == std::vector<std::string>{"f.gz"});
}

TEST_CASE("fetch: a 404 and a refused connection are errors naming the URL") {
  DatasetSource src = one_file("f.gz", "https://example.org/files/f.gz", md5_of(text_bytes("x")), 0);
  TempDir work;
  FetchOptions o;
  {
    HttpServer server;
    o.base_url = server.url();
    const std::string err = error_of([&] { fetch_dataset(src, work.path().string(), o); });
    CHECK(contains(err, server.url() + "/files/f.gz"));
    CHECK(contains(err, "expected HTTP status 200, got 404"));
    CHECK(listing(work.path()).empty());
  }
  o.base_url = "http://127.0.0.1:" + std::to_string(free_port());  // nobody listens there
  const std::string err = error_of([&] { fetch_dataset(src, work.path().string(), o); });
  CHECK(contains(err, o.base_url + "/files/f.gz"));
  CHECK(listing(work.path()).empty());
}

TEST_CASE("fetch: a size other than the published one is refused") {
  HttpServer server;
  server.serve("files/f.gz", text_bytes("twelve bytes"));
  TempDir work;
  FetchOptions o;
  o.base_url = server.url();
  DatasetSource src = one_file("f.gz", "https://example.org/files/f.gz", md5_of(text_bytes("twelve bytes")), 10);
  CHECK(contains(error_of([&] { fetch_dataset(src, work.path().string(), o); }), "expected at most 10 bytes"));
  src.files[0].size = 20;
  CHECK(contains(error_of([&] { fetch_dataset(src, work.path().string(), o); }), "expected 20 bytes, got 12"));
  src.files[0].size = 0;
  o.max_bytes = 5;  // the cap for files of unknown size
  CHECK(contains(error_of([&] { fetch_dataset(src, work.path().string(), o); }), "expected at most 5 bytes"));
  CHECK(listing(work.path()).empty());
}

TEST_CASE("fetch: an archive with '../evil', a symlink or a truncated stream is refused, nothing written") {
  const std::pair<const char*, Bytes> cases[] = {
      {"'..' component", gzip_bytes(tar_bytes({{"cifar-10-batches-bin/data_batch_1.bin", cifar_bytes(3)},
                                                {"cifar-10-batches-bin/../../evil", text_bytes("pwned")}}))},
      {"symbolic link", gzip_bytes(tar_bytes({{"cifar-10-batches-bin/test_batch.bin", {}, '2', "/etc/passwd"}}))},
      {"unexpected end of file", [] {  // checksum-correct but cut short: the archive itself is bad
         const Bytes whole = tiny_cifar_archive();
         return Bytes(whole.begin(), whole.begin() + whole.size() * 2 / 3);
       }()},
  };
  HttpServer server;
  for (const auto& [what, archive] : cases) {
    CAPTURE(what);
    server.serve(kCifarPath, archive);
    TempDir work;
    const fs::path dir = work.path() / "cifar10";
    FetchOptions o;
    o.base_url = server.url();
    const std::string err = error_of([&] { fetch_dataset(cifar_source_for(archive), dir.string(), o); });
    CHECK(err.rfind(server.url() + "/~kriz/cifar-10-binary.tar.gz: ", 0) == 0);
    CHECK(contains(err, what));
    CHECK(!contains(err, ".part-"));  // the temporary's name is not the user's business
    CHECK(listing(dir).empty());                                         // no archive, no temp dir
    CHECK(listing(work.path()) == std::vector<std::string>{"cifar10"});  // nothing next to it
  }
}

TEST_CASE("fetch: download follows redirects") {
  HttpServer server;
  server.serve("sub/index.txt", text_bytes("x"));
  TempDir work;
  // http.server answers /sub with 301 -> /sub/, whose directory listing names index.txt.
  const uint64_t n = download(server.url() + "/sub", (work / "page"));
  CHECK(n > 0);
  CHECK(contains(read_text(work.path() / "page"), "index.txt"));
}

TEST_CASE("fetch: a bad source or base URL is refused before anything is touched") {
  TempDir work;
  const fs::path dir = work.path() / "never";
  FetchOptions o;
  o.base_url = "file:///etc";
  CHECK(contains(error_of([&] { fetch_dataset(fetch_source("mnist"), dir.string(), o); }), "base URL 'file:///etc'"));
  DatasetSource bad = one_file("f.gz", "https://example.org/f.gz", "not-an-md5", 0);
  CHECK(contains(error_of([&] { fetch_dataset(bad, dir.string()); }), "expected an MD5 of 32 lowercase hex digits"));
  bad = one_file("../f.gz", "https://example.org/f.gz", md5_hex(""), 0);
  CHECK(contains(error_of([&] { fetch_dataset(bad, dir.string()); }), "expected a plain name"));
  CHECK(!fs::exists(dir));
}

TEST_CASE("fetch: a progress callback can cancel a download, no mirror is tried and nothing is left") {
  HttpServer server;
  server.serve("a/f.gz", Bytes(100000, 1));
  server.serve("b/f.gz", Bytes(100000, 1));
  DatasetSource src = one_file("f.gz", "https://example.org/a/f.gz", md5_of(Bytes(100000, 1)), 100000);
  src.files[0].urls.push_back("https://mirror.example.org/b/f.gz");
  TempDir work;
  std::vector<std::string> log;
  FetchOptions o;
  o.base_url = server.url();
  o.log = [&](const std::string& line) { log.push_back(line); };
  o.progress = [](uint64_t, uint64_t) { throw FetchCancelled("interrupted"); };
  CHECK_THROWS_AS(fetch_dataset(src, work.path().string(), o), FetchCancelled);
  CHECK(log == std::vector<std::string>{"downloading " + server.url() + "/a/f.gz"});
  CHECK(listing(work.path()).empty());
}
