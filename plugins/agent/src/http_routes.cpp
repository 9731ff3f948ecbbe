#include "http_routes.hpp"

#include <string>

#include <chorus/http_query.hpp>

namespace chorus::agent {
namespace {

constexpr const char *kJson = "application/json";

std::string error_body(const char *code, const std::string &message) {
  return json{{"error", {{"code", code}, {"message", message}}}}.dump();
}

void reply(chorus::HttpExchange &ex, int status, const json &body) {
  ex.respond(status, kJson, body.dump(-1, ' ', false, json::error_handler_t::replace));
}

// Calls fn(runtime, exchange) when the agent runs; 503 otherwise.
template <class F>
auto with_runtime(RuntimeSource &src, F fn) {
  return [&src, fn](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
    auto rt = src.runtime();
    if (!rt) {
      ex.respond(503, kJson, error_body("unavailable", "the agent plugin is not running"));
      return;
    }
    fn(*rt, req, ex);
  };
}

bool valid_status_filter(const std::string &s) {
  return s == "announced" || s == "claimed" || s == "working" || s == "completed" || s == "failed";
}

}  // namespace

void register_routes(chorus::Host &host, RuntimeSource &src) {
  host.route("GET", "/api/v1/agent", with_runtime(src, [](Runtime &rt, const chorus::HttpRequest &, chorus::HttpExchange &ex) {
               reply(ex, 200, rt.info());
             }));
  host.route("GET", "/api/v1/agent/peers",
             with_runtime(src, [](Runtime &rt, const chorus::HttpRequest &, chorus::HttpExchange &ex) {
               reply(ex, 200, rt.peers());
             }));
  host.route("GET", "/api/v1/agent/tasks",
             with_runtime(src, [](Runtime &rt, const chorus::HttpRequest &req, chorus::HttpExchange &ex) {
               std::string status;
               if (req.query().find("status") != std::string_view::npos) {
                 auto s = chorus::query_param(req.query(), "status");
                 if (s && !s->empty()) {
                   if (!valid_status_filter(*s)) {
                     ex.respond(400, kJson,
                                error_body("invalid_request",
                                           "status: must be announced, claimed, working, completed or failed"));
                     return;
                   }
                   status = *s;
                 }
               }
               reply(ex, 200, rt.tasks(status));
             }));
  host.route("POST", "/api/v1/agent/tasks",
             with_runtime(src, [](Runtime &rt, const chorus::HttpRequest &req, chorus::HttpExchange &ex) {
               HttpAnswer a = rt.post_task(req.body());
               reply(ex, a.status, a.body);
             }));
  host.route("GET", "/api/v1/agent/tasks/", CHORUS_ROUTE_PREFIX,
             with_runtime(src, [](Runtime &rt, const chorus::HttpRequest &req, chorus::HttpExchange &ex) {
               const std::string id(req.path().substr(std::string_view("/api/v1/agent/tasks/").size()));
               auto t = valid_task_id(id) ? rt.task(id) : std::nullopt;
               if (!t) {
                 ex.respond(404, kJson, error_body("not_found", "no task '" + id.substr(0, 128) + "'"));
                 return;
               }
               reply(ex, 200, *t);
             }));
  host.route("GET", "/api/v1/agent/hmmm",
             with_runtime(src, [](Runtime &rt, const chorus::HttpRequest &, chorus::HttpExchange &ex) {
               reply(ex, 200, rt.hmmm());
             }));
  host.route("POST", "/api/v1/agent/hmmm",
             with_runtime(src, [](Runtime &rt, const chorus::HttpRequest &req, chorus::HttpExchange &ex) {
               HttpAnswer a = rt.post_hmmm(req.body());
               reply(ex, a.status, a.body);
             }));
}

}  // namespace chorus::agent
