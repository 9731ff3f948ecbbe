#include "wire/identity.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "wire/protobuf.hpp"

namespace chorus::p2p {
namespace {

constexpr size_t kKeyFileSize = 68;         // 08 01 12 40 || seed || pk
constexpr size_t kLegacyKeyFileSize = 100;  // 08 01 12 60 || seed || pk || pk (old go-libp2p)

bool fail(std::string *err, std::string msg) {
  if (err != nullptr) *err = std::move(msg);
  return false;
}

std::string errno_text(int e) { return std::strerror(e); }

void ensure_sodium() {
  // sodium_init is idempotent and thread-safe; it only fails if no entropy source exists at all.
  if (sodium_init() < 0) std::abort();
}

// Reads the whole (small) file from fd into out; refuses anything larger than max.
bool read_small_file(int fd, size_t max, Bytes &out, std::string &error) {
  out.clear();
  uint8_t buf[256];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = errno_text(errno);
      return false;
    }
    if (n == 0) return true;
    out.insert(out.end(), buf, buf + n);
    if (out.size() > max) return true;  // the caller reports the size
  }
}

bool write_all(int fd, BytesView data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data = data.subspan(static_cast<size_t>(n));
  }
  return true;
}

std::string parent_dir(const std::string &path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

Identity::~Identity() { sodium_memzero(secret_key_.data(), secret_key_.size()); }

Identity Identity::from_seed(const uint8_t seed[32]) {
  ensure_sodium();
  Identity id;
  crypto_sign_seed_keypair(id.public_key_.data(), id.secret_key_.data(), seed);
  id.peer_id_ = PeerId::from_ed25519(id.public_key_.data());
  return id;
}

Identity Identity::generate() {
  ensure_sodium();
  uint8_t seed[32];
  randombytes_buf(seed, sizeof seed);
  Identity id = from_seed(seed);
  sodium_memzero(seed, sizeof seed);
  return id;
}

Bytes Identity::public_key_protobuf() const { return encode_ed25519_public_key(public_key_.data()); }

Bytes Identity::private_key_protobuf() const {
  Bytes out;
  out.reserve(kKeyFileSize);
  ProtoWriter w(out);
  w.varint(1, kKeyEd25519);
  w.bytes(2, secret_key_);
  return out;
}

std::array<uint8_t, 64> Identity::sign(BytesView msg) const {
  std::array<uint8_t, 64> sig;
  crypto_sign_detached(sig.data(), nullptr, msg.data(), msg.size(), secret_key_.data());
  return sig;
}

bool Identity::verify(const uint8_t pk[32], BytesView msg, const uint8_t sig[64]) {
  ensure_sodium();
  return crypto_sign_verify_detached(sig, msg.data(), msg.size(), pk) == 0;
}

std::optional<Identity> Identity::load_or_create(const std::string &path, std::string *err) {
  ensure_sodium();
  // Two attempts: if another process creates the file between our open and our O_EXCL create, load it.
  for (int attempt = 0; attempt < 2; ++attempt) {
    // Symlinks are followed when reading (secret stores often mount keys that way); the mode check
    // below applies to the target.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
      Identity id = generate();
      Bytes content = id.private_key_protobuf();
      int wfd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
      if (wfd < 0) {
        int e = errno;
        sodium_memzero(content.data(), content.size());
        if (e == EEXIST && attempt == 0) continue;  // created concurrently: load it
        if (e == EEXIST) {
          fail(err, "cannot create key file " + path + ": a dangling symlink or vanishing file is in the way");
        } else if (e == ENOENT) {
          fail(err, "cannot create key file " + path + ": directory " + parent_dir(path) + " does not exist");
        } else {
          fail(err, "cannot create key file " + path + ": " + errno_text(e));
        }
        return std::nullopt;
      }
      // The umask may have cleared bits but never adds any; fchmod anyway in case the file system
      // ignored the creation mode.
      bool ok = ::fchmod(wfd, 0600) == 0 && write_all(wfd, content) && ::fsync(wfd) == 0;
      int e = errno;
      ::close(wfd);
      sodium_memzero(content.data(), content.size());
      if (!ok) {
        ::unlink(path.c_str());  // never leave a truncated key behind
        fail(err, "cannot write key file " + path + ": " + errno_text(e));
        return std::nullopt;
      }
      // Make the new directory entry durable too (best effort).
      int dfd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
      }
      return id;
    }
    if (fd < 0) {
      fail(err, "cannot open key file " + path + ": " + errno_text(errno));
      return std::nullopt;
    }

    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int e = errno;
      ::close(fd);
      fail(err, "cannot stat key file " + path + ": " + errno_text(e));
      return std::nullopt;
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      fail(err, "key file " + path + " is not a regular file");
      return std::nullopt;
    }
    if ((st.st_mode & 077) != 0) {
      ::close(fd);
      char mode[16];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      fail(err, "key file " + path + " has mode " + mode + "; it must be 0600 (chmod 600 " + path + ")");
      return std::nullopt;
    }
    Bytes content;
    std::string read_error;
    bool read_ok = read_small_file(fd, kLegacyKeyFileSize, content, read_error);
    ::close(fd);
    if (!read_ok) {
      fail(err, "cannot read key file " + path + ": " + read_error);
      return std::nullopt;
    }

    auto reject = [&](std::string why) {
      sodium_memzero(content.data(), content.size());
      fail(err, "key file " + path + ": " + why);
      return std::nullopt;
    };
    if (content.size() != kKeyFileSize && content.size() != kLegacyKeyFileSize) {
      return reject(std::string("is ") + (content.size() > kLegacyKeyFileSize ? "more than 100" : std::to_string(content.size())) +
                    " bytes; expected 68 (a libp2p Ed25519 PrivateKey protobuf)");
    }
    uint32_t type = 0;
    Bytes data;
    std::string why;
    if (!decode_public_key(content, type, data, &why)) return reject("not a libp2p PrivateKey protobuf (" + why + ")");
    if (type != kKeyEd25519) return reject("key type " + std::to_string(type) + " is not Ed25519 (1)");
    if (data.size() != 64 && !(data.size() == 96 && std::memcmp(data.data() + 32, data.data() + 64, 32) == 0)) {
      sodium_memzero(data.data(), data.size());
      return reject("Ed25519 key data must be seed||pk (64 bytes)");
    }
    Identity id = from_seed(data.data());
    bool match = std::memcmp(id.public_key_.data(), data.data() + 32, 32) == 0;
    sodium_memzero(data.data(), data.size());
    if (!match) return reject("public key does not match the seed (corrupt file?)");
    sodium_memzero(content.data(), content.size());
    return id;
  }
  fail(err, "cannot load key file " + path + ": it keeps appearing and disappearing");
  return std::nullopt;
}

}  // namespace chorus::p2p
