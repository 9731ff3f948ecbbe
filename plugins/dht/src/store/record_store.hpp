// The dht plugin's durable store (docs/protocols.md, DHT storage): value records, provider records,
// the keys this node provides itself, and a local cache with a TTL. SQLite in WAL mode in one file
// under the state dir, mode 0600.
//
// Durability: put_record / add_provider return only once their transaction is committed and synced
// (synchronous=FULL), so a put that was acknowledged survives SIGKILL and power loss. Callers on
// several threads share commits (group commit): while one commit is being synced, later writes queue
// and go in the next transaction together, which is what makes thousands of durable puts per second
// possible.
//
// Thread-safe: every function may be called from any thread. A thread that must not wait on fsync
// (the dht thread) uses the _async forms: the write is queued and a callback runs on the store's own
// thread once it is durable, so one thread can keep many writes in flight and they share commits.
//
// Refusals (StoreError, never a silent wipe): a file that is not a SQLite database, a SQLite database
// of another application (no `chorus_dht` application_id), a schema newer than this code, a database
// that fails its integrity check, a path that cannot be created or is readable by group or others.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "kad/key.hpp"

namespace chorus::dht {

class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct StoreOptions {
  std::string path;                          // the database file (created 0600 when absent)
  int64_t record_ttl_ms = 36LL * 3600 * 1000;    // value records expire this long after receipt
  int64_t provider_ttl_ms = 48LL * 3600 * 1000;  // provider records likewise
  size_t max_providers_per_key = 1000;        // the oldest beyond this are dropped
  size_t max_provider_keys_per_peer = 10000;  // add_provider from one peer beyond this is refused
};

struct StoredRecord {
  Bytes key;
  Bytes value;
  int64_t received_ms = 0;
  int64_t expires_ms = 0;
  bool local = false;  // put by this node: republished by it until removed
};

struct ProviderRecord {
  Bytes key;
  Bytes provider;            // binary peer id
  std::vector<Bytes> addrs;  // binary multiaddrs the provider gave
  int64_t received_ms = 0;
  int64_t expires_ms = 0;
};

struct StoreStats {
  size_t records = 0;
  size_t providers = 0;
  size_t local_provides = 0;
  size_t cache_entries = 0;
  uint64_t commits = 0;  // transactions synced since open
  uint64_t writes = 0;   // write operations those transactions carried (writes / commits = batch size)
};

class RecordStore {
 public:
  // Opens (or creates) the database; throws StoreError with a message naming the file and the reason.
  static std::unique_ptr<RecordStore> open(const StoreOptions &options);
  virtual ~RecordStore() = default;

  // Value records. put replaces the record under the same key. expires_ms = 0 means received_ms +
  // record_ttl_ms.
  virtual void put_record(const StoredRecord &record) = 0;
  // put_record without waiting: done(nullptr) runs on the store thread once the record is committed
  // and synced, done(error) if it failed. done must not block; it may call the store. Writes queued
  // before the store is destroyed are committed and their callbacks run before the destructor returns.
  using WriteDone = std::function<void(std::exception_ptr error)>;
  virtual void put_record_async(const StoredRecord &record, WriteDone done) = 0;
  virtual std::optional<StoredRecord> get_record(BytesView key, int64_t now_ms) = 0;
  virtual bool remove_record(BytesView key) = 0;
  // Records put by this node (local) whose last put is older than older_than_ms: to be republished.
  virtual std::vector<StoredRecord> local_records_older_than(int64_t older_than_ms, size_t max) = 0;

  // Provider records. add replaces an existing (key, provider) entry. Returns false (and stores
  // nothing) when the provider already holds max_provider_keys_per_peer keys.
  virtual bool add_provider(const ProviderRecord &record) = 0;
  // add_provider without waiting: done(stored, nullptr) on the store thread once durable (stored is
  // add_provider's result), done(false, error) if it failed.
  using ProviderDone = std::function<void(bool stored, std::exception_ptr error)>;
  virtual void add_provider_async(const ProviderRecord &record, ProviderDone done) = 0;
  // Every unexpired provider of key, newest first, up to max (0 = all).
  virtual std::vector<ProviderRecord> providers(BytesView key, int64_t now_ms, size_t max = 0) = 0;

  // Keys this node provides itself (re-provided periodically until removed). A key just added has
  // never been provided, so it is due at once (local_provides_older_than lists it) until mark_provided;
  // adding a key again keeps its last provided time.
  virtual void add_local_provide(BytesView key, int64_t now_ms) = 0;
  virtual bool remove_local_provide(BytesView key) = 0;
  virtual std::vector<Bytes> local_provides_older_than(int64_t older_than_ms) = 0;
  virtual void mark_provided(BytesView key, int64_t now_ms) = 0;

  // The local cache (retrieved content): entries vanish ttl_ms after they were put.
  virtual void cache_put(BytesView key, BytesView value, int64_t now_ms, int64_t ttl_ms) = 0;
  virtual std::optional<Bytes> cache_get(BytesView key, int64_t now_ms) = 0;

  // Deletes expired records, providers and cache entries; returns how many rows went. Local records
  // are kept (this node republishes them until it removes them); get_record still treats a local
  // record past its expiry as absent until it is put again.
  virtual size_t sweep_expired(int64_t now_ms) = 0;
  virtual StoreStats stats() = 0;
};

}  // namespace chorus::dht
