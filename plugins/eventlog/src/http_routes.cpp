#include "http_routes.hpp"

#include <charconv>

#include <nlohmann/json.hpp>

#include <chorus/http_query.hpp>
#include <chorus/services/eventlog_v1.h>

namespace chorus::eventlog {
namespace {

void respond_error(chorus::HttpExchange &ex, int http, chorus_status st, std::string_view message) {
  const nlohmann::json body = {{"error", {{"code", chorus_status_name(st)}, {"message", message}}}};
  ex.respond(http, "application/json", body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

bool parse_uint(const std::string &text, uint64_t *out) {
  if (text.empty()) return false;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && p == text.data() + text.size();
}

}  // namespace

std::optional<QueryArgs> parse_query_args(std::string_view query, std::string *why) {
  QueryArgs args;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    std::string key, value;
    if (!chorus::url_decode(part.substr(0, eq), &key) ||
        !chorus::url_decode(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1), &value)) {
      *why = "malformed percent-encoding in the query string";
      return std::nullopt;
    }
    uint64_t n = 0;
    if (key == "from" || key == "to" || key == "limit") {
      if (!parse_uint(value, &n)) {
        *why = "'" + key + "' must be a non-negative integer";
        return std::nullopt;
      }
      if (key == "from") args.from = n;
      else if (key == "to") args.to = n;
      else if (n < 1 || n > CHORUS_EVENTLOG_QUERY_MAX) {
        *why = "'limit' must be between 1 and " + std::to_string(CHORUS_EVENTLOG_QUERY_MAX);
        return std::nullopt;
      } else args.limit = n;
    } else if (key == "type") {
      if (!valid_type(value)) {
        *why = "'type' must match [a-z0-9_.]{1,64}";
        return std::nullopt;
      }
      args.type = value;
    } else {
      *why = "unknown parameter '" + key.substr(0, 64) + "' (from, to, type, limit)";
      return std::nullopt;
    }
  }
  if (args.from > args.to) {
    *why = "'from' is after 'to'";
    return std::nullopt;
  }
  return args;
}

void register_routes(chorus::Host &host, LogSource &source) {
  LogSource *src = &source;
  host.route("GET", "/api/v1/eventlog", [src](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
    std::string why;
    const auto args = parse_query_args(req.query(), &why);
    if (!args) return respond_error(ex, 400, CHORUS_E_INVALID_ARG, why);
    auto log = src->log();
    if (!log) return respond_error(ex, 503, CHORUS_E_UNAVAILABLE, "the event log is not running");
    std::vector<Entry> entries;
    if (!log->query(args->from, args->to, args->type, args->limit, &entries, &why))
      return respond_error(ex, 500, CHORUS_E_IO, why);
    ex.respond(200, "application/json", query_answer(entries));
  });
  host.route("GET", "/api/v1/eventlog/head", [src](const chorus::HttpRequest &, chorus::HttpExchange ex) {
    auto log = src->log();
    if (!log) return respond_error(ex, 503, CHORUS_E_UNAVAILABLE, "the event log is not running");
    ex.respond(200, "application/json", head_answer(log->head()));
  });
}

}  // namespace chorus::eventlog
