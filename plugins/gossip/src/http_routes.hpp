// The gossip plugin's HTTP routes (docs/contract.md, gossip routes): publish (envelope or raw), join,
// leave, topics, peers, and a server-sent-events stream of the messages delivered on a topic.
// JSON errors are {"error":{"code","message"}} with the status's name as code.
#pragma once

#include <memory>
#include <string>

#include <chorus/http_query.hpp>
#include <chorus/plugin.hpp>

#include "service_table.hpp"

namespace chorus::gossip {

class SseRegistry;

// Mounts every route (constructor or start() only). The returned registry tracks open event
// streams: keep it alive while the routes are mounted and call sse_keepalive(registry) every few
// seconds (a comment line that also notices clients that went away).
std::shared_ptr<SseRegistry> register_routes(chorus::Host &host, NodeSource &source);
void sse_keepalive(SseRegistry &registry);

// Helpers shared with the tests.
std::string base64_encode(const uint8_t *data, size_t len);
bool base64_decode(std::string_view text, std::string *out);
// Query strings are read with the SDK's chorus/http_query.hpp.
using chorus::query_param;
using chorus::url_decode;
// One SSE event for a delivered message: "data: {...}\n\n".
std::string sse_event(const chorus_pubsub_message &m);

}  // namespace chorus::gossip
