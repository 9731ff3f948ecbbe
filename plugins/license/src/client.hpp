// One blocking HTTP POST with libcurl (easy interface): the plugin makes one validation at a time,
// at start and from its timer, so it needs no multi engine. The transfer aborts when `cancel` turns
// true (the plugin is stopping) and never outlives timeout_ms.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace chorus::license {

struct HttpResult {
  int status = 0;      // HTTP status; 0 = no HTTP answer (see error)
  std::string body;    // at most max_body bytes were kept; body_truncated says when more came
  bool body_truncated = false;
  std::string error;   // the transport failure when status is 0
};

// Once per process before the first post_json (thread-safe since libcurl 7.84; never cleaned up,
// as other plugins in the same process may use libcurl).
void http_global_init();

HttpResult post_json(const std::string &url, const std::string &body, int64_t timeout_ms, size_t max_body,
                     const std::atomic<bool> *cancel);

}  // namespace chorus::license
