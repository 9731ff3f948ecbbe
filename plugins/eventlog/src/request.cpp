#include "request.hpp"

#include <nlohmann/json.hpp>

namespace chorus::eventlog {

std::optional<GreetRequest> parse_greet_request(std::string_view body, size_t max_name_bytes, std::string *why) {
  const auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    *why = "the body must be a JSON object";
    return std::nullopt;
  }
  const auto name = doc.find("name");
  if (name == doc.end() || !name->is_string()) {
    *why = "\"name\" must be a string";
    return std::nullopt;
  }
  GreetRequest req{name->get<std::string>()};
  if (req.name.empty() || req.name.size() > max_name_bytes) {
    *why = "\"name\" must have 1 to " + std::to_string(max_name_bytes) + " bytes";
    return std::nullopt;
  }
  return req;
}

}  // namespace chorus::eventlog
