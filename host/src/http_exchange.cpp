// The plugin's side of an exchange: the C ABI calls (respond, stream_begin/write/end), which may come
// from any thread, and cancellation. Split from http_server.cpp to keep each file short; the shared
// types are in http_server_internal.hpp.
#include <cstdint>
#include <new>

#include <boost/asio/post.hpp>

#include "http_server_internal.hpp"

namespace chorus::host::http_internal {
namespace {

// A stream whose client reads slower than the plugin writes is refused more data past this.
constexpr size_t kMaxQueuedStreamBytes = 8u << 20;

// Header values must not smuggle in line breaks (response splitting) or other control characters.
bool is_field_value(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

// Copies the plugin's headers; false if one is malformed or is one the host manages.
template <class Message>
bool add_plugin_headers(Message &msg, const char *content_type, const chorus_http_header *headers,
                        size_t count) {
  const std::string_view type = content_type != nullptr ? content_type : "application/octet-stream";
  if (type.empty() || !is_field_value(type)) return false;
  msg.set(http::field::server, kServerName);
  msg.set(http::field::content_type, bsv(type));
  for (size_t i = 0; i < count; ++i) {
    const chorus_http_header &h = headers[i];
    if (h.name == nullptr || (h.value == nullptr && h.value_len > 0)) return false;
    const std::string_view name(h.name, h.name_len);
    const std::string_view value(h.value != nullptr ? h.value : "", h.value_len);
    if (!is_token(name) || !is_field_value(value)) return false;
    for (const char *managed : {"content-type", "content-length", "transfer-encoding", "connection"}) {
      if (beast::iequals(bsv(name), managed)) return false;
    }
    msg.insert(bsv(name), bsv(value));
  }
  return true;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Exchange operations (any thread)

void cancel_exchange(chorus_http_exchange *ex, int status) {
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(ex->mu);
    if (ex->cancelled || ex->phase == chorus_http_exchange::Phase::kDone) return;
    ex->cancelled = true;
    conn = std::move(ex->conn);
  }
  if (!conn) return;
  // Posted after everything the plugin posted before the cancel (it happened under the same lock).
  net::post(conn->executor(), [conn, ref = ExchangeRef::share(ex), status] {
    conn->abort_exchange(ref.get(), status);
  });
}

namespace {

enum class Action { kRespond, kBegin, kWrite, kEnd };

// The plugin-side state machine. `out` (may be null) is posted to the connection if still wanted.
chorus_status submit(chorus_http_exchange *ex, Action action, std::unique_ptr<Outgoing> out) {
  using Phase = chorus_http_exchange::Phase;
  chorus_status rc = CHORUS_OK;
  bool finished = false;
  {
    std::lock_guard lock(ex->mu);
    switch (action) {
      case Action::kRespond:
        if (ex->phase != Phase::kNew) return CHORUS_E_INVALID_ARG;
        break;
      case Action::kBegin:
        if (ex->phase != Phase::kNew) return CHORUS_E_INVALID_ARG;
        ex->phase = Phase::kStreaming;
        break;
      case Action::kWrite:
        if (ex->phase != Phase::kStreaming) return CHORUS_E_INVALID_ARG;
        break;
      case Action::kEnd:
        if (ex->phase != Phase::kStreaming) return CHORUS_E_INVALID_ARG;
        break;
    }
    if (action == Action::kWrite && !ex->cancelled && out) {
      // One big write alone is always accepted; only piling more on top of a backlog is refused.
      const size_t queued = ex->queued_bytes.load(std::memory_order_relaxed);
      if (queued > 0 && queued + out->data.size() > kMaxQueuedStreamBytes) return CHORUS_E_BUSY;
      ex->queued_bytes.fetch_add(out->data.size(), std::memory_order_relaxed);
    }
    if (action == Action::kRespond || action == Action::kEnd) {
      ex->phase = Phase::kDone;
      finished = true;
    }
    if (ex->cancelled || !ex->conn) {
      rc = CHORUS_E_CANCELLED;
    } else if (out) {
      // Posting under the lock keeps concurrent writers' data in the order their calls took it.
      auto conn = ex->conn;
      net::post(conn->executor(), [conn, ref = ExchangeRef::share(ex), o = std::move(out)]() mutable {
        conn->deliver(ref.get(), std::move(o));
      });
    }
    if (finished) ex->conn.reset();  // nothing more to send: drop the connection reference
  }
  if (finished) ex->registry->plugin_finished(ex);  // `ex` may be freed here
  return rc;
}

template <typename F>
chorus_status guarded(F &&f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc &) {
    return CHORUS_E_NO_MEMORY;
  } catch (...) {
    return CHORUS_E_INTERNAL;
  }
}

bool valid_status(int32_t status) { return status >= 200 && status <= 599; }
bool bodyless_status(int32_t status) { return status == 204 || status == 304; }

}  // namespace
}  // namespace chorus::host::http_internal

namespace chorus::host {

using namespace http_internal;

chorus_status HttpServer::respond(chorus_http_exchange *ex, int32_t status, const char *content_type,
                                  const chorus_http_header *headers, size_t header_count,
                                  const char *body, size_t body_len) {
  return guarded([&]() -> chorus_status {
    if (ex == nullptr || !valid_status(status) || (body == nullptr && body_len > 0) ||
        (headers == nullptr && header_count > 0) || (bodyless_status(status) && body_len > 0)) {
      return CHORUS_E_INVALID_ARG;
    }
    auto out = std::make_unique<Outgoing>(Outgoing::Kind::kWhole);
    out->whole = std::make_unique<http::response<http::string_body>>();
    auto &res = *out->whole;
    res.result(static_cast<unsigned>(status));
    if (!add_plugin_headers(res, content_type, headers, header_count)) return CHORUS_E_INVALID_ARG;
    if (body_len > 0) res.body().assign(body, body_len);
    if (!bodyless_status(status)) res.content_length(body_len);
    return submit(ex, Action::kRespond, std::move(out));
  });
}

chorus_status HttpServer::stream_begin(chorus_http_exchange *ex, int32_t status,
                                       const char *content_type, const chorus_http_header *headers,
                                       size_t header_count) {
  return guarded([&]() -> chorus_status {
    if (ex == nullptr || !valid_status(status) || bodyless_status(status) ||
        (headers == nullptr && header_count > 0)) {
      return CHORUS_E_INVALID_ARG;
    }
    auto out = std::make_unique<Outgoing>(Outgoing::Kind::kHead);
    out->head = std::make_unique<http::response<http::empty_body>>();
    out->head->result(static_cast<unsigned>(status));
    if (!add_plugin_headers(*out->head, content_type, headers, header_count)) {
      return CHORUS_E_INVALID_ARG;
    }
    return submit(ex, Action::kBegin, std::move(out));
  });
}

chorus_status HttpServer::stream_write(chorus_http_exchange *ex, const char *data, size_t len) {
  return guarded([&]() -> chorus_status {
    if (ex == nullptr || (data == nullptr && len > 0)) return CHORUS_E_INVALID_ARG;
    std::unique_ptr<Outgoing> out;
    if (len > 0) {  // an empty chunk would end the chunked body, so it is simply not sent
      out = std::make_unique<Outgoing>(Outgoing::Kind::kChunk);
      out->data.assign(data, len);
    }
    return submit(ex, Action::kWrite, std::move(out));
  });
}

chorus_status HttpServer::stream_end(chorus_http_exchange *ex) {
  return guarded([&]() -> chorus_status {
    if (ex == nullptr) return CHORUS_E_INVALID_ARG;
    return submit(ex, Action::kEnd, std::make_unique<Outgoing>(Outgoing::Kind::kLast));
  });
}

}  // namespace chorus::host