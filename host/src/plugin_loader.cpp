#include "plugin_loader.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <boost/dll/shared_library.hpp>

#include "json_schema.hpp"
#include "semver.hpp"

namespace fs = std::filesystem;

namespace chorus::host {
namespace {

constexpr size_t kMaxString = 4096;  // descriptor strings longer than this are malformed
constexpr uint32_t kMaxServices = 256;
constexpr int kMaxProbedMajor = 9;

// Reads a descriptor string without trusting it to be terminated.
std::optional<std::string> bounded_string(const char *s) {
  if (s == nullptr) return std::string();
  size_t n = strnlen(s, kMaxString + 1);
  if (n > kMaxString) return std::nullopt;
  return std::string(s, n);
}

// The end offset of the last descriptor field the host reads (vtable): shorter descriptors are
// malformed whatever minor they claim.
constexpr size_t kMinDescriptorSize =
    offsetof(chorus_plugin_descriptor, vtable) + sizeof(((chorus_plugin_descriptor *)nullptr)->vtable);
constexpr size_t kMinVtableSize =
    offsetof(chorus_plugin_vtable, destroy) + sizeof(((chorus_plugin_vtable *)nullptr)->destroy);

std::string dlopen_reason(const std::string &path) {
  // Boost.DLL clears dlerror() on failure; repeat the (failing) dlopen just to read the reason.
  void *h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h != nullptr) {
    ::dlclose(h);
    return "unknown dlopen failure";
  }
  const char *e = ::dlerror();
  return e ? e : "unknown dlopen failure";
}

bool copy_file_private(const std::string &from, const std::string &dir, std::string *to,
                       std::string *error) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    *error = "cannot create '" + dir + "': " + ec.message();
    return false;
  }
  // A unique name per copy: dlopen() of a path it has seen before returns the old image (design F4).
  std::string tmpl = dir + "/" + fs::path(from).stem().string() + "-XXXXXX.so";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  int fd = ::mkstemps(buf.data(), 3);
  if (fd < 0) {
    *error = "cannot create a private copy in '" + dir + "': " + std::strerror(errno);
    return false;
  }
  ::close(fd);
  *to = buf.data();
  fs::copy_file(from, *to, fs::copy_options::overwrite_existing, ec);
  if (!ec) fs::permissions(*to, fs::perms::owner_read | fs::perms::owner_exec, ec);
  if (ec) {
    *error = "cannot copy '" + from + "' to '" + *to + "': " + ec.message();
    fs::remove(*to, ec);
    return false;
  }
  return true;
}

}  // namespace

namespace {
bool valid_name(std::string_view name, size_t max_len) {
  auto lower_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (name.empty() || name.size() > max_len || !lower_digit(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return lower_digit(c) || c == '.' || c == '_' || c == '-'; });
}
}  // namespace

bool valid_plugin_id(std::string_view id) { return valid_name(id, 64); }
bool valid_service_name(std::string_view name) { return valid_name(name, 128); }

std::optional<FileFingerprint> fingerprint(const std::string &path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileFingerprint{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
                         static_cast<uint64_t>(st.st_size),
                         static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

std::string sha256_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  char buf[1 << 16];
  while (in) {
    in.read(buf, sizeof buf);
    crypto_hash_sha256_update(&st, reinterpret_cast<unsigned char *>(buf), static_cast<size_t>(in.gcount()));
  }
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&st, digest);
  char hex[2 * crypto_hash_sha256_BYTES + 1];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
  return hex;
}

