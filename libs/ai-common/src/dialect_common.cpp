#include "dialect_common.hpp"

namespace chorus::ai_common {
chorus_status status_for_http(long s) noexcept {
  if (s == 400 || s == 422) return CHORUS_E_INVALID_ARG;
  if (s == 404) return CHORUS_E_NOT_FOUND;
  if (s == 408 || s == 504) return CHORUS_E_TIMEOUT;
  if (s == 413) return CHORUS_E_TOO_LARGE;
  if (s == 429) return CHORUS_E_BUSY;
  if (s == 503) return CHORUS_E_UNAVAILABLE;
  return CHORUS_E_SERVICE_BASE + 0;  // CHORUS_AI_E_UPSTREAM
}

namespace detail {

chorus_status DecoderBase::feed(std::string_view bytes, std::vector<std::string> &chunks, std::string &err) {
  if (!stream_ || kind_ == Kind::models) {
    body_.append(bytes);  // bounded by the engine's max_response_bytes
    return CHORUS_OK;
  }
  chorus_status st = CHORUS_OK;
  if (!feed_stream(bytes, chunks, st, err) && st == CHORUS_OK) {
    st = CHORUS_E_PROTOCOL;
    err = wire_.framing_overflow;
  }
  return st;
}

chorus_status DecoderBase::finish(std::string &done, std::string &err) {
  if (kind_ == Kind::models) return finish_models(done, err);
  if (!stream_) {
    json j = json::parse(body_, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      err = std::string("malformed JSON body from ") + wire_.server + ": " + excerpt(body_);
      return CHORUS_E_PROTOCOL;
    }
    if (chorus_status st = absorb_whole(j, err); st != CHORUS_OK) return st;
  } else if (chorus_status st = end_stream(err); st != CHORUS_OK) {
    return st;
  }
  before_done();
  json d{{"model", model_}, {"content", content_}, {"finish_reason", finish_reason_},
         {"usage", usage_}, {"provider", who_.id}, {"provider_version", who_.version}};
  if (!tool_calls_.empty()) d["tool_calls"] = tool_calls_;
  done = dump(d);
  return CHORUS_OK;
}

chorus_status DecoderBase::finish_models(std::string &done, std::string &err) {
  json j = json::parse(body_, nullptr, false);
  auto list = j.is_object() ? j.find(wire_.models_key) : j.end();
  if (j.is_discarded() || !j.is_object() || list == j.end() || !list->is_array()) {
    err = std::string("malformed ") + wire_.models_path + " answer from " + wire_.server + ": " + excerpt(body_);
    return CHORUS_E_PROTOCOL;
  }
  json models = json::array();
  for (const auto &m : *list) {
    std::string id;
    for (const char *k : wire_.model_id_keys)
      if (id.empty()) id = str_or(m, k);
    if (id.empty()) continue;
    json e{{"id", id}};
    for (const char *k : wire_.model_detail_keys)
      if (m.contains(k)) e[k] = m[k];
    models.push_back(std::move(e));
  }
  done = dump(json{{"models", models}, {"provider", who_.id}});
  return CHORUS_OK;
}

}  // namespace detail
}  // namespace chorus::ai_common
