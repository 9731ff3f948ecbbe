// ai-probe (tests only): puts the chorus.ai.provider slots that reasoning does not use on HTTP, so
// the integration tests can drive them end to end through a real agent and a real provider plugin.
//
//   POST /test/ai/generate   body: a generate request (chorus/services/ai_provider_v1.h)
//   GET  /test/ai/health     the bound provider's health() JSON
//
// The generate answer is sent at the terminal callback: 200 {"provider", "chunks": [...], "done": {...}}
// or 200 {"provider", "chunks": [...], "error": {"status": n, "message": "..."}}; a call the provider
// refused synchronously is 200 {"refused": {"status": n, "message": "..."}}; no provider is 503.
#include <chorus/plugin.hpp>
#include <chorus/services/ai_provider_v1.h>

#include <memory>
#include <mutex>

#include <nlohmann/json.hpp>

namespace {
using json = nlohmann::json;
using Provider = chorus::ServiceRef<chorus_ai_provider_v1>;

// One generate call; owned by its sink (deleted at the terminal callback).
struct Call {
  chorus::HttpExchange ex;
  Provider provider;
  std::string provider_id;
  std::mutex mu;
  json chunks = json::array();
  chorus_ai_sink sink{};

  void answer(json body) {
    body["provider"] = provider_id;
    body["chunks"] = chunks;
    ex.respond(200, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace));
  }
  static void on_chunk(void *u, const char *j, size_t n) noexcept {
    auto *c = static_cast<Call *>(u);
    std::lock_guard lk(c->mu);
    c->chunks.push_back(json::parse(std::string_view(j, n), nullptr, false));
  }
  static void on_done(void *u, const char *j, size_t n) noexcept {
    terminal(static_cast<Call *>(u), [&](Call &c) { c.answer(json{{"done", json::parse(std::string_view(j, n), nullptr, false)}}); });
  }
  static void on_error(void *u, chorus_status st, const char *m, size_t n) noexcept {
    terminal(static_cast<Call *>(u), [&](Call &c) { c.answer(json{{"error", {{"status", st}, {"message", std::string(m, n)}}}}); });
  }
  // Answers, then frees the call, unless generate() is still on the stack (a terminal callback may
  // come from inside the call): then generate() frees it when it returns.
  template <class F>
  static void terminal(Call *c, F &&answer) noexcept {
    bool free_now = false;
    {
      std::lock_guard lk(c->mu);
      try {
        answer(*c);
      } catch (...) {
      }
      c->ended = true;
      free_now = !c->calling;
    }
    if (free_now) delete c;
  }

  bool calling = true;  // generate() has not returned yet
  bool ended = false;   // the terminal callback has run
};

class AiProbe final : public chorus::Plugin {
 public:
  AiProbe(chorus::Host &host, std::string_view) : host_(host) {
    host_.route("POST", "/test/ai/generate", [this](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
      generate(req.body(), std::move(ex));
    });
    host_.route("GET", "/test/ai/health", [this](const chorus::HttpRequest &, chorus::HttpExchange ex) {
      auto p = host_.try_acquire<chorus_ai_provider_v1>(CHORUS_AI_PROVIDER_SERVICE, "^1");
      chorus_buf buf{};
      if (!p || p.call<&chorus_ai_provider_v1::health>(&buf, nullptr) != CHORUS_OK) {
        ex.respond(503, "application/json", R"({"error":"no provider"})");
        return;
      }
      std::string text(buf.data, buf.len);
      buf.release(&buf);
      ex.respond(200, "application/json", text);
    });
  }

 private:
  void generate(std::string_view body, chorus::HttpExchange ex) {
    auto call = std::make_unique<Call>();
    call->ex = std::move(ex);
    chorus::ErrorBuffer err;
    call->provider = host_.try_acquire<chorus_ai_provider_v1>(CHORUS_AI_PROVIDER_SERVICE, "^1", &err);
    if (!call->provider) {
      call->ex.respond(503, "application/json", json{{"error", std::string(err.text())}}.dump());
      return;
    }
    call->provider_id = std::string(call->provider.provider_id());
    call->sink.struct_size = sizeof call->sink;
    call->sink.user = call.get();
    call->sink.on_chunk = &Call::on_chunk;
    call->sink.on_done = &Call::on_done;
    call->sink.on_error = &Call::on_error;
    uint64_t id = 0;
    const chorus_status st =
        call->provider.call<&chorus_ai_provider_v1::generate>(body.data(), body.size(), &call->sink, &id, err.get());
    std::lock_guard lk(call->mu);
    call->calling = false;
    if (st != CHORUS_OK) {  // no callback will come
      call->answer(json{{"refused", {{"status", st}, {"message", std::string(err.text())}}}});
      return;  // freed here
    }
    if (!call->ended) call.release();  // the terminal callback frees it
    // else: it ended inside generate(); freed here
  }

  chorus::Host &host_;
};

constexpr chorus_require kRequires[] = {chorus::require(CHORUS_AI_PROVIDER_SERVICE, "^1")};
}  // namespace

CHORUS_PLUGIN(AiProbe,
              .id = "ai-probe",
              .version = "0.0.1",
              .description = "Tests only: chorus.ai.provider generate and health on HTTP",
              .vendor = "CHORUS tests",
              .license = "Apache-2.0",
              .requirements = kRequires);
