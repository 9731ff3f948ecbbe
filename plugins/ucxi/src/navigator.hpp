// Temporal navigation over the versions of one address (sans I/O): which version a temporal segment
// names, with bounds checking. Versions are numbered 1..count, 1 the oldest.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ucxl/address.hpp"

namespace chorus::ucxi {

enum class NavigateError {
  kNone,
  kNoVersions,   // the address has no version at all (-> UCXL-404-NOT_FOUND)
  kOutOfRange,   // *~N beyond count, ~~N before 1, ^^N beyond count (-> UCXL-400-TEMPORAL_INVALID)
};

struct NavigateResult {
  uint64_t version = 0;  // 1..count when error == kNone
  NavigateError error = NavigateError::kNone;
  std::string message;   // why, for the error envelope ("version 7 requested, 3 exist")
};

// Resolves t against `count` versions. Relative segments count from `from` (a version 1..count;
// 0 means "latest", i.e. count): ~~N gives from-N, ^^N gives from+N. *^ gives count, *~ the latest
// too (any version will do; we choose the newest), *~N gives N.
NavigateResult resolve_version(const ucxl::TemporalSegment &t, uint64_t count, uint64_t from = 0);

}  // namespace chorus::ucxi
