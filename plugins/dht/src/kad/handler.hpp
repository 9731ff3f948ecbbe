// The server side of kad-dht (docs/protocols.md, DHT requests): one decoded request from a peer in,
// at most one reply out. Sans I/O and single-threaded; the node owns the streams, decodes the frame
// with kad/message.hpp and writes back what handle() returns - or, to keep syncs off the dht thread,
// calls begin() there, commit() on the store thread and finish() back on the dht thread.
//
//   FIND_NODE      closerPeers: the k peers closest to key (a peer id) we know, never the requester,
//                  only peers with addresses.
//   GET_VALUE      record (if stored and still valid) + closerPeers.
//   PUT_VALUE      record.key == key, valid, and at least as good as the stored one (select_record):
//                  stored, and the request echoed back once durable. Otherwise no reply, and the
//                  reason counted.
//   ADD_PROVIDER   providerPeers whose id is the sender's and that carry addresses are stored; entries
//                  naming anyone else are ignored. No reply. Bounded per sender by a token bucket here
//                  and by the store's per-provider key limit.
//   GET_PROVIDERS  every stored provider of key (bounded so the reply fits one frame and the receiver's
//                  peer-count limit) + closerPeers. A provider stored without addresses (the node
//                  stores its own provides that way) is named with its current ones (ContactFn).
//   PING           an empty PING.
//
// Every refusal is counted by reason in HandlerCounters, which the node exports as metrics.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "kad/key.hpp"
#include "kad/message.hpp"
#include "kad/records.hpp"
#include "store/record_store.hpp"

namespace chorus::dht {

// Why a request was refused, in full or in part.
enum class RejectReason : uint8_t {
  kEmptyKey,              // a request whose key is empty
  kKeyTooLong,            // ADD_PROVIDER / GET_PROVIDERS key over max_provider_key_bytes
  kMissingRecord,         // PUT_VALUE without a record
  kKeyMismatch,           // PUT_VALUE record.key != key
  kValueTooLarge,         // PUT_VALUE value over max_value_bytes
  kInvalidRecord,         // PUT_VALUE value fails validation (unknown namespace, bad signature, ...)
  kStaleRecord,           // PUT_VALUE value worse than the stored one
  kInvalidStoredRecord,   // GET_VALUE found a stored record that no longer validates (removed)
  kForeignProvider,       // ADD_PROVIDER entry naming a peer other than the sender (entry ignored)
  kProviderWithoutAddrs,  // ADD_PROVIDER entry of the sender with no address (entry ignored)
  kProviderRateLimited,   // ADD_PROVIDER over the sender's token bucket (entry ignored)
  kProviderLimit,         // ADD_PROVIDER refused by the store's per-provider key limit
  kStoreError,            // the store threw: nothing acknowledged
  kUnknownType,           // a type number outside the protocol (the decoder normally refuses it)
};
inline constexpr size_t kRejectReasonCount = 14;
const char *reject_reason_name(RejectReason r);  // "empty_key", "key_too_long", ... (metric labels)

inline constexpr size_t kMessageTypeCount = 6;  // PUT_VALUE .. PING, indexed by MessageType

struct HandlerCounters {
  std::array<uint64_t, kMessageTypeCount> requests{};  // by request type
  std::array<uint64_t, kMessageTypeCount> replies{};   // by request type, when a reply was returned
  std::array<uint64_t, kRejectReasonCount> rejected{};  // by RejectReason
  uint64_t records_stored = 0;
  uint64_t providers_stored = 0;
  uint64_t providers_truncated = 0;  // GET_PROVIDERS replies cut short by the frame or peer limit

  uint64_t rejected_for(RejectReason r) const { return rejected[static_cast<size_t>(r)]; }
  uint64_t requests_for(MessageType t) const { return requests[static_cast<size_t>(t)]; }
  uint64_t replies_for(MessageType t) const { return replies[static_cast<size_t>(t)]; }
};

// How records are judged; the node passes RecordValidator::by_namespace(), tests may pass their own.
struct RecordValidator {
  std::function<bool(BytesView key, BytesView value, std::string *why)> validate;
  std::function<size_t(BytesView key, const std::vector<Bytes> &values)> select;

