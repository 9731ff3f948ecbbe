#include "crypto/keyring.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace chorus::dht {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kKeySuffix = ".key";
constexpr size_t kMaxKeyFileSize = 64 * 1024;
constexpr mode_t kGroupOtherBits = 0077;

[[noreturn]] void fail(const std::string &what) { throw KeyringError("keyring: " + what); }

std::string errno_text() { return std::strerror(errno); }

fs::path roles_dir(const fs::path &dir) { return dir / "roles"; }

// Closes a descriptor on every path out.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string_view trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// The value of a "# name: value" comment line, if the line is one.
std::optional<std::string_view> comment_value(std::string_view line, std::string_view name) {
  if (line.empty() || line[0] != '#') return std::nullopt;
  std::string_view rest = trim(line.substr(1));
  if (rest.substr(0, name.size()) != name || rest.substr(name.size(), 1) != ":") return std::nullopt;
  return trim(rest.substr(name.size() + 1));
}

void check_private(const struct stat &st, const fs::path &path, const char *what) {
  if ((st.st_mode & kGroupOtherBits) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    fail(std::string(what) + " " + path.string() + " has mode " + mode +
         ": group or others may access it (chmod go-rwx)");
  }
  if (st.st_uid != ::geteuid()) fail(std::string(what) + " " + path.string() + " belongs to another user");
}

void check_roles_dir(const fs::path &dir) {
  struct stat st{};
  if (::lstat(dir.c_str(), &st) != 0) fail("cannot stat " + dir.string() + ": " + errno_text());
  if (!S_ISDIR(st.st_mode)) fail(dir.string() + " is not a directory");
  check_private(st, dir, "key directory");
}

void ensure_private_dir(const fs::path &dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) fail("cannot create " + dir.string() + ": " + errno_text());
}

void fsync_dir(const fs::path &dir) {
  Fd d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (d.fd < 0 || ::fsync(d.fd) != 0) fail("cannot sync " + dir.string() + ": " + errno_text());
}

}  // namespace

const char *authority_name(Authority authority) {
  switch (authority) {
    case Authority::kMaster: return "master";
    case Authority::kDecision: return "decision";
    case Authority::kCoordination: return "coordination";
    case Authority::kSuggestion: return "suggestion";
    case Authority::kReadOnly: return "read_only";
  }
  return "read_only";
}

std::optional<Authority> parse_authority(std::string_view name) {
  for (Authority a : {Authority::kMaster, Authority::kDecision, Authority::kCoordination, Authority::kSuggestion,
                      Authority::kReadOnly}) {
    if (name == authority_name(a)) return a;
  }
  return std::nullopt;
}

NotAuthorisedError::NotAuthorisedError(const std::string &role)
    : KeyringError("not authorised: no key for role '" + role + "'"), role_(role) {}

