// Role-encrypted content (CHORUS's EncryptedDHTStorage) over the node's records and provider records.
//
// store(key, role, bytes):
//   /chorus/content/<key>       the age file of the bytes, encrypted to the role's recipient and every
//                               master recipient (crypto/keyring);
//   /chorus/content-meta/<key>  {"role","size","sha256","created","author"} (JSON; created in unix ms,
//                               author = the storing node's peer id);
//   a provider record for the content's multihash (sha2-256), announcing this node;
//   then the audit log gets one line (never the content), and the caller the SHA-256 in hex.
// retrieve(key): the meta record, then the age file; decrypted with a key held here (the role's or a
// master's), checked against the meta's size and hash. No usable key: CHORUS_E_DHT_NOT_AUTHORISED; a
// file or plaintext that does not match: CHORUS_E_DHT_INTEGRITY.
#include <sodium.h>

#include <chorus/services/dht_v1.h>
#include <nlohmann/json.hpp>

#include "age/age.hpp"
#include "node.hpp"
#include "node_internal.hpp"

namespace chorus::dht {

using json = nlohmann::json;

namespace {

constexpr std::string_view kContentPrefix = "/chorus/content/";
constexpr std::string_view kMetaPrefix = "/chorus/content-meta/";

Bytes key_bytes(std::string_view prefix, const std::string &key) {
  Bytes b(prefix.begin(), prefix.end());
  b.insert(b.end(), key.begin(), key.end());
  return b;
}

std::string hex(const uint8_t *p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

std::string sha256_hex(BytesView data, Bytes *multihash) {
  uint8_t h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, data.data(), data.size());
  if (multihash != nullptr) {
    *multihash = {0x12, 0x20};
    multihash->insert(multihash->end(), h, h + sizeof h);
  }
  return hex(h, sizeof h);
}

}  // namespace

void Node::audit(AuditOp op, const std::string &key, const std::string &role, const std::string &result) {
  if (!audit_) return;
  AuditEntry e{wall_ms(), op, key, role, self_text_, result};
  // An append syncs: on the store thread, like every durable write.
  store_then([this, e] { audit_->append(e); }, [this](bool ok, const std::string &why) {
    if (!ok) host_.warn("dht: audit log: " + why);
  });
}

chorus_status Node::store_content(std::string key, std::string role, Bytes content, uint32_t timeout_ms, Done done,
                                  chorus_error *err) {
  if (key.empty() || key.size() + kMetaPrefix.size() > CHORUS_DHT_KEY_MAX || key.find('\0') != std::string::npos)
    return fail(err, CHORUS_E_INVALID_ARG, "dht: a content key has 1 to " +
                                               std::to_string(CHORUS_DHT_KEY_MAX - kMetaPrefix.size()) + " bytes, no NUL");
  if (!valid_role_name(role)) return fail(err, CHORUS_E_INVALID_ARG, "dht: not a role name: '" + role + "'");
  if (!keyring_ || !keyring_->knows(role))
    return fail(err, CHORUS_E_INVALID_ARG, "dht: no recipient for role '" + role +
                                               "' (a key file in the keyring or roles.<name>.recipient in the config)");
  const uint64_t t = timeout_ms != 0 ? timeout_ms : s_.lookup_deadline_ms;
  return start_op("store", std::move(done), err,
                  [this, key = std::move(key), role = std::move(role), content = std::move(content), t](uint64_t op) {
    Bytes multihash;
    const std::string hash = sha256_hex(content, &multihash);
    Bytes file;
    try {
      file = keyring_->encrypt_for(role, content);
    } catch (const std::exception &e) {
      audit(AuditOp::store, key, role, "encrypt_failed");
      return complete(op, CHORUS_E_INTERNAL, std::string("dht: cannot encrypt: ") + e.what());
    }
    // The signed record around the file adds a few hundred bytes.
    if (file.size() + 512 > s_.max_value_bytes) {
      audit(AuditOp::store, key, role, "too_large");
      return complete(op, CHORUS_E_TOO_LARGE, "dht: the encrypted content (" + std::to_string(file.size()) +
                                                  " bytes) does not fit max_value_bytes (" +
                                                  std::to_string(s_.max_value_bytes) + ")");
    }
    const json meta = {{"role", role}, {"size", content.size()}, {"sha256", hash}, {"created", wall_ms()},
                       {"author", self_text_}};
    const std::string meta_text = meta.dump();
    // Content first, then its meta (a reader that finds the meta finds the content), then the announce.
    auto fail_step = [this, op, key, role](const char *step, chorus_status st, const std::string &msg) {
      audit(AuditOp::store, key, role, step);
      complete(op, st, msg);
    };
    const uint64_t put_content = internal_op([=, this](chorus_status st, const std::string &msg, const Bytes &) {
      if (st != CHORUS_OK && st != CHORUS_E_UNAVAILABLE) return fail_step("put_failed", st, msg);
      const uint64_t put_meta = internal_op([=, this](chorus_status st, const std::string &msg, const Bytes &) {
        if (st != CHORUS_OK && st != CHORUS_E_UNAVAILABLE) return fail_step("put_failed", st, msg);
        const uint64_t announce = internal_op([=, this](chorus_status st, const std::string &msg, const Bytes &) {
          if (st == CHORUS_E_CANCELLED) return complete(op, st, msg);
          audit(AuditOp::store, key, role, "ok");
          audit(AuditOp::announce, hash, role, st == CHORUS_OK ? "ok" : chorus_status_name(st));
          // Stored durably here and on the peers that took it; the announce is best effort.
          complete(op, CHORUS_OK, "", Bytes(hash.begin(), hash.end()));
        });
        do_provide(announce, multihash, t, true);
      });
      do_put(put_meta, key_bytes(kMetaPrefix, key), Bytes(meta_text.begin(), meta_text.end()), t);
    });
    do_put(put_content, key_bytes(kContentPrefix, key), std::move(file), t);
  });
}

chorus_status Node::retrieve_content(std::string key, uint32_t timeout_ms, Done done, chorus_error *err) {
  if (key.empty() || key.size() + kMetaPrefix.size() > CHORUS_DHT_KEY_MAX || key.find('\0') != std::string::npos)
    return fail(err, CHORUS_E_INVALID_ARG, "dht: a content key has 1 to " +
                                               std::to_string(CHORUS_DHT_KEY_MAX - kMetaPrefix.size()) + " bytes, no NUL");
  const uint64_t t = timeout_ms != 0 ? timeout_ms : s_.lookup_deadline_ms;
  return start_op("retrieve", std::move(done), err, [this, key = std::move(key), t](uint64_t op) {
    const uint64_t get_meta = internal_op([=, this](chorus_status st, const std::string &msg, const Bytes &meta_bytes) {
      if (st != CHORUS_OK) {
        audit(AuditOp::retrieve, key, "", chorus_status_name(st));
        return complete(op, st, msg);
      }
      const json meta = json::parse(meta_bytes.begin(), meta_bytes.end(), nullptr, false);
      if (!meta.is_object() || !meta.contains("role") || !meta["role"].is_string() || !meta.contains("size") ||
          !meta["size"].is_number_unsigned() || !meta.contains("sha256") || !meta["sha256"].is_string()) {
        audit(AuditOp::retrieve, key, "", "bad_metadata");
        return complete(op, CHORUS_E_DHT_INTEGRITY, "dht: the content's metadata record is malformed");
      }
      const std::string role = meta["role"].get<std::string>();
      const uint64_t size = meta["size"].get<uint64_t>();
      const std::string hash = meta["sha256"].get<std::string>();
      if (!keyring_ || !keyring_->can_decrypt(role)) {
        audit(AuditOp::retrieve, key, role, "not_authorised");
        return complete(op, CHORUS_E_DHT_NOT_AUTHORISED, "dht: not authorised: no key for role '" + role + "'");
      }
      const uint64_t get_file = internal_op([=, this](chorus_status st, const std::string &msg, const Bytes &file) {
        if (st != CHORUS_OK) {
          audit(AuditOp::retrieve, key, role, chorus_status_name(st));
          return complete(op, st, msg);
        }
        Bytes plain;
        try {
          plain = keyring_->decrypt_for(role, file);
        } catch (const NotAuthorisedError &e) {
          audit(AuditOp::retrieve, key, role, "not_authorised");
          return complete(op, CHORUS_E_DHT_NOT_AUTHORISED, std::string("dht: ") + e.what());
        } catch (const std::exception &e) {
          audit(AuditOp::retrieve, key, role, "integrity");
          return complete(op, CHORUS_E_DHT_INTEGRITY, std::string("dht: the content does not decrypt: ") + e.what());
        }
        if (plain.size() != size || sha256_hex(plain, nullptr) != hash) {
          audit(AuditOp::retrieve, key, role, "integrity");
          return complete(op, CHORUS_E_DHT_INTEGRITY, "dht: the content does not match its metadata (size or SHA-256)");
        }
        audit(AuditOp::retrieve, key, role, "ok");
        complete(op, CHORUS_OK, "", plain);
      });
      do_get(get_file, key_bytes(kContentPrefix, key), t);
    });
    do_get(get_meta, key_bytes(kMetaPrefix, key), t);
  });
}

}  // namespace chorus::dht
