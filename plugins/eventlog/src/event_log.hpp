// The event log of one agent: the SQLite file, the chain's head, and the one writer thread that
// orders, hashes, signs and commits appends (entries of a burst share one transaction, so one fsync:
// the group commit). Knows nothing of the host or of p2p: the author and the signing function come in
// through Options, so the tests drive it with a local key.
#pragma once

#include <chorus/status.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "eventlog/entry.hpp"
#include "eventlog/store.hpp"

namespace chorus::eventlog {

struct AppendResult {
  chorus_status status = CHORUS_OK;
  uint64_t index = 0;
  std::string error;  // why, when status is not CHORUS_OK
};

struct Head {
  uint64_t length = 0;  // entries in the log; the last index is length - 1
  Hash hash{};          // hash of the last entry, zeros when empty
};

class EventLog {
 public:
  // Signs the 32 hash bytes with the author's identity key; false with *why on failure.
  using Signer = std::function<bool(const Hash &hash, Signature *out, std::string *why)>;
  using Completion = std::function<void(const AppendResult &)>;

  struct Options {
    std::string path;              // the database file (its directory exists)
    std::string author;            // base58 peer id of the signer
    Signer sign;
    size_t max_batch = 256;        // appends committed in one transaction at most
    size_t max_queue = 10000;      // appends waiting at most (CHORUS_E_BUSY beyond)
    std::function<void(const std::string &)> warn;  // a failure nobody waits for (fire-and-forget)
  };

  // Opens (or creates) the log and reads its head; starts the writer thread. Nothing with *err on a
  // file that cannot be used (foreign, corrupt, unreadable, a head that is malformed).
  static std::unique_ptr<EventLog> open(Options options, std::string *err);
  ~EventLog();  // stop()

  // Validates the type and data at once (CHORUS_E_INVALID_ARG, nothing queued), then queues the
  // append; `done` (may be empty) runs on the writer thread once the entry is durable or failed.
  chorus_status enqueue(std::string_view type, std::string_view data_json, Completion done, std::string *err);
  // enqueue and wait for the outcome.
  AppendResult append(std::string_view type, std::string_view data_json);

  Head head() const;
  bool query(uint64_t from, uint64_t to, const std::string &type, size_t limit, std::vector<Entry> *out,
             std::string *err);

  // Commits what is queued, then ends the writer; later appends fail with CHORUS_E_UNAVAILABLE.
  void stop();

  uint64_t commits() const;  // transactions committed (tests: a burst takes fewer than its appends)

 private:
  struct Pending {
    std::string type;
    std::string data;  // canonical JSON
    Completion done;
  };

  explicit EventLog(Options options) : options_(std::move(options)) {}
  void run();
  void commit_batch(std::vector<Pending> batch);

  Options options_;
  std::unique_ptr<Store> writer_;  // used by the writer thread only (and open())
  std::mutex reader_mu_;
  std::unique_ptr<Store> reader_;  // queries

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  Head head_;
  uint64_t commits_ = 0;
  std::thread thread_;
};

}  // namespace chorus::eventlog
