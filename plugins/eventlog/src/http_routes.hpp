// The eventlog plugin's HTTP routes (docs/contract.md):
//   GET /api/v1/eventlog?from=&to=&type=&limit=   entries, a JSON array (query_json's answer)
//   GET /api/v1/eventlog/head                     {"length","index","hash"}
// Errors are {"error":{"code","message"}} with the status's name as code.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <chorus/plugin.hpp>

#include "service_table.hpp"

namespace chorus::eventlog {

struct QueryArgs {
  uint64_t from = 0;
  uint64_t to = UINT64_MAX;
  std::string type;  // empty: every type
  size_t limit = 100;
};

// Parses the query string of GET /api/v1/eventlog; nothing with *why on a bad parameter.
std::optional<QueryArgs> parse_query_args(std::string_view query, std::string *why);

void register_routes(chorus::Host &host, LogSource &source);

}  // namespace chorus::eventlog
