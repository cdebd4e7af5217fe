#include "core/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <stdexcept>

#include "core/check.h"
#include "core/parse.h"

namespace crayon {

namespace {

void remove_stale_temporaries(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const std::string prefix = target.filename().string() + ".tmp.";
  std::error_code ec;
  fs::directory_iterator it(target.has_parent_path() ? target.parent_path() : ".", ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string_view rest = std::string_view(name).substr(prefix.size());  // "<pid>.<n>"
    const size_t dot = rest.find('.');
    unsigned pid = 0;
    uint64_t n = 0;
    if (dot == rest.npos || !parse_number(rest.substr(0, dot), pid) || !parse_number(rest.substr(dot + 1), n))
      continue;  // digits only: parse_number takes no sign for unsigned types
    // kill(pid <= 0) would address process groups; EPERM means alive but someone else's.
    if (pid == 0 || pid > unsigned(std::numeric_limits<pid_t>::max()) || pid_t(pid) == ::getpid() ||
        ::kill(pid_t(pid), 0) == 0 || errno != ESRCH)
      continue;
    std::error_code type_ec;
    if (fs::is_regular_file(it->symlink_status(type_ec))) ::unlink(it->path().c_str());
  }
}

void fsync_or_throw(const std::string& path, const std::string& target, int flags) {
  const int fd = ::open(target.c_str(), flags | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    throw std::runtime_error(str(path, ": cannot fsync ", target, ": ", std::strerror(err)));
  }
  ::close(fd);
}

}  // namespace

std::string temp_path_for(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  remove_stale_temporaries(path);
  return str(path, ".tmp.", ::getpid(), ".", counter++);
}

void commit_file(const std::string& tmp, const std::string& path) {
  // Data on disk before the name points at it, and the name on disk before we return.
  fsync_or_throw(path, tmp, O_RDONLY);
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error(str(path, ": cannot rename ", tmp, " onto it: ", std::strerror(errno)));
  const std::string dir = std::filesystem::path(path).parent_path().string();
  fsync_or_throw(path, dir.empty() ? "." : dir, O_RDONLY | O_DIRECTORY);
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  const std::string tmp = temp_path_for(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(str(path, ": cannot create ", tmp, ": ", std::strerror(errno)));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw std::runtime_error(str(path, ": write to ", tmp, " failed: ", std::strerror(err)));
    }
    done += size_t(n);
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error(str(path, ": write to ", tmp, " failed: ", std::strerror(err)));
  }
  try {
    commit_file(tmp, path);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
}

}  // namespace crayon
