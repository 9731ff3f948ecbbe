// eventlog: the input the plugin parses, apart from any I/O, so the unit tests and the fuzzer
// (fuzz/request_fuzz.cpp) reach it directly. Keep every parser of untrusted input in files like this.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace chorus::eventlog {

// The body of POST /eventlog/greet: {"name": "<1..max_name_bytes bytes>"}.
struct GreetRequest {
  std::string name;
};

// The request in `body`, or nullopt with the reason in *why (for the 400 answer).
std::optional<GreetRequest> parse_greet_request(std::string_view body, size_t max_name_bytes, std::string *why);

}  // namespace chorus::eventlog
