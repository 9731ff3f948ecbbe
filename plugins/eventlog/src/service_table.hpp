// chorus.eventlog v1 (chorus/services/eventlog_v1.h) as a C table over the running EventLog.
#pragma once

#include <memory>
#include <string>

#include <chorus/services/eventlog_v1.h>

#include "event_log.hpp"

namespace chorus::eventlog {

// What the table's `self` points to: hands out the log while the plugin runs (nullptr otherwise).
class LogSource {
 public:
  virtual ~LogSource() = default;
  virtual std::shared_ptr<EventLog> log() = 0;
};

chorus_eventlog_v1 make_eventlog_table();

// The JSON answers shared by the table and the HTTP routes.
std::string query_answer(const std::vector<Entry> &entries);
std::string head_answer(const Head &head);

}  // namespace chorus::eventlog
