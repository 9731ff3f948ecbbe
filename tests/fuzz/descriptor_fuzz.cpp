// libFuzzer target: validate_descriptor (plugin_loader.hpp), the host's first look at what a plugin's
// entry point returned. The descriptor is built from the input with every pointer valid; the host must
// then never crash, whatever the fields say. Memory is laid out so that AddressSanitizer catches a read
// the ABI does not allow: the descriptor and the vtable are heap blocks of exactly `struct_size` bytes
// (a plugin built against an older, shorter header), and every string is its own exact-size block.
//
// Input: text lines "key=value" (a line without '=' sets the key to NULL; unknown keys are ignored).
//   size=N                  descriptor struct_size (default sizeof(chorus_plugin_descriptor))
//   abi=MAJOR.MINOR.MINHOST abi_major, abi_minor, min_host_minor (default 1.0.0)
//   flags=N  reserved0=N  reserved1=N
//   id= version= description= vendor= license= build_info= schema=   the strings (schema is
//                           config_schema_json); absent = NULL; "key*N=text" makes the string exactly
//                           N bytes (N <= 8192) by repeating text, to reach the 4096-byte limit
//   provide=SIZE,FLAGS,MAJOR,MINOR,SERVICE                  one chorus_provide (up to 16 lines)
//   require=SIZE,FLAGS,SERVICE[,RANGE]                      one chorus_require (no RANGE = NULL)
//   provides_count=N  requirements_count=N   (N <= 300; default: the number of lines). The array has
//                           exactly that many entries, the lines repeated; N > 0 with no lines gives
//                           zero-filled entries. "provides" / "requirements" without '=' = NULL array.
//   vtable=SIZE,MASK        the vtable: struct_size and which slots are set (bit 0 create, 1 start,
//                           2 get_service, 3 stop, 4 destroy, 5 reconfigure, 6 drain); absent = NULL
// Numbers are decimal, wrapped to the field's width, so out-of-range values are reachable.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chorus/plugin.h"
#include "json_schema.hpp"
#include "plugin_loader.hpp"
#include "semver.hpp"

namespace {

using chorus::host::PluginInfo;

constexpr size_t kMaxLines = 16;
constexpr uint32_t kMaxCount = 300;     // above the host's limit of 256, to reach that check
constexpr size_t kMaxStruct = 4096;     // largest block allocated for a descriptor or vtable
constexpr size_t kMaxRepeated = 8192;   // "key*N=" strings

volatile size_t g_sink;  // keeps the final reads of the copied strings

[[noreturn]] void invariant_failed(const char *what) {
  fprintf(stderr, "descriptor_fuzz: invariant violated: %s\n", what);
  abort();
}

// Leading decimal digits, wrapping (so "99999999999" is a valid, wrapped number).
uint64_t number(std::string_view s) {
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') break;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

std::vector<std::string_view> split(std::string_view s, char sep, size_t max_parts) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    const size_t pos = s.find(sep);
    if (pos == std::string_view::npos) break;
    parts.push_back(s.substr(0, pos));
    s.remove_prefix(pos + 1);
  }
  parts.push_back(s);
  return parts;
}

// Owns every block the descriptor points to, each allocated at its exact size.
struct Arena {
  std::vector<std::unique_ptr<char[]>> blocks;
  char *alloc(size_t n) {
    blocks.emplace_back(new char[n == 0 ? 1 : n]());
    return blocks.back().get();
  }
  const char *str(std::string_view s) {
    char *p = alloc(s.size() + 1);
    std::memcpy(p, s.data(), s.size());
    return p;  // NUL-terminated (zero-filled); may also hold NULs from the input
  }
};

struct Fields {
  // nullopt = NULL pointer.
  std::map<std::string, std::optional<std::string>, std::less<>> strings;
  std::map<std::string, uint64_t, std::less<>> numbers;
  std::map<std::string, bool, std::less<>> nulls;  // "provides" / "requirements" without '='
  std::vector<std::vector<std::string_view>> provides, requires_;
  std::optional<std::pair<uint64_t, uint64_t>> vtable;
  std::optional<std::string_view> abi;
};

