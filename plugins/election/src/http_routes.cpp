#include "http_routes.hpp"

#include <memory>

#include <nlohmann/json.hpp>

namespace chorus::election {
namespace {

using json = nlohmann::json;

std::string error_body(std::string_view message) { return json{{"error", message}}.dump(); }

}  // namespace

void register_routes(chorus::Host &host, NodeSource &source) {
  host.route("GET", "/api/v1/election", [&source](const chorus::HttpRequest &, chorus::HttpExchange ex) {
    auto node = source.node();
    if (!node) {
      ex.respond(503, "application/json", error_body("the election plugin is not running"));
      return;
    }
    ex.respond(200, "application/json", node->state_json().dump(-1, ' ', false, json::error_handler_t::replace));
  });
  host.route("POST", "/api/v1/election/trigger", [&source](const chorus::HttpRequest &, chorus::HttpExchange ex) {
    auto node = source.node();
    if (!node) {
      ex.respond(503, "application/json", error_body("the election plugin is not running"));
      return;
    }
    // Answered from the election thread once the candidacy is durable and published.
    auto shared = std::make_shared<chorus::HttpExchange>(std::move(ex));
    node->request_trigger([shared](const TriggerOutcome &out) {
      if (out.accepted)
        shared->respond(202, "application/json", json{{"term", out.term}}.dump());
      else if (out.unavailable)
        shared->respond(503, "application/json", error_body(out.why));
      else
        shared->respond(409, "application/json", error_body(out.why.empty() ? "refused" : out.why));
    });
  });
}

}  // namespace chorus::election
