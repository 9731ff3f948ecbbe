// The dht plugin's HTTP routes (docs/contract.md, dht routes): the routing table, values, providers
// and find-peer. JSON errors are {"error":{"code","message"}} with the status's name as code.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <chorus/http_query.hpp>
#include <chorus/plugin.hpp>

#include "service_table.hpp"

namespace chorus::dht {

// Mounts every route (constructor or start() only).
void register_routes(chorus::Host &host, NodeSource &source);

// Query strings are read with the SDK's chorus/http_query.hpp.
using chorus::query_param;
using chorus::url_decode;
// The provider key an HTTP key stands for: a CID (CIDv0 `Qm...`, CIDv1 in base32 `b...`) stands for
// its multihash, any other text for its UTF-8 bytes.
Bytes provider_key(std::string_view text);
// The HTTP status for a chorus status (400, 404, 413, 501, 503, 504, 500).
int http_status(chorus_status st);

}  // namespace chorus::dht
