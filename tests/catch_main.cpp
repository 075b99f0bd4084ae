// The Catch2 main, compiled once into a static library: it is the slowest TU to build.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
