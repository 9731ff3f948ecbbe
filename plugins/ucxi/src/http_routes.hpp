// The UCXI server: /ucxi/v1/{get,put,post,delete,announce,discover,navigate,status,query} on the
// host's HTTP listener (README.md, "HTTP"). Every answer is a UCXL envelope (envelope.hpp) with the
// header X-Request-Id; 204 has no body. Each op path is registered for every method ("*") so a wrong
// method gets UCXL-405-METHOD_NOT_ALLOWED; paths that name no op are the host's 404.
#pragma once

#include <string_view>

#include <chorus/plugin.hpp>

#include "service_table.hpp"

namespace chorus::ucxi {

// Mounts every route (constructor only). `metrics` count requests even while the plugin is not running.
void register_routes(chorus::Host &host, RuntimeSource &source, const Metrics &metrics);

// True for the media types whose bodies must be UTF-8 text: text/*, application/json,
// application/yaml, application/xml and any */*+json. Parameters (";charset=...") and case are ignored.
bool is_text_content_type(std::string_view content_type);
// True when bytes are well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view bytes);

}  // namespace chorus::ucxi
