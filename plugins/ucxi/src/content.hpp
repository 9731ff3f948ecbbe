// Versioned content over chorus.dht (slice "store"): every put makes a new immutable version,
// addressed by its SHA-256; the versions of an address are ordered and indexed in the DHT (so any
// agent can resolve them) and in a local SQLite index (store/index.hpp). See README.md, "Storage".
//
// Threading: every method may be called from any thread and returns at once; `done` runs exactly
// once, on the DHT plugin's thread (or inline, before the method returns, for errors found without
// the network - still exactly once). After stop() every operation still running completes with
// CHORUS_E_CANCELLED and new ones fail the same way.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <chorus/plugin.h>
#include <chorus/services/ucxi_v1.h>
#include <nlohmann/json.hpp>

#include "ucxl/address.hpp"

namespace chorus::ucxi {

class Index;  // store/index.hpp

// What a finished operation gives back. status CHORUS_OK, or an error with message (and for address
// errors the failing field in `field`). Codes used: CHORUS_E_INVALID_ARG (bad address / wildcard where
// one address is needed / unknown role: `field` says which), CHORUS_E_TOO_LARGE, CHORUS_E_NOT_FOUND,
// CHORUS_E_UCXI_TEMPORAL, CHORUS_E_UCXI_NOT_AUTHORISED, CHORUS_E_TIMEOUT, CHORUS_E_UNAVAILABLE,
// CHORUS_E_CANCELLED, CHORUS_E_INTERNAL.
struct Outcome {
  chorus_status status = CHORUS_OK;
  std::string message;
  std::string field;          // "address", "role", "content", ... for INVALID_ARG; else ""
  nlohmann::json meta;        // per operation, see below (an object on success)
  std::vector<uint8_t> content;  // get only
};
using Done = std::function<void(Outcome)>;

// The parts of chorus.dht the store uses, behind an interface so tests can run it on a fake
// (tests/fake_dht.hpp). Semantics exactly as dht_v1.h; `done` gets (status, message, data).
class Dht {
 public:
  using Result = std::function<void(chorus_status, std::string message, std::vector<uint8_t> data)>;
  virtual ~Dht() = default;
  virtual void put_value(const std::string &key, std::vector<uint8_t> value, uint32_t timeout_ms, Result done) = 0;
  virtual void get_value(const std::string &key, uint32_t timeout_ms, Result done) = 0;
  virtual void provide(const std::vector<uint8_t> &key, uint32_t timeout_ms, Result done) = 0;
  virtual void find_providers(const std::vector<uint8_t> &key, uint32_t timeout_ms, Result done) = 0;  // data: JSON
  virtual void store(const std::string &key, const std::string &role, std::vector<uint8_t> content,
                     uint32_t timeout_ms, Result done) = 0;                                             // data: hex sha256
  virtual void retrieve(const std::string &key, uint32_t timeout_ms, Result done) = 0;                 // data: plaintext
};

struct ContentSettings {
  size_t max_content_bytes = 512 * 1024;  // larger puts: CHORUS_E_TOO_LARGE
  uint32_t timeout_ms = 10000;            // per operation, unless the caller passes one
  size_t cache_entries = 256;             // immutable versions kept in memory (by sha256)
};

// Who we are, for authorship and for puts on role "any".
struct Identity {
  std::string peer_id;  // base58
  std::string agent_id;
  std::string role;     // the agent's role ("" if none)
};

// The DHT keys of a series (series = Address::series(), id = series_id(series) from store/index.hpp):
// the CHORUS record holding its version list, the content key of one version, and the provider key
// announced for it (the multihash sha2-256 of the series text: 0x12 0x20 + SHA-256).
std::string version_record_key(const std::string &series_id);
std::string content_key(const std::string &series_id, const std::string &sha256);
std::vector<uint8_t> provider_key(const std::string &series);

class ContentStore {
 public:
  ContentStore(std::shared_ptr<Dht> dht, std::shared_ptr<Index> index, Identity self, ContentSettings s);
  // stop(), then waits for the DHT completions other threads are running, so Impl and the Dht are
  // normally released on the destroying thread.
  ~ContentStore();
  void stop();

  // New version of addr (concrete, temporal *^ or the default). The role that encrypts it is the
  // address's role, or self.role when that is "any". meta: {"address","version","sha256","size",
  // "content_type","created"} (created: RFC 3339 UTC with ms), plus "created_ms" (unix ms) and
  // "replicated" (false when the version list reached fewer peers than the dht's target, or none),
  // and "replicas" (the peers that took a copy of the version list; absent when the dht does not say).
  void put(const ucxl::Address &addr, std::string content_type, std::vector<uint8_t> content, uint32_t timeout_ms,
           Done done);
  // A tombstone version (deleted: true, no content): the history stays readable by version, latest
  // answers NOT_FOUND "deleted". meta as put.
  void remove(const ucxl::Address &addr, uint32_t timeout_ms, Done done);
  // Resolves the temporal segment (relative ones from `from`, 0 = latest) and fetches the content.
  // meta: {"address","version","versions","sha256","size","content_type","role","author","created",
  // "deleted"} (created as for put, plus "created_ms"); content: the bytes. A tombstone answers
  // NOT_FOUND.
  void get(const ucxl::Address &addr, uint64_t from, uint32_t timeout_ms, Done done);
  // Resolution only (no content): meta as get, without fetching; a tombstone resolves ("deleted": true).
  void resolve(const ucxl::Address &addr, uint64_t from, uint32_t timeout_ms, Done done);
  // Announces this agent as a provider of addr's series (DHT provider record) and records it locally.
  // meta: {"address","peer_id"}.
  void announce(const ucxl::Address &addr, uint32_t timeout_ms, Done done);
  // Providers of addr's series: meta {"address","providers":[{"peer_id","addrs"}]}. A pattern with
  // wildcards answers from the local index (announcements heard and our own) instead, inline; its
  // meta adds "series":[{"address","peer_ids"}].
  void discover(const ucxl::Address &addr, uint32_t timeout_ms, Done done);
  // Every series in the local index that matches the pattern: meta {"matches":[{"address","versions",
  // "latest_sha256","updated"}]}. Synchronous (no network).
  Outcome query(const ucxl::Address &pattern, size_t limit);
  // An announcement heard on pubsub (another agent put or announced addr): recorded in the index.
  void note_remote(const ucxl::Address &addr, const std::string &peer_id, uint64_t version, const std::string &sha256);

  // For /ucxi/v1/status: {"storage":{...},"cache":{"entries","hits","misses"},"resolver":{...},
  // "navigator":{"resolved","out_of_range"}}.
  nlohmann::json stats() const;
  // False after the last write to the local index failed (health: degraded); true without an index.
  bool index_ok() const;
  // Series in the local index (0 without one).
  uint64_t series_indexed() const;

 private:
  struct Impl;
  class Entered;
  std::shared_ptr<Impl> impl_;
};

}  // namespace chorus::ucxi
