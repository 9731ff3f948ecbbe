// The TCP listeners: binds the configured listen addresses, accepts connections and hands each
// socket on, and works out the addresses we announce. Network thread, except bind (before it runs).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "wire/multiaddr.hpp"

namespace chorus::p2p {

class NodeImpl;

class Listener {
 public:
  using AcceptFn = std::function<void(boost::asio::ip::tcp::socket)>;

  explicit Listener(NodeImpl &node);
  ~Listener();

  // Binds every address of `listen`. Returns "" when at least one is bound (the others are logged as
  // warnings), else why none could be.
  std::string bind(const std::vector<std::string> &listen);
  // Starts accepting; each accepted socket goes to on_accept.
  void start(AcceptFn on_accept);
  void close();
  void clear();

  const std::vector<Multiaddr> &bound() const { return bound_; }  // actual ports
  // The bound addresses with each wildcard (0.0.0.0, ::) replaced by the interfaces' addresses
  // (loopback only when announce_loopback), as multiaddr texts.
  std::vector<std::string> advertised_addrs(bool announce_loopback) const;

 private:
  void accept_loop(boost::asio::ip::tcp::acceptor &acceptor);

  NodeImpl &node_;
  AcceptFn on_accept_;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  std::vector<Multiaddr> bound_;
};

}  // namespace chorus::p2p