bool valid_role_name(std::string_view role) {
  if (role.empty() || role.size() > 64 || role[0] == '.') return false;
  return std::all_of(role.begin(), role.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
}

RoleKey Keyring::read_key_file(const fs::path &file, std::optional<Authority> fallback_authority) {
  std::string name = file.filename().string();
  if (name.size() <= kKeySuffix.size() || !name.ends_with(kKeySuffix)) fail(file.string() + ": not a <role>.key file");
  std::string role = name.substr(0, name.size() - kKeySuffix.size());
  if (!valid_role_name(role)) fail(file.string() + ": invalid role name '" + role + "'");

  // Open first and check the descriptor, so the checked file is the one read.
  Fd f{::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)};
  if (f.fd < 0) fail("cannot open " + file.string() + ": " + errno_text());
  struct stat st{};
  if (::fstat(f.fd, &st) != 0) fail("cannot stat " + file.string() + ": " + errno_text());
  if (!S_ISREG(st.st_mode)) fail(file.string() + " is not a regular file");
  check_private(st, file, "key file");
  if (static_cast<size_t>(st.st_size) > kMaxKeyFileSize) fail(file.string() + " is too large for a key file");

  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(f.fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);

  std::optional<Authority> authority;
  std::optional<std::string> stated_recipient;
  std::optional<age::X25519Identity> identity;
  std::string error;
  size_t start = 0;
  while (start <= text.size() && error.empty()) {
    size_t end = text.find('\n', start);
    std::string_view line = trim(std::string_view(text).substr(start, end == std::string::npos ? end : end - start));
    start = end == std::string::npos ? text.size() + 1 : end + 1;
    if (line.empty()) continue;
    if (line[0] == '#') {
      if (auto v = comment_value(line, "authority")) {
        authority = parse_authority(*v);
        if (!authority) error = "unknown authority '" + std::string(*v) + "'";
      } else if (auto r = comment_value(line, "recipient")) {
        stated_recipient = std::string(*r);
      } else if (auto p = comment_value(line, "public key")) {
        stated_recipient = std::string(*p);
      }
      continue;  // other comments (age-keygen's "# created:") are ignored
    }
    if (identity) {
      error = "more than one identity";
      continue;
    }
    try {
      identity = age::X25519Identity::parse(line);
    } catch (const age::AgeError &) {
      error = "a line that is neither a comment nor an AGE-SECRET-KEY-1... identity";
    }
  }
  sodium_memzero(text.data(), text.size());
  if (!error.empty()) fail(file.string() + ": " + error);
  if (!identity) fail(file.string() + ": no AGE-SECRET-KEY-1... identity");
  if (stated_recipient && *stated_recipient != identity->recipient().to_string()) {
    fail(file.string() + ": the recipient comment does not match the identity");
  }
  return RoleKey{role, authority.value_or(fallback_authority.value_or(Authority::kReadOnly)), *identity};
}

Keyring Keyring::load(const fs::path &dir, std::map<std::string, RoleRecipient> configured) {
  Keyring ring;
  for (auto &[role, info] : configured) {
    if (!valid_role_name(role)) fail("configured role '" + role + "' is not a valid role name");
    ring.configured_.emplace(role, info);
  }
  fs::path roles = roles_dir(dir);
  struct stat st{};
  if (::lstat(roles.c_str(), &st) != 0) {
    if (errno == ENOENT) return ring;  // no role keys on this node
    fail("cannot stat " + roles.string() + ": " + errno_text());
  }
  check_roles_dir(roles);

  std::vector<fs::path> files;
  try {
    for (const fs::directory_entry &entry : fs::directory_iterator(roles)) {
      std::string name = entry.path().filename().string();
      if (name.ends_with(kKeySuffix) && name[0] != '.') files.push_back(entry.path());
    }
  } catch (const fs::filesystem_error &e) {
    fail("cannot list " + roles.string() + ": " + e.code().message());
  }
  std::sort(files.begin(), files.end());
  for (const fs::path &file : files) {
    std::string name = file.filename().string();
    std::string role = name.substr(0, name.size() - kKeySuffix.size());
    std::optional<Authority> fallback;
    if (auto it = ring.configured_.find(role); it != ring.configured_.end()) fallback = it->second.authority;
    RoleKey key = read_key_file(file, fallback);
    if (auto it = ring.configured_.find(role);
        it != ring.configured_.end() && !(it->second.recipient == key.identity.recipient())) {
      fail(file.string() + ": role '" + role + "' is configured with another recipient than this key's");
    }
    ring.add_own(std::move(key));
  }
  return ring;
}

