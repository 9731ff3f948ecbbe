// DhtAdapter (see dht_adapter.hpp). Each call moves its Result into a heap box that the C completion
// takes back; when the service refuses the call, the completion never runs, so the box is taken back
// here and the Result called inline.
#include "dht_adapter.hpp"

#include <chorus/status.h>

#include <cstring>

namespace chorus::ucxi {
namespace {

struct Box {
  Dht::Result done;
};

std::string message_of(chorus_status status, const chorus_error *err) {
  const size_t n = err != nullptr ? strnlen(err->message, sizeof err->message) : 0;
  return n != 0 ? std::string(err->message, n) : std::string(chorus_status_name(status));
}

void on_done(void *arg, chorus_status status, const chorus_error *err, const uint8_t *data, size_t len) {
  std::unique_ptr<Box> box(static_cast<Box *>(arg));
  std::string message;
  if (status != CHORUS_OK) message = message_of(status, err);
  std::vector<uint8_t> bytes;
  if (status == CHORUS_OK && data != nullptr && len != 0) bytes.assign(data, data + len);
  box->done(status, std::move(message), std::move(bytes));
}

// Runs start(on_done, box, err); a refusal completes inline.
template <class Start>
void run(Dht::Result done, Start &&start) {
  auto box = std::make_unique<Box>(Box{std::move(done)});
  chorus::ErrorBuffer err;
  const chorus_status st = start(box.get(), err.get());
  if (st == CHORUS_OK) {
    box.release();  // on_done owns it now
    return;
  }
  box->done(st, message_of(st, err.get()), {});
}

const uint8_t *bytes_of(const std::string &s) { return reinterpret_cast<const uint8_t *>(s.data()); }

}  // namespace

DhtAdapter::DhtAdapter(chorus::ServiceRef<chorus_dht_v1> dht, uint32_t max_providers)
    : dht_(std::move(dht)), max_providers_(max_providers) {}

void DhtAdapter::put_value(const std::string &key, std::vector<uint8_t> value, uint32_t timeout_ms, Result done) {
  run(std::move(done), [&](Box *box, chorus_error *err) {
    return dht_.call<&chorus_dht_v1::put_value>(bytes_of(key), key.size(), value.data(), value.size(), timeout_ms,
                                                &on_done, static_cast<void *>(box), err);
  });
}

void DhtAdapter::get_value(const std::string &key, uint32_t timeout_ms, Result done) {
  run(std::move(done), [&](Box *box, chorus_error *err) {
    return dht_.call<&chorus_dht_v1::get_value>(bytes_of(key), key.size(), timeout_ms, &on_done, static_cast<void *>(box),
                                                err);
  });
}

void DhtAdapter::provide(const std::vector<uint8_t> &key, uint32_t timeout_ms, Result done) {
  run(std::move(done), [&](Box *box, chorus_error *err) {
    return dht_.call<&chorus_dht_v1::provide>(key.data(), key.size(), timeout_ms, &on_done, static_cast<void *>(box), err);
  });
}

void DhtAdapter::find_providers(const std::vector<uint8_t> &key, uint32_t timeout_ms, Result done) {
  run(std::move(done), [&](Box *box, chorus_error *err) {
    return dht_.call<&chorus_dht_v1::find_providers>(key.data(), key.size(), max_providers_, timeout_ms, &on_done,
                                                     static_cast<void *>(box), err);
  });
}

void DhtAdapter::store(const std::string &key, const std::string &role, std::vector<uint8_t> content,
                       uint32_t timeout_ms, Result done) {
  run(std::move(done), [&](Box *box, chorus_error *err) {
    return dht_.call<&chorus_dht_v1::store>(key.c_str(), role.c_str(), content.data(), content.size(), timeout_ms,
                                            &on_done, static_cast<void *>(box), err);
  });
}

void DhtAdapter::retrieve(const std::string &key, uint32_t timeout_ms, Result done) {
  run(std::move(done), [&](Box *box, chorus_error *err) {
    return dht_.call<&chorus_dht_v1::retrieve>(key.c_str(), timeout_ms, &on_done, static_cast<void *>(box), err);
  });
}

}  // namespace chorus::ucxi
