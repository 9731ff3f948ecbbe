#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ai_common/stream_parsers.hpp"

using chorus::ai_common::LineSplitter;
using chorus::ai_common::SseParser;

TEST(LineSplitter, SplitsAcrossArbitraryBoundaries) {
  const std::string input = "{\"a\":1}\n{\"b\":2}\r\n\n{\"c\":3}\n";
  for (size_t step = 1; step <= input.size(); ++step) {
    LineSplitter ls(64);
    std::vector<std::string> lines;
    for (size_t i = 0; i < input.size(); i += step)
      ASSERT_TRUE(ls.feed(std::string_view(input).substr(i, step), [&](std::string_view l) {
        lines.emplace_back(l);
        return true;
      }));
    EXPECT_EQ(lines, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}", "", "{\"c\":3}"})) << "step " << step;
    EXPECT_TRUE(ls.pending().empty());
  }
}

TEST(LineSplitter, RejectsOverlongLines) {
  LineSplitter ls(8);
  EXPECT_FALSE(ls.feed("0123456789", [](std::string_view) { return true; }));
  LineSplitter ls2(8);
  EXPECT_TRUE(ls2.feed("01234", [](std::string_view) { return true; }));
  EXPECT_FALSE(ls2.feed("56789\n", [](std::string_view) { return true; }));
}

TEST(SseParser, ParsesEventsCommentsAndMultilineData) {
  const std::string input =
      ": keep-alive\n\ndata: {\"x\":1}\n\nevent: error\ndata: line1\ndata: line2\n\ndata:[DONE]\n\n";
  for (size_t step = 1; step <= input.size(); ++step) {
    SseParser p;
    std::vector<std::pair<std::string, std::string>> ev;
    for (size_t i = 0; i < input.size(); i += step)
      ASSERT_TRUE(p.feed(std::string_view(input).substr(i, step), [&](std::string_view e, std::string_view d) {
        ev.emplace_back(e, d);
        return true;
      }));
    ASSERT_EQ(ev.size(), 3u) << "step " << step;
    EXPECT_EQ(ev[0], (std::pair<std::string, std::string>{"message", "{\"x\":1}"}));
    EXPECT_EQ(ev[1], (std::pair<std::string, std::string>{"error", "line1\nline2"}));
    EXPECT_EQ(ev[2].second, "[DONE]");
    EXPECT_FALSE(p.mid_event());
  }
}

TEST(SseParser, ReportsATruncatedEvent) {
  SseParser p;
  EXPECT_TRUE(p.feed("data: {\"partial\"", [](std::string_view, std::string_view) { return true; }));
  EXPECT_TRUE(p.mid_event());
}
