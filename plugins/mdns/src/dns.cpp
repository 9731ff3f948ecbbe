#include "dns.hpp"

#include <algorithm>

namespace chorus::mdns {
namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string_view s) {
  std::string out(s);
  for (char &c : out) c = lower(c);
  return out;
}

// A bounds-checked cursor over the message.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> d) : d_(d) {}
  size_t pos() const { return pos_; }
  size_t left() const { return d_.size() - pos_; }
  bool u16(uint16_t &v) {
    if (left() < 2) return false;
    v = static_cast<uint16_t>(d_[pos_] << 8 | d_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool u32(uint32_t &v) {
    if (left() < 4) return false;
    v = static_cast<uint32_t>(d_[pos_]) << 24 | static_cast<uint32_t>(d_[pos_ + 1]) << 16 |
        static_cast<uint32_t>(d_[pos_ + 2]) << 8 | d_[pos_ + 3];
    pos_ += 4;
    return true;
  }
  void skip(size_t n) { pos_ += n; }

  // Reads a possibly compressed name starting at the cursor; the cursor moves past the name as it
  // appears here (a pointer counts two bytes). `limit` bounds where the name's inline labels may
  // end (the end of an RDATA for names inside records).
  bool name(std::string &out, size_t limit, std::string &why) {
    out.clear();
    size_t p = pos_;
    size_t end_here = 0;   // where the cursor goes once the name is read
    bool jumped = false;
    size_t jumps = 0;
    size_t wire_len = 1;   // the final zero byte
    size_t floor = pos_;   // pointers must go strictly below the label that holds them
    for (;;) {
      if (p >= (jumped ? d_.size() : limit)) {
        why = "name runs past the end of its data";
        return false;
      }
      const uint8_t len = d_[p];
      if (len == 0) {
        if (!jumped) end_here = p + 1;
        break;
      }
      if ((len & 0xC0) == 0xC0) {
        if (p + 1 >= (jumped ? d_.size() : limit)) {
          why = "truncated compression pointer";
          return false;
        }
        const size_t target = static_cast<size_t>(len & 0x3F) << 8 | d_[p + 1];
        if (target >= floor) {
          why = "compression pointer does not point backwards (loop or forward reference)";
          return false;
        }
        if (++jumps > kMaxPointerJumps) {
          why = "too many compression pointers";
          return false;
        }
        if (!jumped) end_here = p + 2;
        jumped = true;
        floor = target;
        p = target;
        continue;
      }
      if ((len & 0xC0) != 0) {
        why = "unsupported label type (extended or bitstring label)";
        return false;
      }
      wire_len += 1 + len;
      if (wire_len > kMaxNameWire) {
        why = "name longer than 255 bytes";
        return false;
      }
      if (p + 1 + len > (jumped ? d_.size() : limit)) {
        why = "label runs past the end of its data";
        return false;
      }
      if (!out.empty()) out += '.';
      out.append(reinterpret_cast<const char *>(d_.data() + p + 1), len);
      p += 1 + len;
      if (jumped) floor = std::min(floor, p);  // later pointers must still go below this label
    }
    pos_ = end_here;
    return true;
  }

  std::span<const uint8_t> data() const { return d_; }

 private:
  std::span<const uint8_t> d_;
  size_t pos_ = 0;
};

bool parse_record(Reader &r, DnsRecord &rec, std::string &why) {
  if (!r.name(rec.name, r.data().size(), why)) return false;
  uint16_t type = 0, klass = 0, rdlen = 0;
  if (!r.u16(type) || !r.u16(klass) || !r.u32(rec.ttl) || !r.u16(rdlen)) {
    why = "truncated record header";
    return false;
  }
  rec.type = type;
  rec.klass = klass & kClassMask;
  rec.cache_flush = (klass & 0x8000) != 0;
  if (rdlen > r.left()) {
    why = "record data runs past the end of the message";
    return false;
  }
  const size_t rd_start = r.pos();
  const size_t rd_end = rd_start + rdlen;
  if (type == kTypePtr) {
    if (!r.name(rec.ptr, rd_end, why)) {
      why = "PTR target: " + why;
      return false;
    }
    if (r.pos() != rd_end) {
      why = "PTR record data has trailing bytes";
      return false;
    }
  } else if (type == kTypeTxt) {
    const auto d = r.data();
    size_t p = rd_start;
    while (p < rd_end) {
      const size_t n = d[p];
      if (p + 1 + n > rd_end) {
        why = "TXT string runs past its record";
        return false;
      }
      rec.txt.emplace_back(reinterpret_cast<const char *>(d.data() + p + 1), n);
      p += 1 + n;
    }
    r.skip(rd_end - r.pos());
  } else {
    r.skip(rdlen);  // other types are carried but not interpreted
  }
  return true;
}

}  // namespace

