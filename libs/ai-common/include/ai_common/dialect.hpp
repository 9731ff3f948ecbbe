// Wire dialects: how a normalized chorus.ai.provider request becomes an upstream HTTP request, and
// how the upstream answer (streamed or not) becomes chunk and done JSON. Pure functions of bytes:
// these are the parsers of network input that the fuzz targets exercise.
#pragma once

#include <chorus/plugin.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace chorus::ai_common {

enum class Kind { chat, generate, models };

struct ProviderIdentity {
  std::string id;       // plugin id, e.g. "ai-ollama"
  std::string version;  // plugin version
  std::string default_model;
};

struct Upstream {
  std::string method = "POST";
  std::string path;  // appended to the endpoint / base URL
  std::string body;
  bool stream = false;
  std::string model;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Body bytes of a 2xx answer. Appends serialized chunk JSON objects to chunks. Returns CHORUS_OK or
  // an error status with err set (malformed input, an error object inside the stream, ...).
  virtual chorus_status feed(std::string_view bytes, std::vector<std::string> &chunks, std::string &err) = 0;
  // End of body. Writes the done JSON, or returns an error (e.g. truncated stream).
  virtual chorus_status finish(std::string &done, std::string &err) = 0;
};

class Dialect {
 public:
  virtual ~Dialect() = default;
  virtual const char *name() const noexcept = 0;  // "ollama", "openai"
  // Throws chorus::Error(CHORUS_E_INVALID_ARG, ...) for an invalid request.
  virtual Upstream build(Kind kind, std::string_view request_json, const ProviderIdentity &who) const = 0;
  virtual std::unique_ptr<Decoder> decoder(Kind kind, const Upstream &up, const ProviderIdentity &who) const = 0;
  // The human-readable error carried by an upstream error body (status >= 400), never throwing.
  virtual std::string error_text(long http_status, std::string_view body) const = 0;
};

std::unique_ptr<Dialect> make_ollama_dialect();
std::unique_ptr<Dialect> make_openai_dialect();

// Status for an upstream HTTP error answer.
chorus_status status_for_http(long http_status) noexcept;

}  // namespace chorus::ai_common