std::optional<std::string> validate_descriptor(const chorus_plugin_descriptor *d, const std::string &origin,
                                               PluginInfo *out) {
  auto bad = [&](const std::string &why) { return origin + ": malformed descriptor: " + why; };
  if (d->struct_size < kMinDescriptorSize)
    return bad("struct_size " + std::to_string(d->struct_size) + " is smaller than the minimum " +
               std::to_string(kMinDescriptorSize));
  if (d->abi_major != CHORUS_ABI_MAJOR)
    return origin + ": built for plugin ABI major " + std::to_string(d->abi_major) +
           ", this host speaks " + std::to_string(CHORUS_ABI_MAJOR);
  if (d->min_host_minor > d->abi_minor)
    return bad("min_host_minor " + std::to_string(d->min_host_minor) + " is newer than the ABI it was built against (1." +
               std::to_string(d->abi_minor) + ")");
  if (d->min_host_minor > CHORUS_ABI_MINOR)
    return origin + ": needs host ABI 1." + std::to_string(d->min_host_minor) + " or newer, this host has 1." +
           std::to_string(CHORUS_ABI_MINOR);

  PluginInfo info;
  info.abi_major = d->abi_major;
  info.abi_minor = d->abi_minor;
  info.min_host_minor = d->min_host_minor;
  auto id = bounded_string(d->id);
  if (!id || !valid_plugin_id(*id)) return bad("id is missing or not [a-z0-9][a-z0-9._-]{0,63}");
  info.id = *id;
  auto version = bounded_string(d->version);
  if (!version || !parse_version(*version)) return bad("version '" + version.value_or("") + "' is not a semantic version");
  info.version = *version;
  for (auto [field, dest] : {std::pair{d->description, &info.description}, {d->vendor, &info.vendor},
                             {d->license, &info.license}}) {
    auto s = bounded_string(field);
    if (!s) return bad("a text field is longer than " + std::to_string(kMaxString) + " bytes");
    *dest = *s;
  }
  if (CHORUS_HAS_FIELD(chorus_plugin_descriptor, d, build_info)) info.build_info = bounded_string(d->build_info).value_or("");

  if (d->provides_count > kMaxServices || d->requirements_count > kMaxServices)
    return bad("more than " + std::to_string(kMaxServices) + " provides or requirements");
  if (d->provides_count > 0 && d->provides == nullptr) return bad("provides_count > 0 but provides is NULL");
  if (d->requirements_count > 0 && d->requirements == nullptr)
    return bad("requirements_count > 0 but requirements is NULL");
  for (uint32_t i = 0; i < d->provides_count; ++i) {
    const chorus_provide &p = d->provides[i];
    if (p.struct_size < offsetof(chorus_provide, minor) + sizeof p.minor)
      return bad("provides[" + std::to_string(i) + "].struct_size is too small");
    auto name = bounded_string(p.service);
    if (!name || !valid_service_name(*name)) return bad("provides[" + std::to_string(i) + "] has an invalid service name");
    for (const auto &prev : info.provides)
      if (prev.service == *name && prev.major == p.major) return bad("provides '" + *name + "' twice");
    info.provides.push_back({*name, p.major, p.minor, (p.flags & CHORUS_PROVIDE_SWAPPABLE) != 0});
  }
  for (uint32_t i = 0; i < d->requirements_count; ++i) {
    const chorus_require &r = d->requirements[i];
    if (r.struct_size < offsetof(chorus_require, range) + sizeof r.range)
      return bad("requirements[" + std::to_string(i) + "].struct_size is too small");
    auto name = bounded_string(r.service);
    if (!name || !valid_service_name(*name))
      return bad("requirements[" + std::to_string(i) + "] has an invalid service name");
    auto range = bounded_string(r.range);
    std::string range_text = (range && !range->empty()) ? *range : "*";
    std::string why;
    if (!range || !VersionRange::parse(range_text, &why))
      return bad("requirement '" + *name + "' has a bad version range: " + why);
    info.requires_.push_back({*name, range_text, (r.flags & CHORUS_REQUIRE_OPTIONAL) != 0,
                              (r.flags & CHORUS_REQUIRE_LATE) != 0});
  }

  const chorus_plugin_vtable *vt = d->vtable;
  if (vt == nullptr) return bad("vtable is NULL");
  if (vt->struct_size < kMinVtableSize) return bad("vtable struct_size is too small");
  if (!vt->create || !vt->start || !vt->stop || !vt->destroy) return bad("vtable lacks create, start, stop or destroy");
  if (!info.provides.empty() && !vt->get_service) return bad("provides services but has no get_service");

  if (d->config_schema_json != nullptr) {
    size_t n = strnlen(d->config_schema_json, 1 << 20);
    auto schema = nlohmann::json::parse(d->config_schema_json, d->config_schema_json + n, nullptr, false);
    if (schema.is_discarded()) return bad("config_schema_json is not valid JSON");
    if (auto why = check_schema(schema)) return bad("config_schema_json: " + *why);
    info.config_schema = std::move(schema);
  }
  *out = std::move(info);
  return std::nullopt;
}

