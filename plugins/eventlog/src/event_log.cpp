#include "event_log.hpp"

#include <future>

namespace chorus::eventlog {

std::unique_ptr<EventLog> EventLog::open(Options options, std::string *err) {
  std::unique_ptr<EventLog> log(new EventLog(std::move(options)));
  log->writer_ = Store::open(log->options_.path, Store::Mode::kReadWrite, err);
  if (!log->writer_) return nullptr;
  log->reader_ = Store::open(log->options_.path, Store::Mode::kReadOnly, err);
  if (!log->reader_) return nullptr;
  auto last = log->writer_->last(err);
  if (!err->empty()) return nullptr;
  if (last) log->head_ = Head{last->index + 1, last->hash};
  log->thread_ = std::thread([raw = log.get()] { raw->run(); });
  return log;
}

EventLog::~EventLog() { stop(); }

chorus_status EventLog::enqueue(std::string_view type, std::string_view data_json, Completion done, std::string *err) {
  if (!valid_type(type)) {
    *err = "type must match [a-z0-9_.]{1,64}";
    return CHORUS_E_INVALID_ARG;
  }
  if (data_json.size() > 65536) {
    *err = "data is larger than 64 KiB";
    return CHORUS_E_INVALID_ARG;
  }
  auto data = canonical_json(data_json, err);
  if (!data) return CHORUS_E_INVALID_ARG;
  {
    std::lock_guard lk(mu_);
    if (stopping_) {
      *err = "the event log is stopping";
      return CHORUS_E_UNAVAILABLE;
    }
    if (queue_.size() >= options_.max_queue) {
      *err = "too many appends are waiting (" + std::to_string(queue_.size()) + ")";
      return CHORUS_E_BUSY;
    }
    queue_.push_back(Pending{std::string(type), std::move(*data), std::move(done)});
  }
  cv_.notify_one();
  return CHORUS_OK;
}

AppendResult EventLog::append(std::string_view type, std::string_view data_json) {
  auto promise = std::make_shared<std::promise<AppendResult>>();
  auto future = promise->get_future();
  std::string err;
  const chorus_status st = enqueue(type, data_json, [promise](const AppendResult &r) { promise->set_value(r); }, &err);
  if (st != CHORUS_OK) return AppendResult{st, 0, err};
  return future.get();
}

Head EventLog::head() const {
  std::lock_guard lk(mu_);
  return head_;
}

bool EventLog::query(uint64_t from, uint64_t to, const std::string &type, size_t limit, std::vector<Entry> *out,
                     std::string *err) {
  std::lock_guard lk(reader_mu_);
  return reader_->query(from, to, type, limit, out, err);
}

uint64_t EventLog::commits() const {
  std::lock_guard lk(mu_);
  return commits_;
}

void EventLog::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void EventLog::run() {
  for (;;) {
    std::vector<Pending> batch;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued is committed
      // Whatever queued while the previous commit was syncing goes into this one transaction.
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    commit_batch(std::move(batch));
  }
}

void EventLog::commit_batch(std::vector<Pending> batch) {
  Head head = this->head();  // only this thread changes it
  std::vector<Entry> entries;
  std::vector<AppendResult> results(batch.size());
  std::vector<size_t> result_of;  // entries[i] answers batch[result_of[i]]
  for (size_t i = 0; i < batch.size(); ++i) {
    Entry e;
    e.index = head.length + entries.size();
    e.timestamp = format_timestamp(std::chrono::system_clock::now());
    e.author = options_.author;
    e.type = std::move(batch[i].type);
    e.data = std::move(batch[i].data);
    e.prev_hash = entries.empty() ? head.hash : entries.back().hash;
    e.hash = compute_hash(e);
    std::string why;
    if (!options_.sign(e.hash, &e.signature, &why)) {
      results[i] = AppendResult{CHORUS_E_UNAVAILABLE, 0, "cannot sign the entry: " + why};
      continue;  // its index goes to the next entry: the chain stays gapless
    }
    results[i] = AppendResult{CHORUS_OK, e.index, {}};
    result_of.push_back(i);
    entries.push_back(std::move(e));
  }
  if (!entries.empty()) {
    std::string err;
    if (writer_->append(entries, &err)) {
      std::lock_guard lk(mu_);
      head_ = Head{entries.back().index + 1, entries.back().hash};
      ++commits_;
    } else {
      for (size_t k : result_of) results[k] = AppendResult{CHORUS_E_IO, 0, "the event log database failed: " + err};
    }
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].done) {
      batch[i].done(results[i]);
    } else if (results[i].status != CHORUS_OK && options_.warn) {
      options_.warn("event log append failed: " + results[i].error);
    }
  }
}

}  // namespace chorus::eventlog
