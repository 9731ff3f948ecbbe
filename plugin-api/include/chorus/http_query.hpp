// chorus/http_query.hpp - reading the query string of a plugin route (header-only, part of the SDK).
//
// HttpRequest::query() is the raw text after '?'. These decode it the way HTML forms and curl
// encode it: '+' is a space and %XX a byte. Malformed escapes are an error, never passed through, so
// a route can answer 400 rather than act on a key it misread.
#ifndef CHORUS_HTTP_QUERY_HPP
#define CHORUS_HTTP_QUERY_HPP

#include <optional>
#include <string>
#include <string_view>

namespace chorus {

// Decodes one component of a query string into *out. false on a truncated or non-hex %XX.
inline bool url_decode(std::string_view in, std::string *out) {
  out->clear();
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out->push_back(' ');
    } else if (in[i] == '%') {
      if (i + 2 >= in.size()) return false;  // needs two hex digits after it
      const int hi = nibble(in[i + 1]), lo = nibble(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out->push_back(in[i]);
    }
  }
  return true;
}

// The decoded value of the first `key` in a query string: "" for a key without '=', nullopt when the
// key is absent or its value is malformed.
inline std::optional<std::string> query_param(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    const size_t eq = part.find('=');
    std::string k, v;
    if (url_decode(part.substr(0, eq), &k) && k == key) {
      if (eq == std::string_view::npos) return std::string();
      if (!url_decode(part.substr(eq + 1), &v)) return std::nullopt;
      return v;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

}  // namespace chorus

#endif  // CHORUS_HTTP_QUERY_HPP
