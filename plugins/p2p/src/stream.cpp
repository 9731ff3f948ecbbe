#include "stream.hpp"

#include <algorithm>
#include <cstring>

#include "connection.hpp"

namespace chorus::p2p {

CHandlerSink::CHandlerSink(const chorus_p2p_stream_handler &h) : h_{} {
  std::memcpy(&h_, &h, std::min<size_t>(h.struct_size, sizeof h_));
  h_.struct_size = sizeof h_;
}

void CHandlerSink::data(Stream &s, BytesView b) {
  if (h_.on_data != nullptr) h_.on_data(h_.arg, s.id, b.data(), b.size());
}

void CHandlerSink::eof(Stream &s) {
  if (h_.on_eof != nullptr) h_.on_eof(h_.arg, s.id);
}

void CHandlerSink::writable(Stream &s) {
  if (h_.on_writable != nullptr) h_.on_writable(h_.arg, s.id);
}

void CHandlerSink::closed(Stream &s, chorus_status status, const std::string &reason) {
  if (h_.on_closed != nullptr) h_.on_closed(h_.arg, s.id, status, reason.c_str());
}

chorus_p2p_stream_info stream_info(const Stream &s, uint32_t direction, const std::string &peer_text,
                                   const std::string &remote_addr) {
  chorus_p2p_stream_info info{};
  info.struct_size = sizeof info;
  info.direction = direction;
  info.stream = s.id;
  info.connection = s.conn->id();
  info.peer = s.conn->peer().bytes().data();
  info.peer_len = s.conn->peer().bytes().size();
  info.peer_text = peer_text.c_str();
  info.protocol = s.protocol.c_str();
  info.remote_addr = remote_addr.c_str();
  return info;
}

}  // namespace chorus::p2p
