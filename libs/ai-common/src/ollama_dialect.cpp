// Ollama wire protocol: POST /api/chat, POST /api/generate (NDJSON streaming), GET /api/tags.
#include "ai_common/stream_parsers.hpp"
#include "dialect_common.hpp"

namespace chorus::ai_common {
namespace {
// "done" is ours only when it is a real boolean: json::value() would throw on "done": 444, and the
// answer comes from the network.
bool marked_done(const nlohmann::json &j) {
  auto d = j.find("done");
  return d != j.end() && d->is_boolean() && d->get<bool>();
}

using detail::json;

json ollama_options(const json *opts) {
  json o = json::object();
  if (opts == nullptr) return o;
  for (const char *k : {"temperature", "top_p", "top_k", "seed", "stop", "num_ctx"})
    if (auto it = opts->find(k); it != opts->end()) o[k] = *it;
  if (auto it = opts->find("max_tokens"); it != opts->end()) o["num_predict"] = *it;
  return o;
}

// OpenAI-style tool call (arguments as JSON text) -> Ollama (arguments as object).
json to_ollama_tool_call(const json &c) {
  json fn = c.value("function", json::object());
  json args = json::object();
  if (auto a = fn.find("arguments"); a != fn.end()) {
    if (a->is_string()) {
      args = json::parse(a->get<std::string>(), nullptr, false);
      if (args.is_discarded()) args = json::object();
    } else if (a->is_object()) {
      args = *a;
    }
  }
  return json{{"function", {{"name", detail::str_or(fn, "name")}, {"arguments", args}}}};
}

// Ollama tool call -> OpenAI-style.
json from_ollama_tool_call(const json &c, size_t n) {
  json fn = c.is_object() ? c.value("function", json::object()) : json::object();
  json args = fn.is_object() && fn.contains("arguments") ? fn["arguments"] : json::object();
  return json{{"id", "call_" + std::to_string(n)},
              {"type", "function"},
              {"function", {{"name", detail::str_or(fn, "name")}, {"arguments", args.is_string() ? args.get<std::string>() : detail::dump(args)}}}};
}

const detail::DecoderBase::Wire kOllamaWire{
    "ollama", "NDJSON line too long", "/api/tags", "models",
    {"name", "model"}, {"size", "modified_at", "digest", "details"}};

class OllamaDecoder final : public detail::DecoderBase {
 public:
  OllamaDecoder(Kind kind, bool stream, std::string model, const ProviderIdentity &who)
      : DecoderBase(kOllamaWire, kind, stream, std::move(model), who), lines_(4u << 20) {}

 private:
  bool feed_stream(std::string_view bytes, std::vector<std::string> &chunks, chorus_status &st,
                   std::string &err) override {
    return lines_.feed(bytes, [&](std::string_view line) {
      if (line.find_first_not_of(" \t") == std::string_view::npos) return true;
      if (done_seen_) {
        st = CHORUS_E_PROTOCOL;
        err = "data after the final message of the stream";
        return false;
      }
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        st = CHORUS_E_PROTOCOL;
        err = "malformed NDJSON line from ollama: " + detail::excerpt(line);
        return false;
      }
      st = absorb(j, &chunks, err);
      return st == CHORUS_OK;
    });
  }

  chorus_status end_stream(std::string &err) override {
    if (!lines_.pending().empty()) {
      // A last line without "\n" is accepted if it is complete JSON.
      json j = json::parse(lines_.pending(), nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        err = "stream truncated inside a line";
        return CHORUS_E_PROTOCOL;
      }
      if (chorus_status st = absorb(j, nullptr, err); st != CHORUS_OK) return st;
    }
    return check_done(err);
  }

  chorus_status absorb_whole(const json &j, std::string &err) override {
    if (chorus_status st = absorb(j, nullptr, err); st != CHORUS_OK) return st;
    return check_done(err);
  }

  chorus_status check_done(std::string &err) const {
    if (done_seen_) return CHORUS_OK;
    err = "stream ended before the final message (truncated answer)";
    return CHORUS_E_PROTOCOL;
  }

  void before_done() override {
    usage_ = {{"prompt_tokens", prompt_tokens_}, {"completion_tokens", completion_tokens_},
              {"total_tokens", prompt_tokens_ + completion_tokens_}};
    if (!tool_calls_.empty()) finish_reason_ = "tool_calls";
  }