Fields parse_input(std::string_view input) {
  static constexpr std::string_view kStrings[] = {"id",      "version",    "description", "vendor",
                                                  "license", "build_info", "schema"};
  static constexpr std::string_view kNumbers[] = {"size",           "flags",
                                                  "reserved0",      "reserved1",
                                                  "provides_count", "requirements_count"};
  Fields f;
  for (std::string_view line : split(input, '\n', SIZE_MAX)) {
    const size_t eq = line.find('=');
    std::string_view key = line.substr(0, eq);
    std::optional<std::string_view> value;
    if (eq != std::string_view::npos) value = line.substr(eq + 1);

    std::optional<size_t> repeat;  // "key*N"
    if (size_t star = key.find('*'); star != std::string_view::npos) {
      repeat = std::min<uint64_t>(number(key.substr(star + 1)), kMaxRepeated);
      key = key.substr(0, star);
    }
    if (std::find(std::begin(kStrings), std::end(kStrings), key) != std::end(kStrings)) {
      if (!value) {
        f.strings[std::string(key)] = std::nullopt;
      } else if (repeat) {
        std::string s;
        if (!value->empty()) {
          while (s.size() < *repeat) s.append(*value);
        } else {
          s.assign(*repeat, 'a');
        }
        s.resize(*repeat);
        f.strings[std::string(key)] = std::move(s);
      } else {
        f.strings[std::string(key)] = std::string(*value);
      }
    } else if (std::find(std::begin(kNumbers), std::end(kNumbers), key) != std::end(kNumbers)) {
      if (value) f.numbers[std::string(key)] = number(*value);
    } else if (key == "abi" && value) {
      f.abi = *value;
    } else if ((key == "provides" || key == "requirements") && !value) {
      f.nulls[std::string(key)] = true;
    } else if (key == "provide" && value && f.provides.size() < kMaxLines) {
      f.provides.push_back(split(*value, ',', 5));
    } else if (key == "require" && value && f.requires_.size() < kMaxLines) {
      f.requires_.push_back(split(*value, ',', 4));
    } else if (key == "vtable" && value) {
      auto parts = split(*value, ',', 2);
      f.vtable = {number(parts[0]), parts.size() > 1 ? number(parts[1]) : 0x7f};
    }
  }
  return f;
}

// Dummy slots: never called by validate_descriptor.
chorus_status v_create(const chorus_host_api *, chorus_host_ctx *, const char *, size_t, void **, chorus_error *) {
  return CHORUS_OK;
}
chorus_status v_start(void *, chorus_error *) { return CHORUS_OK; }
chorus_status v_get_service(void *, const char *, uint16_t, const void **, void **, chorus_error *) {
  return CHORUS_OK;
}
chorus_status v_stop(void *, uint64_t, chorus_error *) { return CHORUS_OK; }
void v_destroy(void *) {}
chorus_status v_reconfigure(void *, const char *, size_t, chorus_error *) { return CHORUS_OK; }
void v_drain(void *) {}

