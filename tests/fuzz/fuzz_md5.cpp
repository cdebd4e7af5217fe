// MD5 (data/md5.h): the digest of the bytes in memory equals the digest of the same bytes
// read from a file (the streaming path, block boundaries anywhere), and is 32 hex digits.
#include "data/md5.h"
#include "tests/fuzz/fuzz_support.h"

using namespace crayon;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in_memory = md5_hex(std::string_view(reinterpret_cast<const char*>(data), size));
  const std::string from_file = md5_file(fuzz::write_input(data, size));
  if (in_memory != from_file) fuzz::fail("md5: memory and file digests differ");
  if (in_memory.size() != 32 || in_memory.find_first_not_of("0123456789abcdef") != std::string::npos)
    fuzz::fail("md5: not 32 lowercase hex digits");
  return 0;
}
