// reasoning: model selection, role prompt composition, and the agent's AI API
// (POST /api/v1/ai/chat, GET /api/v1/ai/models, GET /api/v1/ai/status) on top of chorus.ai.provider.
// The provider is acquired per request and released at the request's terminal callback, so a hot
// swap moves new requests to the new provider while in-flight ones (streams included) finish on the old.
#include <chorus/plugin.hpp>
#include <chorus/services/ai_provider_v1.h>
#include <chorus/services/reasoning_v1.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <algorithm>
#include <mutex>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "ai_common/http_engine.hpp"
#include "prompts.hpp"

namespace chorus::reasoning {
namespace {
using json = nlohmann::json;
using Provider = chorus::ServiceRef<chorus_ai_provider_v1>;

// The JSON Schema of plugins.reasoning.config: the one declaration of the plugin's keys, their types,
// ranges and defaults. The host applies it, so parse_settings reads a complete, valid config. An empty
// role means the host's role.
constexpr const char *kConfigSchema = R"({"type": "object", "additionalProperties": false, "properties": {
  "models": {"type": "array", "items": {"type": "string", "minLength": 1}, "default": []},
  "model_selection_webhook": {"type": "string", "default": ""},
  "webhook_timeout_ms": {"type": "integer", "minimum": 1, "maximum": 600000, "default": 3000},
  "default_model": {"type": "string", "default": ""},
  "prompts_dir": {"type": "string", "default": ""},
  "default_instructions_path": {"type": "string", "default": ""},
  "role": {"type": "string", "default": ""},
  "max_body_bytes": {"type": "integer", "minimum": 1024, "maximum": 1073741824, "default": 1048576}
}})";

// Every value comes from the config completed by kConfigSchema, then from the environment.
struct Settings {
  std::vector<std::string> models;
  std::string webhook;
  uint64_t webhook_timeout_ms = 0;
  std::string default_model;
  std::string prompts_dir, defaults_path, role;
  size_t max_body_bytes = 0;
};

