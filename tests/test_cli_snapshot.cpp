// What `mproc ps` and `mproc top` read from a snapshot: a report's fields of an unexpected
// kind give defaults instead of ending the listing, and names reach the terminal without
// control characters.
#include "snapshot.hpp"

#include <cstdint>
#include <limits>
#include <string>

#include <catch2/catch.hpp>

using mproc::value;

TEST_CASE("numbers of any kind read as numbers; a bool, a huge uint64 or a float do not throw") {
  value report = value::map_t{
    {"flag", true},
    {"huge", std::numeric_limits<std::uint64_t>::max()},
    {"half", 2.5},
    {"inf", std::numeric_limits<double>::infinity()},
    {"pid", std::int64_t{42}},
    {"name", std::string{"x"}},
  };
  CHECK(mproc::cli::integer(report, "pid") == 42);
  CHECK(mproc::cli::integer(report, "flag") == 1);
  CHECK(mproc::cli::integer(report, "huge") > 0);
  CHECK(mproc::cli::integer(report, "half") == 2);
  CHECK(mproc::cli::integer(report, "inf") == 0);
  CHECK(mproc::cli::integer(report, "name") == 0);
  CHECK(mproc::cli::real(report, "flag") == 1.0);
  CHECK(mproc::cli::real(report, "huge") > 1e19);
  CHECK(mproc::cli::real(report, "missing") == 0.0);
  CHECK(mproc::cli::real(report, "inf") == 0.0);
}

TEST_CASE("a name reaches the terminal without C0, DEL or C1 control characters") {
  // ESC [ 2 J, DEL, and CSI (U+009B, two bytes in UTF-8); an é (C3 A9) stays.
  value report = value::map_t{{"name", std::string{"a\x1b[2J\x7f\xc2\x9b" "31mz\xc3\xa9"}}};
  CHECK(mproc::cli::text(report, "name") == "a?[2J??31mz\xc3\xa9");
}