namespace {
// Descriptor text is plugin-controlled: keep control characters out of one-line messages and logs.
std::string printable(std::string text) {
  for (char &c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return text;
}
std::shared_ptr<PluginImage> load_plugin_unchecked(const LoadRequest &req, std::string *error);
}  // namespace

std::shared_ptr<PluginImage> load_plugin(const LoadRequest &req, std::string *error) {
  auto image = load_plugin_unchecked(req, error);
  if (!image) *error = printable(*error);
  return image;
}

namespace {
std::shared_ptr<PluginImage> load_plugin_unchecked(const LoadRequest &req, std::string *error) {
  auto image = std::make_shared<PluginImage>();
  image->origin_path = req.path;
  auto fp = fingerprint(req.path);
  if (!fp) {
    *error = req.path + ": cannot read: " + std::strerror(errno);
    return nullptr;
  }
  image->origin_fingerprint = *fp;
  image->loaded_path = req.path;
  // With nowhere to copy to (`check`, `plugins`), a pinned file is hashed where it lies.
  if (!req.copy_dir.empty() && (req.private_copy || !req.sha256.empty())) {
    // Hash and load the same bytes: a pinned file is copied first so it cannot change in between.
    if (!copy_file_private(req.path, req.copy_dir, &image->loaded_path, error)) return nullptr;
  }
  if (!req.sha256.empty()) {
    std::string actual = sha256_file(image->loaded_path);
    if (actual != req.sha256) {
      *error = req.path + ": sha256 is " + actual + ", config pins " + req.sha256;
      return nullptr;
    }
  }

  auto lib = std::make_shared<boost::dll::shared_library>();
  boost::dll::fs::error_code ec;
  lib->load(image->loaded_path, ec, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  if (ec) {
    *error = req.path + ": cannot load: " + dlopen_reason(image->loaded_path);
    return nullptr;
  }
  if (!lib->has(CHORUS_PLUGIN_ENTRY_SYMBOL)) {
    for (int major = 2; major <= kMaxProbedMajor; ++major) {
      if (lib->has("chorus_plugin_entry_v" + std::to_string(major))) {
        *error = req.path + ": built for plugin ABI major " + std::to_string(major) + ", this host speaks " +
                 std::to_string(CHORUS_ABI_MAJOR);
        return nullptr;
      }
    }
    *error = req.path + ": not a chorus plugin (no " CHORUS_PLUGIN_ENTRY_SYMBOL " symbol)";
    return nullptr;
  }
  auto entry = lib->get<const chorus_plugin_descriptor *(const chorus_abi_info *)>(CHORUS_PLUGIN_ENTRY_SYMBOL);
  chorus_abi_info abi{};
  abi.struct_size = sizeof abi;
  abi.major = CHORUS_ABI_MAJOR;
  abi.minor = CHORUS_ABI_MINOR;
  abi.host_name = "chorus-agent";
  abi.host_version = CHORUS_VERSION;
  const chorus_plugin_descriptor *d = entry(&abi);
  if (d == nullptr) {
    *error = req.path + ": the plugin refused this host (ABI " + std::to_string(CHORUS_ABI_MAJOR) + "." +
             std::to_string(CHORUS_ABI_MINOR) + ")";
    return nullptr;
  }
  if (auto why = validate_descriptor(d, req.path, &image->info)) {
    *error = *why;
    return nullptr;
  }
  if (!req.expected_id.empty() && image->info.id != req.expected_id) {
    *error = req.path + ": declares plugin id '" + image->info.id + "' but was loaded as '" + req.expected_id + "'";
    return nullptr;
  }
  image->vtable = d->vtable;
  // Never unmapped, not even when the last reference goes at exit: a library a plugin uses may run
  // threads of its own that are still inside the plugin's callbacks after its stop() returned (libnats
  // delivers on library-wide threads), and the end of main() must not pull that code from under them.
  // Images are never unloaded while the process runs either (PluginImage); a replaced file is loaded
  // from a private copy, so keeping this path mapped never serves stale code.
  if (void *pin = ::dlopen(image->loaded_path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD | RTLD_NODELETE))
    ::dlclose(pin);
  image->library = std::move(lib);
  return image;
}

}  // namespace

std::string find_plugin_file(const std::string &id, const std::vector<std::string> &dirs) {
  for (const auto &dir : dirs) {
    std::string candidate = dir + "/chorus-" + id + ".so";
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec)) return candidate;
  }
  return {};
}

std::vector<std::string> list_plugin_files(const std::vector<std::string> &dirs) {
  std::vector<std::string> out;
  std::vector<std::string> seen_names;
  for (const auto &dir : dirs) {
    std::error_code ec;
    std::vector<std::string> here;
    for (const auto &entry : fs::directory_iterator(dir, ec)) {
      std::string name = entry.path().filename().string();
      if (name.size() > 10 && name.rfind("chorus-", 0) == 0 && name.ends_with(".so") && entry.is_regular_file(ec))
        here.push_back(name);
    }
    std::sort(here.begin(), here.end());
    for (const auto &name : here) {
      if (std::find(seen_names.begin(), seen_names.end(), name) != seen_names.end()) continue;
      seen_names.push_back(name);
      out.push_back(dir + "/" + name);
    }
  }
  return out;
}

}  // namespace chorus::host
