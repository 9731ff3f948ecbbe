// The host's use of SHHH (docs/shhh.md): the running Sentinel, the per-channel switches of
// host.shhh, the JSON-lines audit file and the chorus_shhh_* metrics.
//
// One process-wide state, swapped whole: install() builds a new Sentinel from the configuration and
// publishes it atomically, so a reload (SIGHUP) never leaves a half-built sentinel in use and a
// redaction in flight keeps the state it started with.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "config.hpp"
#include "shhh/sentinel.hpp"

namespace chorus::host {

class MetricsRegistry;

// Builds the sentinel from `config` and makes it the running one. The audit file is
// audit_file_path(config, state_dir); metrics go to `metrics` when not null (it must outlive
// uninstall_redaction()). Returns false with *error (the rule and RE2's reason) and keeps the
// running state when a rule does not compile.
bool install_redaction(const ShhhConfig &config, const std::string &state_dir, MetricsRegistry *metrics,
                       std::string *error);
// Drops the running state: nothing is redacted afterwards (used at exit, before the metrics go).
void uninstall_redaction();

// Where findings are audited: "" when host.shhh.audit_file is "off".
std::string audit_file_path(const ShhhConfig &config, const std::string &state_dir);

// True when SHHH is enabled and `channel` switched on.
bool redaction_enabled(shhh::Channel channel);

// Redacts `in` for `channel` (JSON or free text), auditing and counting each finding under `source`
// (a plugin id or "host"). A channel switched off, or no running state, returns the input as is.
std::string redact_for(shhh::Channel channel, bool json, std::string_view in, std::string_view source,
                       uint32_t *findings = nullptr);

}  // namespace chorus::host
