// Implementation of navigator.hpp: pure arithmetic on version numbers, so every bound is checked
// before any subtraction or addition can wrap.
#include "navigator.hpp"

namespace chorus::ucxi {
namespace {

NavigateResult ok(uint64_t version) { return NavigateResult{version, NavigateError::kNone, ""}; }

NavigateResult out_of_range(std::string why) { return NavigateResult{0, NavigateError::kOutOfRange, std::move(why)}; }

std::string versions_text(uint64_t count) {
  return std::to_string(count) + (count == 1 ? " version exists" : " versions exist");
}

}  // namespace

NavigateResult resolve_version(const ucxl::TemporalSegment &t, uint64_t count, uint64_t from) {
  if (count == 0) return NavigateResult{0, NavigateError::kNoVersions, "no version exists"};
  switch (t.type) {
    case ucxl::TemporalType::kLatest:
    case ucxl::TemporalType::kAny:
      return ok(count);
    case ucxl::TemporalType::kSpecific:
      if (t.count == 0 || t.count > count)
        return out_of_range("version " + std::to_string(t.count) + " requested, " + versions_text(count));
      return ok(t.count);
    case ucxl::TemporalType::kRelative:
      break;
  }
  if (from > count)
    return out_of_range("navigation starts at version " + std::to_string(from) + ", " + versions_text(count));
  const uint64_t start = from == 0 ? count : from;
  if (t.count == 0) return out_of_range("a relative step of 0");
  if (t.direction == ucxl::Direction::kBackward) {
    if (t.count >= start)
      return out_of_range(std::to_string(t.count) + " back from version " + std::to_string(start) +
                          " is before version 1");
    return ok(start - t.count);
  }
  if (t.direction == ucxl::Direction::kForward) {
    if (t.count > count - start)
      return out_of_range(std::to_string(t.count) + " forward from version " + std::to_string(start) + " is past version " +
                          std::to_string(count) + " (the latest)");
    return ok(start + t.count);
  }
  return out_of_range("a relative segment without a direction");
}

}  // namespace chorus::ucxi
