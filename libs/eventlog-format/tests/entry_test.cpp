// The entry encoding (golden vectors computed independently with Python's hashlib and struct) and the
// field validators.
#include "eventlog/entry.hpp"

#include <gtest/gtest.h>

namespace chorus::eventlog {
namespace {

Entry golden() {
  Entry e;
  e.index = 1;
  e.timestamp = "2026-12-06T22:10:00.123Z";
  e.author = "12D3KooWGolden";
  e.type = "task_claimed";
  e.data = R"({"task":42})";
  e.prev_hash.fill(0x11);
  return e;
}

TEST(EventlogEntry, HashInputIsTheDocumentedLayout) {
  EXPECT_EQ(to_hex(hash_input(golden()).data(), hash_input(golden()).size()),
            "63686f7275732e6576656e746c6f672e7631000000000000000001"
            "00000018323032362d31322d30365432323a31303a30302e3132335a"
            "0000000e313244334b6f6f57476f6c64656e"
            "0000000c7461736b5f636c61696d6564"
            "0000000b7b227461736b223a34327d"
            "1111111111111111111111111111111111111111111111111111111111111111");
}

TEST(EventlogEntry, GoldenHash) {
  EXPECT_EQ(to_hex(compute_hash(golden())), "c7a63c6be0eb11e7a24d24533292ecdc7f694b4e345d63ffe398d0a97275ceee");
  Entry zero;
  zero.timestamp = "1970-01-01T00:00:00.000Z";
  zero.type = "x";
  zero.data = "null";
  EXPECT_EQ(to_hex(compute_hash(zero)), "07c5b74ee1bf628896b3f67dffb79144fd28b7b787bbbe9be5e4b9ef47587d39");
}

TEST(EventlogEntry, LengthPrefixesKeepFieldsApart) {
  // Moving a byte from one field to the next changes the hash (a plain concatenation would not).
  Entry a = golden(), b = golden();
  a.type = "task_claimed";
  a.data = "1";
  b.type = "task_claime";
  b.data = "d1";
  EXPECT_NE(compute_hash(a), compute_hash(b));
}

TEST(EventlogEntry, Types) {
  EXPECT_TRUE(valid_type("task_announced"));
  EXPECT_TRUE(valid_type("acme.custom_event2"));
  EXPECT_TRUE(valid_type(std::string(64, 'a')));
  EXPECT_FALSE(valid_type(""));
  EXPECT_FALSE(valid_type(std::string(65, 'a')));
  EXPECT_FALSE(valid_type("Task"));
  EXPECT_FALSE(valid_type("task-claimed"));
  EXPECT_FALSE(valid_type("task claimed"));
}

TEST(EventlogEntry, Timestamps) {
  using namespace std::chrono;
  const auto t = system_clock::time_point(milliseconds(1796595000123));  // 2026-12-06T22:10:00.123Z
  EXPECT_EQ(format_timestamp(t), "2026-12-06T22:10:00.123Z");
  EXPECT_TRUE(valid_timestamp(format_timestamp(system_clock::now())));
  EXPECT_FALSE(valid_timestamp("2026-12-06T22:50:00Z"));
  EXPECT_FALSE(valid_timestamp("2026-12-06 22:50:00.123Z"));
  EXPECT_FALSE(valid_timestamp("2026-12-06T22:50:00.123+00:00"));
}

TEST(EventlogEntry, CanonicalJsonSortsKeysAndRejectsGarbage) {
  std::string why;
  EXPECT_EQ(canonical_json(R"( { "b" : 1, "a" : [true, null] } )", &why), R"({"a":[true,null],"b":1})");
  EXPECT_FALSE(canonical_json("{\"a\":", &why));
  EXPECT_FALSE(why.empty());
  EXPECT_FALSE(canonical_json("\"\xff\"", &why));
}

}  // namespace
}  // namespace chorus::eventlog
