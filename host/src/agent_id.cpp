#include "agent_id.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace chorus::host {

std::string agent_id_path(const std::string &state_dir) { return state_dir + "/agent-id"; }

bool valid_kept_agent_id(const std::string &id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

namespace {

[[noreturn]] void fail(const std::string &path, const std::string &what) {
  throw std::runtime_error("agent id file '" + path + "': " + what);
}

std::string generate_id() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  unsigned char raw[8];
  randombytes_buf(raw, sizeof raw);
  char hex[2 * sizeof raw + 1];
  sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
  return std::string("agent-") + hex;
}

// Writes the id to a temporary file (0600), syncs it and renames it into place, so a crash never
// leaves a half-written id behind.
void keep(const std::string &path, const std::string &id) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fail(tmp, std::strerror(errno));
  const std::string line = id + "\n";
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    fail(path, std::strerror(ok ? errno : saved));
  }
}

}  // namespace

std::string load_or_create_agent_id(const std::string &state_dir, bool *generated) {
  const std::string path = agent_id_path(state_dir);
  std::ifstream in(path);
  if (in) {
    std::string id;
    std::getline(in, id);
    if (!in && !in.eof()) fail(path, "cannot be read");
    if (!valid_kept_agent_id(id)) fail(path, "does not hold a valid agent id (1-128 characters of [A-Za-z0-9._:-])");
    if (generated) *generated = false;
    return id;
  }
  if (errno != ENOENT) fail(path, std::strerror(errno));
  std::string id = generate_id();
  keep(path, id);
  if (generated) *generated = true;
  return id;
}

}  // namespace chorus::host
