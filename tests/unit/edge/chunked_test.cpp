#include "edge/chunked.hpp"

#include <gtest/gtest.h>

#include <string>

namespace moat::edge {
namespace {

using namespace std::string_literals;

struct Decoded {
  ChunkedDecoder::Status status;
  std::string data;
  std::size_t consumed;
};

Decoded decode(const std::string& in) {
  ChunkedDecoder d;
  Decoded out{ChunkedDecoder::Status::kNeedMore, {}, 0};
  out.status = d.feed(in, out.data, out.consumed);
  return out;
}

TEST(Chunked, DecodesAndStopsAtTheEnd) {
  auto r = decode("5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: y\r\n\r\nNEXT");
  EXPECT_EQ(r.status, ChunkedDecoder::Status::kDone);
  EXPECT_EQ(r.data, "hello world");
  EXPECT_EQ(std::string("5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: y\r\n\r\nNEXT")
                .substr(r.consumed),
            "NEXT");
}

TEST(Chunked, ByteByByteGivesTheSameResult) {
  const std::string body = "A\r\n0123456789\r\n1\r\nx\r\n0\r\n\r\n";
  ChunkedDecoder d;
  std::string data;
  ChunkedDecoder::Status status = ChunkedDecoder::Status::kNeedMore;
  for (char c : body) {
    std::size_t used = 0;
    status = d.feed(std::string(1, c), data, used);
    EXPECT_EQ(used, 1u);
  }
  EXPECT_EQ(status, ChunkedDecoder::Status::kDone);
  EXPECT_EQ(data, "0123456789x");
}

TEST(Chunked, RefusesAmbiguousForms) {
  for (std::string bad : {"5\nhello\r\n0\r\n\r\n"s, "5\r\nhelloXX0\r\n\r\n"s, " 5\r\nhello\r\n"s,
                          "\r\n"s, "g\r\n"s, "5 x\r\n"s, "1234567890abcdef0\r\n"s,
                          "5;a\0b\r\n"s, "0\r\nX: a\r\n b\r\n\r\n"s, "0\r\nX: a\n\r\n"s,
                          "5\r\nhello\r0\r\n"s}) {
    EXPECT_EQ(decode(bad).status, ChunkedDecoder::Status::kError) << bad;
  }
}

TEST(Chunked, Limits) {
  ChunkedDecoder d(8, 16);
  std::string out;
  std::size_t used = 0;
  EXPECT_EQ(d.feed("1;aaaaaaaaaaaa\r\n", out, used), ChunkedDecoder::Status::kError);
  ChunkedDecoder t(64, 8);
  EXPECT_EQ(t.feed("0\r\nX-Long: aaaaaaaaa\r\n\r\n", out, used), ChunkedDecoder::Status::kError);
}

TEST(Chunked, AppendChunk) {
  std::string out;
  append_chunk(out, "hello world, 17 b");
  append_chunk(out, "");
  EXPECT_EQ(out, "11\r\nhello world, 17 b\r\n");
}

}  // namespace
}  // namespace moat::edge
