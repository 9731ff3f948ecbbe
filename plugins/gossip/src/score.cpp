// TEMP score stub (router branch only): a neutral PeerScore so the router links before the score
// slice lands. Every peer scores 0. The lead drops this commit when merging gossip-score.
#include "score.hpp"

namespace chorus::gossip {

PeerScore::PeerScore(PeerScoreParams params) : params_(std::move(params)) {}
void PeerScore::add_peer(const PeerId &, const std::string &, uint64_t) {}
void PeerScore::remove_peer(const PeerId &, uint64_t) {}
void PeerScore::graft(const PeerId &, const std::string &, uint64_t) {}
void PeerScore::prune(const PeerId &, const std::string &, uint64_t) {}
void PeerScore::validate_message(const PeerId &, const Bytes &, const std::string &, uint64_t) {}
void PeerScore::deliver_message(const PeerId &, const Bytes &, const std::string &, uint64_t) {}
void PeerScore::duplicate_message(const PeerId &, const Bytes &, const std::string &, uint64_t) {}
void PeerScore::reject_message(const PeerId &, const Bytes &, const std::string &, RejectReason, uint64_t) {}
void PeerScore::add_penalty(const PeerId &, double) {}
void PeerScore::set_app_score(const PeerId &, double) {}
void PeerScore::refresh(uint64_t) {}
double PeerScore::score(const PeerId &, uint64_t) const { return 0; }
const TopicScoreParams *PeerScore::topic_params(const std::string &) const { return nullptr; }

}  // namespace chorus::gossip