std::string env(const char *name) {
  const char *v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

Settings parse_settings(std::string_view text) {
  const json cfg = json::parse(text, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) throw chorus::Error(CHORUS_E_CONFIG, "config must be a JSON object");
  Settings s;
  try {
    s.models = cfg.at("models").get<std::vector<std::string>>();
    s.webhook = cfg.at("model_selection_webhook").get<std::string>();
    s.webhook_timeout_ms = cfg.at("webhook_timeout_ms").get<uint64_t>();
    s.default_model = cfg.at("default_model").get<std::string>();
    s.prompts_dir = cfg.at("prompts_dir").get<std::string>();
    s.defaults_path = cfg.at("default_instructions_path").get<std::string>();
    s.role = cfg.at("role").get<std::string>();
    s.max_body_bytes = cfg.at("max_body_bytes").get<size_t>();
  } catch (const json::exception &e) {  // the host did not apply kConfigSchema
    throw chorus::Error(CHORUS_E_CONFIG, std::string("config does not match the plugin's schema: ") + e.what());
  }
  // Environment wins (defaults < file < environment).
  if (auto v = env("CHORUS_PROMPTS_DIR"); !v.empty()) s.prompts_dir = v;
  if (auto v = env("CHORUS_DEFAULT_INSTRUCTIONS_PATH"); !v.empty()) s.defaults_path = v;
  // BZZZ_MODEL_SELECTION_WEBHOOK is the BZZZ-era name (docs/contract.md, Environment names);
  // the CHORUS_ name wins when both are set.
  if (auto v = env("BZZZ_MODEL_SELECTION_WEBHOOK"); !v.empty()) s.webhook = v;
  if (auto v = env("CHORUS_MODEL_SELECTION_WEBHOOK"); !v.empty()) s.webhook = v;
  if (auto v = env("CHORUS_DEFAULT_REASONING_MODEL"); !v.empty()) s.default_model = v;
  if (auto v = env("CHORUS_MODELS"); !v.empty()) {
    s.models.clear();
    size_t pos = 0;
    while (pos <= v.size()) {
      size_t c = v.find(',', pos);
      std::string m = v.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
      while (!m.empty() && m.front() == ' ') m.erase(m.begin());
      while (!m.empty() && m.back() == ' ') m.pop_back();
      if (!m.empty()) s.models.push_back(m);
      if (c == std::string::npos) break;
      pos = c + 1;
    }
  }
  if (!s.webhook.empty() && s.webhook.rfind("http://", 0) != 0 && s.webhook.rfind("https://", 0) != 0)
    throw chorus::Error(CHORUS_E_CONFIG, "model_selection_webhook must be an http:// or https:// URL");
  return s;
}

int http_status_for(chorus_status s) {
  switch (s) {
    case CHORUS_E_INVALID_ARG: return 400;
    case CHORUS_E_NOT_FOUND: return 404;
    case CHORUS_E_BUSY: return 429;
    case CHORUS_E_UNAVAILABLE:
    case CHORUS_E_CANCELLED: return 503;
    case CHORUS_E_TIMEOUT: return 504;
    case CHORUS_E_TOO_LARGE:
    case CHORUS_E_PROTOCOL:
    case CHORUS_AI_E_UPSTREAM: return 502;
    default: return 500;
  }
}

const char *error_type(chorus_status s) {
  switch (s) {
    case CHORUS_E_INVALID_ARG: return "invalid_request_error";
    case CHORUS_E_NOT_FOUND: return "not_found";
    case CHORUS_E_BUSY: return "rate_limited";
    case CHORUS_E_UNAVAILABLE: return "provider_unavailable";
    case CHORUS_E_CANCELLED: return "cancelled";
    case CHORUS_E_TIMEOUT: return "timeout";
    case CHORUS_E_TOO_LARGE: return "response_too_large";
    case CHORUS_E_PROTOCOL: return "bad_upstream_response";
    case CHORUS_AI_E_UPSTREAM: return "upstream_error";
    default: return "internal_error";
  }
}

std::string error_body(chorus_status s, std::string_view msg, std::string_view provider) {
  json e{{"message", std::string(msg)}, {"type", error_type(s)}, {"code", s}};
  if (!provider.empty()) e["provider"] = std::string(provider);
  return json{{"error", e}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

class Reasoning;

// One request from its start to its single terminal callback. Owns itself (self_) until then.
struct Request {
  enum class Kind { chat, models } kind = Kind::chat;
  Reasoning *r = nullptr;
  std::shared_ptr<Request> self_;
  Provider provider;
  std::string provider_id;
  json body;
  bool stream = false;
  // output: an HTTP exchange, or the caller's sink (chorus.reasoning service)
  bool http = true;
  chorus::HttpExchange ex;
  chorus_ai_sink sink{};
  std::recursive_mutex mu;
  uint64_t id = 0;
  uint64_t provider_call = 0;
  bool cancelled = false;
  bool finished = false;
  bool stream_begun = false;
  chorus_ai_sink sink_for_provider{};  // what the provider holds until the terminal callback
  std::string pending;  // SSE bytes the client has not accepted yet
  std::string model;
  std::string completion_id;
  int64_t created = 0;
};

class Reasoning final : public chorus::Plugin {
 public:
  Reasoning(chorus::Host &host, std::string_view cfg) : host_(host), engine_("reasoning-webhook") {
    const AgentFacts facts = agent_facts();
    s_ = parse_settings(cfg);
    role_from_config_ = !s_.role.empty();
    role_ = role_from_config_ ? s_.role : facts.role;
    assigned_model_ = facts.model;
    std::string warning;
    prompts_ = std::make_shared<const chorus::reasoning::Prompts>(
        chorus::reasoning::load_prompts(s_.prompts_dir, s_.defaults_path, role_, &warning));
    if (!warning.empty()) host_.warn(warning);
    m_requests_ = host_.counter("chorus_reasoning_requests_total", "AI API requests by result", {"result"});
    m_selection_ = host_.counter("chorus_reasoning_model_selection_total", "Model selections by source", {"source"});
    table_.struct_size = sizeof table_;
    table_.complete = &Reasoning::c_complete;
    table_.cancel = &Reasoning::c_cancel;
    table_.system_prompt = &Reasoning::c_system_prompt;
    host_.route("POST", "/api/v1/ai/chat", [this](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
      on_chat(req, std::move(ex));
    });
    host_.route("GET", "/api/v1/ai/models", [this](const chorus::HttpRequest &, chorus::HttpExchange ex) {
      auto rq = std::make_shared<Request>();
      rq->kind = Request::Kind::models;
      rq->ex = std::move(ex);
      begin(rq);
    });
    host_.route("GET", "/api/v1/ai/status", [this](const chorus::HttpRequest &, chorus::HttpExchange ex) {
      ex.respond(200, "application/json", status_json());
    });
  }

  void start() override {
    engine_.start();
    const auto prompts = current_prompts();
    host_.info("reasoning ready: role '" + current_role() + "', " + std::to_string(s_.models.size()) + " models" +
               (s_.webhook.empty() ? "" : ", model selection webhook set") +
               (prompts->composed.empty() ? ", no system prompt" : ", system prompt " + std::to_string(prompts->composed.size()) + " bytes"));
  }

  // SIGHUP: the agent's assignment (host_info) may have a new role or model; both take effect for
  // the requests that start from now on. A role set in this plugin's own config stays.
  void reload() override {
    const AgentFacts facts = agent_facts();
    std::string old_role = current_role(), old_model;
    {
      std::lock_guard lk(assigned_mu_);
      old_model = assigned_model_;
      assigned_model_ = facts.model;
    }
    if (facts.model != old_model)
      host_.info("model is now '" + (facts.model.empty() ? std::string("(none assigned)") : facts.model) + "' (assignment)");
    if (role_from_config_ || facts.role == old_role) return;
    std::string warning;
    auto prompts = std::make_shared<const chorus::reasoning::Prompts>(
        chorus::reasoning::load_prompts(s_.prompts_dir, s_.defaults_path, facts.role, &warning));
    if (!warning.empty()) host_.warn(warning);
    {
      std::lock_guard lk(assigned_mu_);
      role_ = facts.role;
      prompts_ = std::move(prompts);
    }
    host_.info("role is now '" + facts.role + "' (was '" + old_role + "')");
  }

  void stop(std::chrono::milliseconds budget) override {
    stopping_ = true;
    engine_.stop();  // webhook lookups end (their requests fail with 503)
    std::vector<std::shared_ptr<Request>> live;
    {
      std::lock_guard lk(live_mu_);
      for (auto &[id, w] : live_)
        if (auto p = w.lock()) live.push_back(p);
    }
    for (auto &rq : live) cancel_request(*rq);
    std::unique_lock lk(live_mu_);
    live_cv_.wait_for(lk, budget * 3 / 4, [&] { return live_.empty(); });
    if (!live_.empty()) host_.warn(std::to_string(live_.size()) + " AI requests still open at stop");
  }

  chorus::ServiceTable service(std::string_view name, uint16_t major) override {
    if (name == CHORUS_REASONING_SERVICE && major == CHORUS_REASONING_V1_MAJOR) return {&table_, this};
    return Plugin::service(name, major);
  }

 private:
  // ------------------------------------------------------------------ HTTP
  void on_chat(const chorus::HttpRequest &req, chorus::HttpExchange ex) {
    if (req.body().size() > s_.max_body_bytes) {
      m_requests_.inc("invalid");
      ex.respond(413, "application/json", error_body(CHORUS_E_TOO_LARGE, "request body larger than " + std::to_string(s_.max_body_bytes) + " bytes", ""));
      return;
    }
    json body = json::parse(req.body(), nullptr, false);
    std::string problem = validate(body);
    if (!problem.empty()) {
      m_requests_.inc("invalid");
      ex.respond(400, "application/json", error_body(CHORUS_E_INVALID_ARG, problem, ""));
      return;
    }
    auto rq = std::make_shared<Request>();
    rq->body = std::move(body);
    rq->stream = (rq->body.contains("stream") && rq->body["stream"].is_boolean() && rq->body["stream"].get<bool>());
    rq->ex = std::move(ex);
    begin(rq);
  }

  static std::string validate(const json &body) {
    if (body.is_discarded()) return "request body is not valid JSON";
    if (!body.is_object()) return "request body must be a JSON object";
    auto m = body.find("messages");
    if (m == body.end() || !m->is_array() || m->empty()) return "messages must be a non-empty array";
    for (const auto &x : *m) {
      if (!x.is_object() || !x.contains("role") || !x["role"].is_string()) return "each message needs a string role";
      if (x.contains("content") && !x["content"].is_string() && !x["content"].is_null()) return "message content must be a string";
    }
    if (body.contains("stream") && !body["stream"].is_boolean()) return "stream must be a boolean";
    if (body.contains("model") && !body["model"].is_string() && !body["model"].is_null()) return "model must be a string";
    if (body.contains("tools") && !body["tools"].is_array()) return "tools must be an array";
    return {};
  }

  // ------------------------------------------------------------------ request flow
  void begin(const std::shared_ptr<Request> &rq) {
    rq->r = this;
    rq->self_ = rq;
    rq->id = next_id_.fetch_add(1);
    rq->completion_id = "chatcmpl-chorus-" + std::to_string(rq->id);
    rq->created = static_cast<int64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                           std::chrono::system_clock::now().time_since_epoch()).count());
    {
      std::lock_guard lk(live_mu_);
      live_.emplace(rq->id, rq);
    }
    if (stopping_) return fail(*rq, CHORUS_E_UNAVAILABLE, "reasoning is stopping");
    // The provider bound NOW serves this request to its end (hot swap safety).
    chorus::ErrorBuffer err;
    rq->provider = host_.try_acquire<chorus_ai_provider_v1>(CHORUS_AI_PROVIDER_SERVICE, "^1", &err);
    if (!rq->provider)
      return fail(*rq, CHORUS_E_UNAVAILABLE, "no AI provider is available: " + std::string(err.text()));
    rq->provider_id = std::string(rq->provider.provider_id());
    if (rq->kind == Request::Kind::models) return call_provider(rq);
    select_model(rq);
  }

  void select_model(const std::shared_ptr<Request> &rq) {
    std::string asked;
    if (auto it = rq->body.find("model"); it != rq->body.end() && it->is_string()) asked = it->get<std::string>();
    if (!asked.empty()) {
      if (!s_.models.empty() && std::find(s_.models.begin(), s_.models.end(), asked) == s_.models.end())
        return fail(*rq, CHORUS_E_INVALID_ARG, "model '" + asked + "' is not among the configured models");
      m_selection_.inc("request");
      rq->model = asked;
      return call_provider(rq);
    }
    if (std::string assigned = assigned_model(); !assigned.empty()) {
      if (s_.models.empty() || std::find(s_.models.begin(), s_.models.end(), assigned) != s_.models.end()) {
        m_selection_.inc("assignment");
        rq->model = std::move(assigned);
        return call_provider(rq);
      }
    }
    if (!s_.webhook.empty() && !s_.models.empty()) return ask_webhook(rq);
    rq->model = fallback_model("config");
    call_provider(rq);
  }

  std::string fallback_model(const char *why) {
    if (!s_.models.empty()) {
      m_selection_.inc(why);
      return s_.models.front();
    }
    m_selection_.inc("default");
    return s_.default_model;  // may be empty: the provider's default model
  }

  std::string last_user_prompt(const json &body) {
    const auto &msgs = body["messages"];
    for (auto it = msgs.rbegin(); it != msgs.rend(); ++it)
      if ((*it).value("role", "") == "user" && (*it).contains("content") && (*it)["content"].is_string())
        return (*it)["content"].get<std::string>();
    return {};
  }

  class WebhookHandler final : public chorus::ai_common::TransferHandler {
   public:
    WebhookHandler(Reasoning *r, std::shared_ptr<Request> rq) : r_(r), rq_(std::move(rq)) {}
    bool on_data(long, std::string_view b) override {
      body_.append(b);
      return body_.size() < 65536;
    }
    void on_complete(const chorus::ai_common::TransferResult &res) override { r_->webhook_done(rq_, res, body_); }

   private:
    Reasoning *r_;
    std::shared_ptr<Request> rq_;
    std::string body_;
  };

  void ask_webhook(const std::shared_ptr<Request> &rq) {
    chorus::ai_common::TransferSpec spec;
    spec.method = "POST";
    spec.url = s_.webhook;
    spec.headers = {"Content-Type: application/json", "Accept: application/json"};
    spec.body = json{{"models", s_.models}, {"prompt", last_user_prompt(rq->body)}}.dump(-1, ' ', false, json::error_handler_t::replace);
    spec.connect_timeout_ms = s_.webhook_timeout_ms;
    spec.first_byte_timeout_ms = s_.webhook_timeout_ms;
    spec.total_timeout_ms = s_.webhook_timeout_ms;
    spec.max_response_bytes = 65536;
    auto spec_ptr = std::make_shared<chorus::ai_common::TransferSpec>(std::move(spec));
    if (!engine_.post([this, rq, spec_ptr](bool cancelled) {
          if (cancelled) return fail(*rq, CHORUS_E_UNAVAILABLE, "reasoning is stopping");
          engine_.submit_now(std::move(*spec_ptr), std::make_shared<WebhookHandler>(this, rq));
        }))
      fail(*rq, CHORUS_E_UNAVAILABLE, "reasoning is stopping");
  }

  void webhook_done(const std::shared_ptr<Request> &rq, const chorus::ai_common::TransferResult &res, const std::string &body) {
    if (res.outcome == chorus::ai_common::TransferOutcome::cancelled) return fail(*rq, CHORUS_E_UNAVAILABLE, "reasoning is stopping");
    std::string chosen, problem;
    if (res.outcome != chorus::ai_common::TransferOutcome::ok) {
      problem = std::string("webhook failed (") + chorus::ai_common::outcome_name(res.outcome) + "): " + res.message;
    } else if (res.http_status < 200 || res.http_status >= 300) {
      problem = "webhook answered HTTP " + std::to_string(res.http_status);
    } else {
      json j = json::parse(body, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("model") || !j["model"].is_string())
        problem = "webhook answer is not {\"model\": \"...\"}";
      else if (std::find(s_.models.begin(), s_.models.end(), j["model"].get<std::string>()) == s_.models.end())
        problem = "webhook chose '" + j["model"].get<std::string>() + "', which is not among the configured models";
      else
        chosen = j["model"].get<std::string>();
    }
    if (!chosen.empty()) {
      m_selection_.inc("webhook");
      rq->model = chosen;
    } else {
      rq->model = fallback_model("webhook_fallback");
      host_.warn("model selection: " + problem + "; using '" + rq->model + "'");
    }
    call_provider(rq);
  }

  json provider_request(const Request &rq) const {
    json msgs = json::array();
    const auto prompts = current_prompts();
    if (!prompts->composed.empty()) msgs.push_back({{"role", "system"}, {"content", prompts->composed}});
    for (const auto &m : rq.body["messages"]) msgs.push_back(m);
    json out{{"messages", msgs}, {"stream", rq.stream}};
    if (!rq.model.empty()) out["model"] = rq.model;
    for (const char *k : {"tools", "tool_choice"})
      if (rq.body.contains(k) && !rq.body[k].is_null()) out[k] = rq.body[k];
    json opts = json::object();
    for (const char *k : {"temperature", "top_p", "max_tokens", "stop", "seed"})
      if (rq.body.contains(k) && !rq.body[k].is_null()) opts[k] = rq.body[k];
    if (!opts.empty()) out["options"] = opts;
    return out;
  }

  void call_provider(const std::shared_ptr<Request> &rq) {
    chorus_ai_sink sink{};
    sink.struct_size = sizeof sink;
    auto *holder = new std::shared_ptr<Request>(rq);  // deleted by the terminal callback
    sink.user = holder;
    sink.on_chunk = &Reasoning::s_chunk;
    sink.on_done = &Reasoning::s_done;
    sink.on_error = &Reasoning::s_error;
    chorus::ErrorBuffer err;
    uint64_t call = 0;
    chorus_status st;
    {
      std::lock_guard<std::recursive_mutex> lk(rq->mu);
      if (rq->cancelled) {
        // fall through below, outside the lock
        st = CHORUS_E_CANCELLED;
      } else if (rq->kind == Request::Kind::models) {
        st = rq->provider.call<&chorus_ai_provider_v1::list_models>(&sink_storage(*rq, sink), &call, err.get());
      } else {
        if (rq->http && rq->stream) {
          const std::string prov = rq->provider_id;
          rq->ex.begin_stream(200, "text/event-stream",
                              {{"Cache-Control", "no-cache"}, {"X-Chorus-Provider", prov}, {"X-Chorus-Model", rq->model}});
          rq->stream_begun = true;
        }
        const std::string text = provider_request(*rq).dump(-1, ' ', false, json::error_handler_t::replace);
        st = rq->provider.call<&chorus_ai_provider_v1::chat>(text.data(), text.size(), &sink_storage(*rq, sink), &call, err.get());
      }
      if (st == CHORUS_OK) rq->provider_call = call;
    }
    if (st != CHORUS_OK) delete holder;  // no callback will come
    if (st == CHORUS_E_CANCELLED) return fail(*rq, CHORUS_E_CANCELLED, "cancelled");
    if (st != CHORUS_OK) fail(*rq, st, std::string(err.text()));
  }

  // The provider keeps a pointer to the sink until the terminal callback: store it in the request.
  static chorus_ai_sink &sink_storage(Request &rq, const chorus_ai_sink &s) {
    rq.sink_for_provider = s;
    return rq.sink_for_provider;
  }

  // ---------------------------------------------------------------- provider callbacks
  // sink.user is a heap shared_ptr: each callback holds the request alive while it runs; the
  // terminal callback frees the holder.
  static void s_chunk(void *u, const char *j, size_t n) noexcept {
    std::shared_ptr<Request> keep = *static_cast<std::shared_ptr<Request> *>(u);
    Request *rq = keep.get();
    try {
      rq->r->on_chunk(*rq, std::string_view(j, n));
    } catch (...) {
    }
  }
  static void s_done(void *u, const char *j, size_t n) noexcept {
    std::unique_ptr<std::shared_ptr<Request>> holder(static_cast<std::shared_ptr<Request> *>(u));
    std::shared_ptr<Request> keep = *holder;
    Request *rq = keep.get();
    try {
      rq->r->on_done(*rq, std::string_view(j, n));
    } catch (...) {
      rq->r->finish(*rq);
    }
  }
  static void s_error(void *u, chorus_status s, const char *m, size_t n) noexcept {
    std::unique_ptr<std::shared_ptr<Request>> holder(static_cast<std::shared_ptr<Request> *>(u));
    std::shared_ptr<Request> keep = *holder;
    Request *rq = keep.get();
    try {
      rq->r->fail(*rq, s, std::string(m, n));
    } catch (...) {
      rq->r->finish(*rq);
    }
  }

  json sse_chunk(const Request &rq, json delta, const json &finish_reason) const {
    return json{{"id", rq.completion_id}, {"object", "chat.completion.chunk"}, {"created", rq.created},
                {"model", rq.model}, {"provider", rq.provider_id},
                {"choices", json::array({json{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", finish_reason}}})}};
  }

  // Writes SSE bytes, keeping what a slow client has not accepted yet. Caller holds rq.mu.
  void write_locked(Request &rq, std::string data) {
    rq.pending += data;
    if (!rq.ex) return;
    const chorus_status st = rq.ex.write(rq.pending);
    if (st == CHORUS_OK) {
      rq.pending.clear();
    } else if (st == CHORUS_E_CANCELLED) {
      rq.pending.clear();
      if (!rq.cancelled) {
        rq.cancelled = true;  // client went away: stop the upstream request
        if (rq.provider_call != 0) rq.provider.call<&chorus_ai_provider_v1::cancel>(rq.provider_call);
      }
    }  // CHORUS_E_BUSY: keep it for the next write or the final flush
  }

  void on_chunk(Request &rq, std::string_view j) {
    if (!rq.http) {
      if (rq.sink.on_chunk != nullptr) rq.sink.on_chunk(rq.sink.user, j.data(), j.size());
      return;
    }
    if (!rq.stream) return;
    json c = json::parse(j, nullptr, false);
    if (c.is_discarded() || !c.is_object()) return;
    json delta = json::object();
    if (c.contains("delta")) delta["content"] = c["delta"];
    if (c.contains("tool_calls")) delta["tool_calls"] = c["tool_calls"];
    std::lock_guard<std::recursive_mutex> lk(rq.mu);
    if (rq.cancelled) return;
    write_locked(rq, "data: " + sse_chunk(rq, std::move(delta), nullptr).dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n");
  }

  void on_done(Request &rq, std::string_view j) {
    m_requests_.inc("ok");
    if (!rq.http) {
      rq.sink.on_done(rq.sink.user, j.data(), j.size());
      return finish(rq);
    }
    json d = json::parse(j, nullptr, false);
    if (d.is_discarded() || !d.is_object()) d = json::object();
    if (rq.kind == Request::Kind::models) {
      json data = json::array();
      for (const auto &m : d.value("models", json::array())) {
        json e = m;
        e["object"] = "model";
        data.push_back(e);
      }
      std::lock_guard<std::recursive_mutex> lk(rq.mu);
      rq.ex.respond(200, "application/json",
                    json{{"object", "list"}, {"data", data}, {"provider", rq.provider_id}}.dump(),
                    {{"X-Chorus-Provider", rq.provider_id}});
      return finish_locked_release(rq);
    }
    const std::string model = d.value("model", rq.model);
    if (!model.empty()) rq.model = model;
    const json finish_reason = d.value("finish_reason", "stop");
    json usage = d.value("usage", json::object());
    if (rq.stream) {
      std::lock_guard<std::recursive_mutex> lk(rq.mu);
      json last = sse_chunk(rq, json::object(), finish_reason);
      last["usage"] = usage;
      last["provider_version"] = d.value("provider_version", "");
      write_locked(rq, "data: " + last.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\ndata: [DONE]\n\n");
      return end_stream_locked(rq);
    }
    json message{{"role", "assistant"}, {"content", d.value("content", "")}};
    if (d.contains("tool_calls")) message["tool_calls"] = d["tool_calls"];
    json out{{"id", rq.completion_id}, {"object", "chat.completion"}, {"created", rq.created}, {"model", rq.model},
             {"choices", json::array({json{{"index", 0}, {"message", message}, {"finish_reason", finish_reason}}})},
             {"usage", usage}, {"provider", rq.provider_id}, {"provider_version", d.value("provider_version", "")}};
    std::lock_guard<std::recursive_mutex> lk(rq.mu);
    rq.ex.respond(200, "application/json", out.dump(-1, ' ', false, json::error_handler_t::replace),
                  {{"X-Chorus-Provider", rq.provider_id}, {"X-Chorus-Model", rq.model}});
    finish_locked_release(rq);
  }

  void fail(Request &rq, chorus_status st, const std::string &msg) {
    m_requests_.inc(error_type(st));
    if (!rq.http) {
      if (rq.sink.on_error != nullptr) rq.sink.on_error(rq.sink.user, st, msg.data(), msg.size());
      return finish(rq);
    }
    std::lock_guard<std::recursive_mutex> lk(rq.mu);
    if (rq.stream_begun) {
      json e = json::parse(error_body(st, msg, rq.provider_id));
      write_locked(rq, "event: error\ndata: " + e.dump() + "\n\n");
      return end_stream_locked(rq);
    }
    if (rq.ex) rq.ex.respond(http_status_for(st), "application/json", error_body(st, msg, rq.provider_id));
    finish_locked_release(rq);
  }

  // Ends a stream once the pending bytes are out (retrying on a timer while the client is slow).
  void end_stream_locked(Request &rq) {
    if (!rq.pending.empty() && rq.ex) {
      write_locked(rq, {});
      if (!rq.pending.empty() && rq.ex && !rq.cancelled) {
        auto self = rq.self_;
        try {
          host_.timer(std::chrono::milliseconds(5), std::chrono::milliseconds(0), [this, self] {
            std::lock_guard<std::recursive_mutex> lk(self->mu);
            end_stream_locked(*self);
          });
          return;
        } catch (...) {
        }
      }
    }
    if (rq.ex) rq.ex.end();
    finish_locked_release(rq);
  }

  void finish_locked_release(Request &rq) {
    rq.finished = true;
    rq.provider.reset();  // the ref is released here, at the terminal callback
    auto self = std::move(rq.self_);
    {
      std::lock_guard lk(live_mu_);
      live_.erase(rq.id);
      if (live_.empty()) live_cv_.notify_all();
    }
    // Every caller holds its own strong reference, so dropping `self` here never frees `rq`
    // while its mutex is held.
  }

  void finish(Request &rq) {
    std::lock_guard<std::recursive_mutex> lk(rq.mu);
    finish_locked_release(rq);
  }

  void cancel_request(Request &rq) {
    std::lock_guard<std::recursive_mutex> lk(rq.mu);
    if (rq.cancelled || rq.finished) return;
    rq.cancelled = true;
    if (rq.provider_call != 0 && rq.provider) rq.provider.call<&chorus_ai_provider_v1::cancel>(rq.provider_call);
  }

  std::string status_json() {
    const auto prompts = current_prompts();
    json j{{"role", current_role()}, {"models", s_.models}, {"default_model", s_.default_model},
           {"assigned_model", assigned_model()},
           {"model_selection_webhook", !s_.webhook.empty()}, {"system_prompt_bytes", prompts->composed.size()},
           {"roles", json::array()}};
    for (const auto &[id, r] : prompts->roles) j["roles"].push_back(id);
    auto p = host_.try_acquire<chorus_ai_provider_v1>(CHORUS_AI_PROVIDER_SERVICE, "^1");
    if (p) {
      j["provider"] = std::string(p.provider_id());
      chorus_buf buf{};
      if (p.call<&chorus_ai_provider_v1::health>(&buf, nullptr) == CHORUS_OK) {
        j["provider_health"] = json::parse(std::string_view(buf.data, buf.len), nullptr, false);
        buf.release(&buf);
      }
    } else {
      j["provider"] = nullptr;
    }
    return j.dump();
  }

  // ---------------------------------------------------------------- chorus.reasoning v1
  static chorus_status c_complete(void *self, const char *j, size_t n, const chorus_ai_sink *sink, uint64_t *out_id,
                                  chorus_error *err) noexcept {
    return chorus::guard(err, [&] {
      auto *r = static_cast<Reasoning *>(self);
      if (out_id != nullptr) *out_id = 0;
      if (sink == nullptr || sink->struct_size < sizeof(chorus_ai_sink) || sink->on_done == nullptr || sink->on_error == nullptr)
        throw chorus::Error(CHORUS_E_INVALID_ARG, "sink must be a complete chorus_ai_sink");
      json body = json::parse(std::string_view(j ? j : "", j ? n : 0), nullptr, false);
      if (auto problem = validate(body); !problem.empty()) throw chorus::Error(CHORUS_E_INVALID_ARG, problem);
      auto rq = std::make_shared<Request>();
      rq->http = false;
      rq->sink = *sink;
      rq->body = std::move(body);
      rq->stream = (rq->body.contains("stream") && rq->body["stream"].is_boolean() && rq->body["stream"].get<bool>());
      if (r->stopping_) throw chorus::Error(CHORUS_E_UNAVAILABLE, "reasoning is stopping");
      r->begin(rq);  // on a failure here the sink already has its terminal callback
      if (out_id != nullptr) *out_id = rq->id;
    });
  }
  static chorus_status c_cancel(void *self, uint64_t id) noexcept {
    auto *r = static_cast<Reasoning *>(self);
    std::shared_ptr<Request> rq;
    {
      std::lock_guard lk(r->live_mu_);
      auto it = r->live_.find(id);
      if (it != r->live_.end()) rq = it->second.lock();
    }
    if (rq && rq->http) rq.reset();  // HTTP requests are not the service caller's to cancel
    // An id that was issued but has finished: harmless, as reasoning_v1.h / ai_provider_v1.h promise.
    if (!rq) return id != 0 && id < r->next_id_.load() ? CHORUS_OK : CHORUS_E_NOT_FOUND;
    r->cancel_request(*rq);
    return CHORUS_OK;
  }
  static chorus_status c_system_prompt(void *self, chorus_buf *out, chorus_error *err) noexcept {
    return chorus::guard(err, [&] {
      if (out == nullptr) throw chorus::Error(CHORUS_E_INVALID_ARG, "out must not be NULL");
      auto *text = new std::string(static_cast<Reasoning *>(self)->current_prompts()->composed);
      *out = chorus_buf{text->data(), text->size(), text, [](chorus_buf *b) { delete static_cast<std::string *>(b->owner); }};
    });
  }

  // The agent facts of host_info this plugin follows: the role and model of the agent's assignment.
  struct AgentFacts {
    std::string role, model;
  };
  AgentFacts agent_facts() const {
    json info = json::parse(host_.host_info(), nullptr, false);
    if (!info.is_object()) return {};
    auto text = [&](const char *key) {
      auto it = info.find(key);
      return it != info.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    return {text("role"), text("model")};
  }
  std::string current_role() const {
    std::lock_guard lk(assigned_mu_);
    return role_;
  }
  std::string assigned_model() const {
    std::lock_guard lk(assigned_mu_);
    return assigned_model_;
  }
  std::shared_ptr<const chorus::reasoning::Prompts> current_prompts() const {
    std::lock_guard lk(assigned_mu_);
    return prompts_;
  }

  chorus::Host &host_;
  Settings s_;  // fixed for the instance's life; the role and model below follow the assignment
  bool role_from_config_ = false;  // s_.role is set: it stays, whatever the assignment says
  mutable std::mutex assigned_mu_;  // request threads read what reload() replaces
  std::string role_;  // s_.role, else the agent's (assignment) role
  std::string assigned_model_;
  std::shared_ptr<const chorus::reasoning::Prompts> prompts_;
  chorus::ai_common::HttpEngine engine_;
  chorus_reasoning_v1 table_{};
  chorus::Counter m_requests_, m_selection_;
  std::atomic<uint64_t> next_id_{1};
  std::atomic<bool> stopping_{false};
  std::mutex live_mu_;
  std::condition_variable live_cv_;
  std::unordered_map<uint64_t, std::weak_ptr<Request>> live_;
};

constexpr chorus_provide kProvides[] = {
    chorus::provide(CHORUS_REASONING_SERVICE, CHORUS_REASONING_V1_MAJOR, CHORUS_REASONING_V1_MINOR)};
constexpr chorus_require kRequires[] = {chorus::require(CHORUS_AI_PROVIDER_SERVICE, "^1")};
}  // namespace
}  // namespace chorus::reasoning

CHORUS_PLUGIN(chorus::reasoning::Reasoning,
              .id = "reasoning",
              .version = "1.0.0",
              .description = "Model selection, role prompts and the agent AI API (/api/v1/ai/chat)",
              .vendor = "CHORUS",
              .license = "Apache-2.0",
              .provides = chorus::reasoning::kProvides,
              .requirements = chorus::reasoning::kRequires,
              .config_schema = chorus::reasoning::kConfigSchema);