RoleKey Keyring::generate_role(const fs::path &dir, std::string_view role, Authority authority) {
  if (!valid_role_name(role)) fail("invalid role name '" + std::string(role) + "'");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create " + dir.string() + ": " + ec.message());
  fs::path roles = roles_dir(dir);
  ensure_private_dir(roles);
  check_roles_dir(roles);

  fs::path final_path = roles / (std::string(role) + std::string(kKeySuffix));
  age::X25519Identity identity = age::X25519Identity::generate();
  std::string text = "# authority: " + std::string(authority_name(authority)) + "\n# recipient: " +
                     identity.recipient().to_string() + "\n" + identity.to_string() + "\n";

  // A temporary file in the same directory, linked to its final name once synced: readers never see
  // a partial key, and link() refuses to replace a key that exists.
  std::string tmp_template = (roles / ("." + std::string(role) + ".XXXXXX")).string();
  Fd f{::mkstemp(tmp_template.data())};
  if (f.fd < 0) {
    sodium_memzero(text.data(), text.size());
    fail("cannot create a file in " + roles.string() + ": " + errno_text());
  }
  fs::path tmp_path = tmp_template;
  bool ok = ::fchmod(f.fd, 0600) == 0;
  size_t put = 0;
  while (ok && put < text.size()) {
    ssize_t n = ::write(f.fd, text.data() + put, text.size() - put);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) put += static_cast<size_t>(n);
  }
  ok = ok && ::fsync(f.fd) == 0;
  sodium_memzero(text.data(), text.size());
  std::string why = ok ? "" : errno_text();
  if (ok && ::link(tmp_path.c_str(), final_path.c_str()) != 0) {
    ok = false;
    why = errno == EEXIST ? "a key for this role exists already" : errno_text();
  }
  ::unlink(tmp_path.c_str());
  if (!ok) fail("cannot write " + final_path.string() + ": " + why);
  fsync_dir(roles);
  return RoleKey{std::string(role), authority, identity};
}

void Keyring::add_own(RoleKey key) {
  std::string role = key.role;
  own_.insert_or_assign(std::move(role), std::move(key));
}

bool Keyring::holds(std::string_view role) const { return own_.find(role) != own_.end(); }

bool Keyring::holds_master() const {
  return std::any_of(own_.begin(), own_.end(), [](const auto &kv) { return kv.second.authority == Authority::kMaster; });
}

bool Keyring::can_decrypt(std::string_view role) const { return holds(role) || holds_master(); }

bool Keyring::knows(std::string_view role) const { return holds(role) || configured_.find(role) != configured_.end(); }

std::optional<Authority> Keyring::authority_of(std::string_view role) const {
  if (auto it = own_.find(role); it != own_.end()) return it->second.authority;
  if (auto it = configured_.find(role); it != configured_.end()) return it->second.authority;
  return std::nullopt;
}

std::vector<age::X25519Recipient> Keyring::recipients_for(std::string_view role) const {
  std::vector<age::X25519Recipient> out;
  auto add = [&out](const age::X25519Recipient &r) {
    if (std::find(out.begin(), out.end(), r) == out.end()) out.push_back(r);
  };
  if (auto it = own_.find(role); it != own_.end()) {
    add(it->second.identity.recipient());
  } else if (auto c = configured_.find(role); c != configured_.end()) {
    add(c->second.recipient);
  } else {
    fail("unknown role '" + std::string(role) + "': no recipient configured");
  }
  for (const auto &[name, key] : own_) {
    if (key.authority == Authority::kMaster) add(key.identity.recipient());
  }
  for (const auto &[name, info] : configured_) {
    if (info.authority == Authority::kMaster) add(info.recipient);
  }
  return out;
}

std::vector<age::X25519Identity> Keyring::identities() const {
  std::vector<age::X25519Identity> out;
  for (const auto &[name, key] : own_) {
    if (key.authority == Authority::kMaster) out.push_back(key.identity);
  }
  for (const auto &[name, key] : own_) {
    if (key.authority != Authority::kMaster) out.push_back(key.identity);
  }
  return out;
}

Bytes Keyring::encrypt_for(std::string_view role, BytesView plaintext) const {
  std::vector<age::X25519Recipient> recipients = recipients_for(role);
  return age::encrypt(plaintext, recipients);
}

Bytes Keyring::decrypt_for(std::string_view role, BytesView file) const {
  if (!can_decrypt(role)) throw NotAuthorisedError(std::string(role));
  std::vector<age::X25519Identity> usable;
  if (auto it = own_.find(role); it != own_.end()) usable.push_back(it->second.identity);
  for (const auto &[name, key] : own_) {
    if (key.authority == Authority::kMaster && name != role) usable.push_back(key.identity);
  }
  try {
    return age::decrypt(file, usable);
  } catch (const age::AgeError &e) {
    if (e.code() == age::Errc::kNoIdentityMatches) throw NotAuthorisedError(std::string(role));
    throw;
  }
}

}  // namespace chorus::dht