// Copies the first `size` bytes of `full` into an exact-size block (at least the struct_size field).
template <class T>
T *truncated_copy(Arena &arena, const T &full, uint64_t size) {
  const size_t n = static_cast<size_t>(std::clamp<uint64_t>(size, sizeof(uint32_t), kMaxStruct));
  char *p = arena.alloc(n);
  std::memcpy(p, &full, std::min(n, sizeof(T)));
  return reinterpret_cast<T *>(p);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const Fields f = parse_input(std::string_view(reinterpret_cast<const char *>(data), size));
  Arena arena;

  auto get_string = [&](std::string_view key) -> const char * {
    auto it = f.strings.find(key);
    if (it == f.strings.end() || !it->second) return nullptr;
    return arena.str(*it->second);
  };
  auto get_number = [&](std::string_view key, uint64_t dflt) {
    auto it = f.numbers.find(key);
    return it == f.numbers.end() ? dflt : it->second;
  };

  chorus_plugin_descriptor d{};
  const uint64_t struct_size = get_number("size", sizeof d);
  d.struct_size = static_cast<uint32_t>(struct_size);
  d.abi_major = CHORUS_ABI_MAJOR;
  d.abi_minor = CHORUS_ABI_MINOR;
  if (f.abi) {
    auto parts = split(*f.abi, '.', 3);
    d.abi_major = static_cast<uint16_t>(number(parts[0]));
    d.abi_minor = parts.size() > 1 ? static_cast<uint16_t>(number(parts[1])) : 0;
    d.min_host_minor = parts.size() > 2 ? static_cast<uint16_t>(number(parts[2])) : 0;
  }
  d.reserved0 = static_cast<uint16_t>(get_number("reserved0", 0));
  d.reserved1 = static_cast<uint32_t>(get_number("reserved1", 0));
  d.flags = get_number("flags", 0);
  d.id = get_string("id");
  d.version = get_string("version");
  d.description = get_string("description");
  d.vendor = get_string("vendor");
  d.license = get_string("license");
  d.build_info = get_string("build_info");
  d.config_schema_json = get_string("schema");

  // provides: exactly `count` entries, the given lines repeated.
  const uint32_t provides_count =
      static_cast<uint32_t>(std::min<uint64_t>(get_number("provides_count", f.provides.size()), kMaxCount));
  std::vector<chorus_provide> provides(provides_count);
  for (uint32_t i = 0; i < provides_count && !f.provides.empty(); ++i) {
    const auto &p = f.provides[i % f.provides.size()];
    chorus_provide &out = provides[i];
    out.struct_size = static_cast<uint32_t>(number(p[0]));
    out.flags = p.size() > 1 ? static_cast<uint32_t>(number(p[1])) : 0;
    out.major = p.size() > 2 ? static_cast<uint16_t>(number(p[2])) : 0;
    out.minor = p.size() > 3 ? static_cast<uint16_t>(number(p[3])) : 0;
    out.service = p.size() > 4 ? arena.str(p[4]) : nullptr;
  }
  // The array lives in its own exact-size block too.
  if (provides_count > 0 && !f.nulls.count("provides")) {
    char *block = arena.alloc(provides_count * sizeof(chorus_provide));
    std::memcpy(block, provides.data(), provides_count * sizeof(chorus_provide));
    d.provides = reinterpret_cast<const chorus_provide *>(block);
  }
  d.provides_count = provides_count;

  const uint32_t requirements_count =
      static_cast<uint32_t>(std::min<uint64_t>(get_number("requirements_count", f.requires_.size()), kMaxCount));
  std::vector<chorus_require> requirements(requirements_count);
  for (uint32_t i = 0; i < requirements_count && !f.requires_.empty(); ++i) {
    const auto &r = f.requires_[i % f.requires_.size()];
    chorus_require &out = requirements[i];
    out.struct_size = static_cast<uint32_t>(number(r[0]));
    out.flags = r.size() > 1 ? static_cast<uint32_t>(number(r[1])) : 0;
    out.service = r.size() > 2 ? arena.str(r[2]) : nullptr;
    out.range = r.size() > 3 ? arena.str(r[3]) : nullptr;
  }
  if (requirements_count > 0 && !f.nulls.count("requirements")) {
    char *block = arena.alloc(requirements_count * sizeof(chorus_require));
    std::memcpy(block, requirements.data(), requirements_count * sizeof(chorus_require));
    d.requirements = reinterpret_cast<const chorus_require *>(block);
  }
  d.requirements_count = requirements_count;

  if (f.vtable) {
    chorus_plugin_vtable vt{};
    vt.struct_size = static_cast<uint32_t>(f.vtable->first);
    const uint64_t mask = f.vtable->second;
    if (mask & 0x01) vt.create = v_create;
    if (mask & 0x02) vt.start = v_start;
    if (mask & 0x04) vt.get_service = v_get_service;
    if (mask & 0x08) vt.stop = v_stop;
    if (mask & 0x10) vt.destroy = v_destroy;
    if (mask & 0x20) vt.reconfigure = v_reconfigure;
    if (mask & 0x40) vt.drain = v_drain;
    d.vtable = truncated_copy(arena, vt, f.vtable->first);
  }

  const chorus_plugin_descriptor *desc = truncated_copy(arena, d, struct_size);

  PluginInfo info;
  info.id = "sentinel";
  const auto error = chorus::host::validate_descriptor(desc, "fuzz.so", &info);
  if (error) {
    if (error->rfind("fuzz.so: ", 0) != 0) invariant_failed("error does not start with the origin");
    if (info.id != "sentinel" || !info.provides.empty()) invariant_failed("*out was written although validation failed");
    return 0;
  }

  // Accepted: the host's copy must be self-consistent and independent of the plugin's memory.
  if (!chorus::host::valid_plugin_id(info.id) || info.id != d.id) invariant_failed("accepted an invalid or different id");
  if (!chorus::host::parse_version(info.version)) invariant_failed("accepted an invalid version");
  if (info.abi_major != CHORUS_ABI_MAJOR || info.min_host_minor > CHORUS_ABI_MINOR || info.min_host_minor > info.abi_minor)
    invariant_failed("accepted an incompatible ABI");
  if (info.provides.size() != provides_count || info.requires_.size() != requirements_count)
    invariant_failed("provides/requires lost or invented entries");
  for (const auto &p : info.provides) {
    if (!chorus::host::valid_service_name(p.service)) invariant_failed("accepted an invalid provided service name");
  }
  for (const auto &r : info.requires_) {
    if (!chorus::host::valid_service_name(r.service)) invariant_failed("accepted an invalid required service name");
    if (!chorus::host::VersionRange::parse(r.range, nullptr)) invariant_failed("accepted a requirement with a bad range");
  }
  if (!d.vtable || !desc->vtable->create || !desc->vtable->start || !desc->vtable->stop || !desc->vtable->destroy)
    invariant_failed("accepted a vtable without create/start/stop/destroy");
  if (!info.provides.empty() && !desc->vtable->get_service) invariant_failed("accepted provides without get_service");
  if ((d.config_schema_json == nullptr) != info.config_schema.is_null())
    invariant_failed("config_schema present/absent mismatch");
  if (!info.config_schema.is_null() && chorus::host::check_schema(info.config_schema))
    invariant_failed("accepted a schema check_schema refuses");
  // Nothing in PluginInfo may point into the plugin's memory: free every block, then read the copy.
  arena.blocks.clear();
  std::string all = info.id + info.version + info.description + info.vendor + info.license + info.build_info;
  for (const auto &p : info.provides) all += p.service;
  for (const auto &r : info.requires_) all += r.service + r.range;
  all += info.config_schema.dump();
  g_sink = all.size();
  return 0;
}
