#include "eventlog/verify.hpp"

#include <nlohmann/json.hpp>

#include "eventlog/store.hpp"
#include "wire/identity.hpp"
#include "wire/peer_id.hpp"

namespace chorus::eventlog {

bool ChainVerifier::fail(uint64_t index, std::string problem) {
  failed_ = true;
  bad_index_ = index;
  problem_ = std::move(problem);
  return false;
}

std::optional<std::array<uint8_t, 32>> ChainVerifier::author_key(const std::string &author, std::string *why) {
  if (auto it = keys_.find(author); it != keys_.end()) return it->second;
  auto id = p2p::PeerId::parse(author, why);
  if (!id) return std::nullopt;
  auto key = id->ed25519_key();
  if (!key) {
    *why = "not an Ed25519 peer id (its public key is not inlined)";
    return std::nullopt;
  }
  keys_.emplace(author, *key);
  return key;
}

bool ChainVerifier::next(const Entry &e, std::string_view defect) {
  if (failed_) return false;
  const uint64_t want = verified_;
  if (e.index != want) {
    if (e.index > want)
      return fail(want, "entry " + std::to_string(want) + " is missing (the next entry has index " +
                            std::to_string(e.index) + ")");
    return fail(want, "expected index " + std::to_string(want) + ", found index " + std::to_string(e.index));
  }
  if (!defect.empty()) return fail(want, std::string(defect));
  if (e.prev_hash != prev_)
    return fail(want, want == 0 ? "prev_hash of the first entry is not all zeros"
                                : "prev_hash does not match the hash of entry " + std::to_string(want - 1));
  if (!valid_timestamp(e.timestamp)) return fail(want, "timestamp is not RFC 3339 UTC with milliseconds");
  if (!valid_type(e.type)) return fail(want, "type is not [a-z0-9_.]{1,64}");
  if (!nlohmann::json::accept(e.data)) return fail(want, "data is not valid JSON");
  if (compute_hash(e) != e.hash) return fail(want, "hash does not match the entry's content (it was altered)");
  std::string why;
  const auto key = author_key(e.author, &why);
  if (!key) return fail(want, "author '" + e.author.substr(0, 80) + "' is not usable: " + why);
  if (!p2p::Identity::verify(key->data(), p2p::BytesView(e.hash.data(), e.hash.size()), e.signature.data()))
    return fail(want, "signature does not verify with the author's key");
  prev_ = e.hash;
  ++verified_;
  ++authors_[e.author];
  return true;
}

VerifyReport verify_file(const std::string &path) {
  VerifyReport report;
  std::string err;
  auto store = Store::open(path, Store::Mode::kReadOnly, &err);
  if (!store) {
    report.problem = err;
    return report;
  }
  ChainVerifier chain;
  if (!store->scan([&](const Entry &e, const std::string &defect) { return chain.next(e, defect); }, &err)) {
    report.problem = path + ": " + err;
    return report;
  }
  report.outcome = chain.failed() ? VerifyReport::Outcome::kBroken : VerifyReport::Outcome::kWhole;
  report.entries = chain.verified();
  report.head = chain.head_hash();
  report.bad_index = chain.bad_index();
  report.problem = chain.problem();
  report.authors = chain.authors();
  return report;
}

}  // namespace chorus::eventlog
