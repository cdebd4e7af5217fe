#pragma once
// Whole-string number parsing for specs and flags: true only if all of s is one number of
// type T (std::from_chars: no sign '+', no spaces, no locale), stored in out.
#include <charconv>
#include <string_view>

namespace crayon {

template <typename T>
bool parse_number(std::string_view s, T& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

}  // namespace crayon
