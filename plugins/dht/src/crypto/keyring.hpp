// Role keys for role-encrypted content. Each role has an age X25519 keypair and an authority level.
// This node's own role identities live in key files under <dir>/roles/<role>.key; the recipients of
// roles held elsewhere come from configuration. Content for a role is always encrypted to that role's
// recipient and to every master (admin) recipient, so a master identity decrypts everything.
//
// A key file is the format age-keygen writes, plus an authority comment:
//   # authority: coordination
//   # recipient: age1...            (age-keygen writes "# public key: age1..."; both are accepted)
//   AGE-SECRET-KEY-1...
// Key files and the roles directory must not be accessible to group or others (mode 0600 / 0700)
// and must belong to the running user; anything else is refused with an error naming the path.
//
// A loaded Keyring is not changed by its const members, so threads may share it once loaded.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "age/age.hpp"
#include "kad/key.hpp"

namespace chorus::dht {

// From the most to the least powerful. master is the admin authority: it decrypts every role's content.
enum class Authority { kMaster, kDecision, kCoordination, kSuggestion, kReadOnly };

const char *authority_name(Authority authority);  // "master", "decision", ..., "read_only"
std::optional<Authority> parse_authority(std::string_view name);

class KeyringError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// No identity here may decrypt the role's content: "not authorised: no key for role '<role>'".
// The node reports it as CHORUS_E_DHT_NOT_AUTHORISED.
class NotAuthorisedError : public KeyringError {
 public:
  explicit NotAuthorisedError(const std::string &role);
  const std::string &role() const { return role_; }

 private:
  std::string role_;
};

// A role held elsewhere, from configuration (roles: {name: {recipient, authority}}).
struct RoleRecipient {
  age::X25519Recipient recipient;
  Authority authority = Authority::kReadOnly;
};

// A role whose identity this node holds.
struct RoleKey {
  std::string role;
  Authority authority = Authority::kReadOnly;
  age::X25519Identity identity;
};

// Role names are file names: 1..64 characters of [A-Za-z0-9_.-], not starting with '.'.
bool valid_role_name(std::string_view role);

class Keyring {
 public:
  // Reads every <dir>/roles/*.key (none when the directory is absent). A key file without an
  // authority line takes the configured authority of its role, or read_only. Throws KeyringError
  // naming the file for: unsafe permissions or owner, not a regular file, an unparsable or
  // inconsistent key file, a configured recipient that differs from the key held for that role.
  static Keyring load(const std::filesystem::path &dir, std::map<std::string, RoleRecipient> configured = {});

  // Writes a new keypair for role as <dir>/roles/<role>.key, mode 0600, atomically (a temporary file
  // linked into place), creating dir if needed and roles/ with mode 0700. Refuses to replace an
  // existing key file.
  static RoleKey generate_role(const std::filesystem::path &dir, std::string_view role, Authority authority);

  // Reads one key file (the permission checks included); role comes from the file name.
  static RoleKey read_key_file(const std::filesystem::path &file, std::optional<Authority> fallback_authority = {});

  // Adds a role generated or loaded elsewhere (e.g. by generate_role after load).
  void add_own(RoleKey key);

  bool holds(std::string_view role) const;        // this node has the role's identity
  bool holds_master() const;                      // this node has a master identity
  bool can_decrypt(std::string_view role) const;  // holds(role) || holds_master()
  bool knows(std::string_view role) const;        // the role has a recipient (own or configured)
  std::optional<Authority> authority_of(std::string_view role) const;

  // The role's recipient and every master recipient (own and configured), without duplicates.
  // Throws KeyringError when the role has no recipient here.
  std::vector<age::X25519Recipient> recipients_for(std::string_view role) const;
  // Every identity this node holds (for decryption), masters first.
  std::vector<age::X25519Identity> identities() const;

  // Encrypts to recipients_for(role).
  Bytes encrypt_for(std::string_view role, BytesView plaintext) const;
  // Decrypts content stored for role with the role's identity and the master identities. Throws
  // NotAuthorisedError when none of them opens it (never returns garbage); other refusals of the
  // file (tampering, truncation) come as age::AgeError.
  Bytes decrypt_for(std::string_view role, BytesView file) const;

  const std::map<std::string, RoleKey, std::less<>> &own_roles() const { return own_; }

 private:
  std::map<std::string, RoleKey, std::less<>> own_;
  std::map<std::string, RoleRecipient, std::less<>> configured_;
};

}  // namespace chorus::dht