bool names_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool parse_message(std::span<const uint8_t> data, DnsMessage &out, std::string *why) {
  std::string reason;
  auto fail = [&](std::string w) {
    if (why != nullptr) *why = std::move(w);
    return false;
  };
  if (data.size() > kMaxMessage) return fail("message larger than 9000 bytes");
  Reader r(data);
  uint16_t counts[4] = {};
  if (!r.u16(out.id) || !r.u16(out.flags) || !r.u16(counts[0]) || !r.u16(counts[1]) || !r.u16(counts[2]) ||
      !r.u16(counts[3]))
    return fail("shorter than a DNS header (12 bytes)");
  // A record takes at least 11 bytes and a question 5: counts beyond what the bytes can hold are
  // lies, and so is anything past the cap. Both end parsing with an error.
  size_t kept = 0;
  for (uint16_t i = 0; i < counts[0]; ++i) {
    if (++kept > kMaxRecordsKept) return fail("more than 256 questions and records");
    DnsQuestion q;
    if (!r.name(q.name, data.size(), reason)) return fail("question " + std::to_string(i) + ": " + reason);
    uint16_t klass = 0;
    if (!r.u16(q.type) || !r.u16(klass)) return fail("question " + std::to_string(i) + ": truncated");
    q.klass = klass & kClassMask;
    q.unicast_response = (klass & 0x8000) != 0;
    out.questions.push_back(std::move(q));
  }
  std::vector<DnsRecord> *sections[3] = {&out.answers, &out.authorities, &out.additionals};
  const char *names[3] = {"answer", "authority", "additional"};
  for (int s = 0; s < 3; ++s) {
    for (uint16_t i = 0; i < counts[s + 1]; ++i) {
      if (++kept > kMaxRecordsKept) return fail("more than 256 questions and records");
      DnsRecord rec;
      if (!parse_record(r, rec, reason))
        return fail(std::string(names[s]) + " record " + std::to_string(i) + ": " + reason);
      sections[s]->push_back(std::move(rec));
    }
  }
  return true;
}

// ---- writer ----

DnsWriter::DnsWriter(uint16_t id, uint16_t flags) {
  buf_.reserve(512);
  u16(id);
  u16(flags);
  for (int i = 0; i < 4; ++i) u16(0);
}

void DnsWriter::u16(uint16_t v) {
  buf_.push_back(static_cast<uint8_t>(v >> 8));
  buf_.push_back(static_cast<uint8_t>(v));
}

void DnsWriter::u32(uint32_t v) {
  u16(static_cast<uint16_t>(v >> 16));
  u16(static_cast<uint16_t>(v));
}

void DnsWriter::count(int field) {
  const size_t at = 4 + 2 * static_cast<size_t>(field);
  const uint16_t v = static_cast<uint16_t>((buf_[at] << 8 | buf_[at + 1]) + 1);
  buf_[at] = static_cast<uint8_t>(v >> 8);
  buf_[at + 1] = static_cast<uint8_t>(v);
}

bool DnsWriter::name(std::string_view text) {
  // Validate first so a refused name leaves the buffer untouched.
  size_t wire = 1;
  for (size_t start = 0; start <= text.size();) {
    const size_t dot = std::min(text.find('.', start), text.size());
    const size_t len = dot - start;
    if (len == 0 || len > kMaxLabel) return false;
    wire += 1 + len;
    start = dot + 1;
  }
  if (wire > kMaxNameWire) return false;
  std::string_view rest = text;
  while (!rest.empty()) {
    const std::string key = lowered(rest);
    if (auto it = suffixes_.find(key); it != suffixes_.end()) {
      u16(static_cast<uint16_t>(0xC000 | it->second));
      return true;
    }
    if (buf_.size() < 0x3FFF) suffixes_.emplace(key, static_cast<uint16_t>(buf_.size()));
    const size_t dot = std::min(rest.find('.'), rest.size());
    buf_.push_back(static_cast<uint8_t>(dot));
    buf_.insert(buf_.end(), rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(dot));
    rest = dot < rest.size() ? rest.substr(dot + 1) : std::string_view();
  }
  buf_.push_back(0);
  return true;
}

bool DnsWriter::question(std::string_view qname, uint16_t type, uint16_t klass) {
  if (section_ >= 0) return false;
  if (!name(qname)) return false;
  u16(type);
  u16(klass);
  count(0);
  return true;
}

bool DnsWriter::record_header(int section, std::string_view rname, uint16_t type, uint16_t klass, uint32_t ttl) {
  if (section < section_ || section < 0 || section > 2) return false;
  section_ = section;
  if (!name(rname)) return false;
  u16(type);
  u16(klass);
  u32(ttl);
  return true;
}

bool DnsWriter::ptr(int section, std::string_view rname, uint32_t ttl, std::string_view target, bool cache_flush) {
  const size_t mark = buf_.size();
  if (!record_header(section, rname, kTypePtr, static_cast<uint16_t>(kClassIn | (cache_flush ? 0x8000 : 0)), ttl))
    return false;
  const size_t len_at = buf_.size();
  u16(0);
  if (!name(target)) {
    buf_.resize(mark);
    return false;
  }
  const size_t rdlen = buf_.size() - len_at - 2;
  buf_[len_at] = static_cast<uint8_t>(rdlen >> 8);
  buf_[len_at + 1] = static_cast<uint8_t>(rdlen);
  count(1 + section);
  return true;
}

bool DnsWriter::txt(int section, std::string_view rname, uint32_t ttl, const std::vector<std::string> &strings,
                    bool cache_flush) {
  size_t rdlen = 0;
  for (const auto &s : strings) {
    if (s.size() > 255) return false;
    rdlen += 1 + s.size();
  }
  if (strings.empty()) rdlen = 1;  // RFC 6763 6.1: an empty TXT record holds one empty string
  if (rdlen > 0xFFFF) return false;
  if (!record_header(section, rname, kTypeTxt, static_cast<uint16_t>(kClassIn | (cache_flush ? 0x8000 : 0)), ttl))
    return false;
  u16(static_cast<uint16_t>(rdlen));
  if (strings.empty()) buf_.push_back(0);
  for (const auto &s : strings) {
    buf_.push_back(static_cast<uint8_t>(s.size()));
    buf_.insert(buf_.end(), s.begin(), s.end());
  }
  count(1 + section);
  return true;
}

std::vector<uint8_t> DnsWriter::finish() && { return std::move(buf_); }

}  // namespace chorus::mdns