  // The namespaces of kad/records.hpp (/pk/, /chorus/; everything else refused), values of at most
  // max_value_bytes.
  static RecordValidator by_namespace(size_t max_value_bytes = Limits{}.max_value_bytes) {
    return {[max_value_bytes](BytesView key, BytesView value, std::string *why) {
              return validate_record(key, value, max_value_bytes, why);
            },
            [](BytesView key, const std::vector<Bytes> &values) { return select_record(key, values); }};
  }
};

// What the node knows about a peer it names in closerPeers.
struct PeerContact {
  std::vector<Bytes> addrs;  // binary multiaddrs; a peer without any is not named
  ConnectionType connection = ConnectionType::kNotConnected;
};

struct HandlerOptions {
  size_t k = 20;                               // closerPeers per reply
  size_t max_value_bytes = 1u << 20;           // PUT_VALUE value
  size_t max_provider_key_bytes = 80;          // provider keys are multihashes (go refuses > 80)
  size_t max_reply_bytes = (4u << 20) - 1024;  // a reply body stays under the 4 MiB frame
  // Peers per reply list: the receiver's decoder refuses more (message.hpp Limits::max_peers).
  size_t max_peers_per_reply = Limits{}.max_peers;
  size_t max_addrs_per_peer = Limits{}.max_addrs_per_peer;
  // ADD_PROVIDER flood bound, per sender: a bucket of provider_burst entries refilled at
  // provider_refill_per_s. Senders tracked at once are bounded too (the idle are forgotten first).
  double provider_burst = 256;
  double provider_refill_per_s = 4;
  size_t max_tracked_senders = 4096;
};

// The durable part of a request. The node runs it on its store thread, so the dht thread never waits
// for a sync: begin() returns it, commit() performs it (any thread: it touches only the store),
// finish() counts the outcome and returns the reply then due (dht thread).
struct StoreWrite {
  MessageType type = MessageType::kPutValue;
  std::optional<StoredRecord> record;     // PUT_VALUE: stored unless the stored one is better by then
  std::vector<ProviderRecord> providers;  // ADD_PROVIDER: the sender's own entries that passed
  std::optional<Bytes> remove_key;        // GET_VALUE: a stored record that no longer validates
  std::optional<Message> reply;           // PUT_VALUE: the echo, due once the record is durable
};

struct WriteOutcome {
  bool record_stored = false;
  bool record_stale = false;     // the stored record is better (a concurrent PUT won)
  size_t providers_stored = 0;
  size_t providers_refused = 0;  // the store's per-provider key limit
  bool store_error = false;      // the store threw: nothing after that point was written
};

struct HandledRequest {
  std::optional<Message> reply;     // to write back now
  std::optional<StoreWrite> write;  // to commit, then finish (whose reply, if any, is written then)
};

class RequestHandler {
 public:
  // The count peers closest to target the node knows (its routing table), closest first.
  using ClosestPeersFn = std::function<std::vector<PeerId>(const KadId &target, size_t count)>;
  // Addresses and connection state of a peer (the node's peer store and connection manager). Asked
  // for ourselves too (a FIND_NODE for our own id names us with our listen addresses).
  using ContactFn = std::function<PeerContact(const PeerId &peer)>;

  // store is read by begin() (GET_VALUE, GET_PROVIDERS) and written only through commit().
  RequestHandler(const PeerId &self, RecordStore &store, ClosestPeersFn closest, ContactFn contact,
                 RecordValidator validator, HandlerOptions options = {});

  // One request from sender (the authenticated remote peer of the stream), up to its durable part.
  HandledRequest begin(const PeerId &sender, const Message &request, int64_t now_ms);
  // Performs a write; thread-safe as far as the store is (no handler state is touched).
  static WriteOutcome commit(RecordStore &store, const RecordValidator &validator, const StoreWrite &write);
  // Counts a committed write; returns the reply due (the PUT_VALUE echo when the record was stored).
  std::optional<Message> finish(const StoreWrite &write, const WriteOutcome &outcome);

  // begin, commit and finish in a row: the reply to write, or nullopt when none is due (ADD_PROVIDER,
  // refused PUT_VALUE, store failure).
  std::optional<Message> handle(const PeerId &sender, const Message &request, int64_t now_ms);

  const HandlerCounters &counters() const { return counters_; }
  const HandlerOptions &options() const { return options_; }
  const RecordValidator &validator() const { return validator_; }
  RecordStore &store() { return store_; }

 private:
  std::optional<Message> find_node(const PeerId &sender, const Message &req);
  HandledRequest get_value(const PeerId &sender, const Message &req, int64_t now_ms);
  HandledRequest put_value(const Message &req, int64_t now_ms);
  HandledRequest add_provider(const PeerId &sender, const Message &req, int64_t now_ms);
  std::optional<Message> get_providers(const PeerId &sender, const Message &req, int64_t now_ms);

  // closerPeers for key: the k closest known with addresses, not the requester, not ourselves.
  std::vector<PeerEntry> closer_peers(const PeerId &requester, BytesView key);
  bool take_provider_token(const PeerId &sender, int64_t now_ms);
  void reject(RejectReason r, uint64_t n = 1) { counters_.rejected[static_cast<size_t>(r)] += n; }

  struct TokenBucket {
    double tokens = 0;
    int64_t updated_ms = 0;
  };

  PeerId self_;
  RecordStore &store_;
  ClosestPeersFn closest_;
  ContactFn contact_;
  RecordValidator validator_;
  HandlerOptions options_;
  HandlerCounters counters_;
  std::unordered_map<PeerId, TokenBucket> provider_buckets_;
};

// The RFC 3339 UTC form of a time in ms ("2026-12-06T21:40:00.123Z"), as Record.timeReceived carries.
std::string rfc3339_utc(int64_t ms);

}  // namespace chorus::dht