  chorus_status absorb(const json &j, std::vector<std::string> *chunks, std::string &err) {
    if (auto e = j.find("error"); e != j.end()) {
      err = "ollama: " + (e->is_string() ? e->get<std::string>() : detail::dump(*e));
      return CHORUS_E_SERVICE_BASE;
    }
    if (auto m = j.find("model"); m != j.end() && m->is_string()) model_ = m->get<std::string>();
    std::string delta;
    json calls = json::array();
    if (kind_ == Kind::chat) {
      auto msg = j.find("message");
      if (msg != j.end() && msg->is_object()) {
        delta = detail::str_or(*msg, "content");
        if (auto tc = msg->find("tool_calls"); tc != msg->end() && tc->is_array())
          for (const auto &c : *tc) {
            json oc = from_ollama_tool_call(c, tool_calls_.size());
            json d = oc;
            d["index"] = tool_calls_.size();
            calls.push_back(d);
            tool_calls_.push_back(std::move(oc));
          }
      } else if (!marked_done(j)) {
        err = "ollama chat answer without a message object";
        return CHORUS_E_PROTOCOL;
      }
    } else {
      auto r = j.find("response");
      if (r != j.end() && r->is_string()) delta = r->get<std::string>();
      else if (!marked_done(j)) {
        err = "ollama generate answer without a response field";
        return CHORUS_E_PROTOCOL;
      }
    }
    content_ += delta;
    if (chunks != nullptr && (!delta.empty() || !calls.empty())) {
      json c = json::object();
      if (!delta.empty()) c["delta"] = delta;
      if (!calls.empty()) c["tool_calls"] = calls;
      chunks->push_back(detail::dump(c));
    }
    if (marked_done(j)) {
      done_seen_ = true;
      finish_reason_ = detail::str_or(j, "done_reason", "stop");
      prompt_tokens_ = detail::int_or(j, "prompt_eval_count");
      completion_tokens_ = detail::int_or(j, "eval_count");
    } else if (!stream_) {
      err = "ollama answer is not marked done";
      return CHORUS_E_PROTOCOL;
    }
    return CHORUS_OK;
  }

  LineSplitter lines_;
  int64_t prompt_tokens_ = 0, completion_tokens_ = 0;
};

class OllamaDialect final : public Dialect {
 public:
  const char *name() const noexcept override { return "ollama"; }

  Upstream build(Kind kind, std::string_view text, const ProviderIdentity &who) const override {
    Upstream up;
    json req, body;
    if (!detail::begin_build(kind, text, who, "/api/tags", up, req, body)) return up;
    json opts = ollama_options(detail::options_of(req));
    if (!opts.empty()) body["options"] = opts;
    if (kind == Kind::chat) {
      json msgs = json::array();
      for (const auto &m : detail::messages_of(req)) {
        json om{{"role", m["role"]}, {"content", m.contains("content") && m["content"].is_string() ? m["content"] : json("")}};
        if (auto tc = m.find("tool_calls"); tc != m.end() && tc->is_array()) {
          json calls = json::array();
          for (const auto &c : *tc) calls.push_back(to_ollama_tool_call(c));
          om["tool_calls"] = calls;
        }
        msgs.push_back(std::move(om));
      }
      body["messages"] = std::move(msgs);
      if (auto t = req.find("tools"); t != req.end() && !t->is_null()) {
        if (!t->is_array()) throw chorus::Error(CHORUS_E_INVALID_ARG, "tools must be an array");
        body["tools"] = *t;
      }
      up.path = "/api/chat";
    } else {
      auto p = req.find("prompt");
      if (p == req.end() || !p->is_string()) throw chorus::Error(CHORUS_E_INVALID_ARG, "prompt must be a string");
      body["prompt"] = *p;
      if (auto s = req.find("system"); s != req.end() && s->is_string()) body["system"] = *s;
      up.path = "/api/generate";
    }
    up.body = detail::dump(body);
    return up;
  }

  std::unique_ptr<Decoder> decoder(Kind kind, const Upstream &up, const ProviderIdentity &who) const override {
    return std::make_unique<OllamaDecoder>(kind, up.stream, up.model, who);
  }

  std::string error_text(long status, std::string_view body) const override {
    json j = json::parse(body, nullptr, false);
    std::string msg;
    if (!j.is_discarded() && j.is_object()) msg = detail::str_or(j, "error");
    if (msg.empty()) msg = detail::excerpt(body);
    return "ollama answered HTTP " + std::to_string(status) + (msg.empty() ? "" : ": " + msg);
  }
};
}  // namespace

std::unique_ptr<Dialect> make_ollama_dialect() { return std::make_unique<OllamaDialect>(); }

}  // namespace chorus::ai_common
