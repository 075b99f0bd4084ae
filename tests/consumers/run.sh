#!/usr/bin/env bash
# mproc as other projects use it (meson test 'consumers'; tests/meson.build). Installs the
# build into a temporary directory, then:
#   1. every installed header compiles on its own flags from mproc.pc, and no private header
#      (runtime/internal) was installed; an argument of a type without MPROC_MESSAGE fails
#      to compile with an error that names MPROC_MESSAGE;
#   2. a meson project finds mproc through pkg-config, builds main.cpp and runs it;
#   3. a CMake project does the same through find_package(mproc);
#   4. a meson project with mproc as a subproject resolves dependency('mproc') to it and gets none
#      of mproc's own examples, tests or benchmarks (configured only: building it would
#      compile mproc a second time).
# Usage: run.sh SOURCE_ROOT BUILD_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
here=$src/tests/consumers
command -v cmake >/dev/null || { echo "cmake is not installed (./run setup installs it)"; exit 77; }

work=$(mktemp -d /tmp/mproc-consumers.XXXXXX)
trap 'rm -rf "$work"' EXIT
expected='49 [1, 4, 9]'

option() {  # the value of one of the build's options
  meson introspect "$build" --buildoptions |
    python3 -c "import json,sys; print(next(o['value'] for o in json.load(sys.stdin) if o['name'] == '$1'))"
}
meson install -C "$build" --no-rebuild --destdir "$work/root" >"$work/install.log"
prefix=$work/root$(option prefix)
libdir=$prefix/$(option libdir)
export PKG_CONFIG_PATH=$libdir/pkgconfig

echo "== installed headers"
[ ! -e "$prefix/include/mproc/runtime/internal" ] || { echo "private headers installed"; exit 1; }
for f in $(cd "$prefix/include" && find mproc -name '*.hpp' | sort); do
  echo "#include <$f>"
done >"$work/all_headers.cpp"
echo "$(wc -l <"$work/all_headers.cpp") headers"
# shellcheck disable=SC2046
c++ -std=c++20 $(pkg-config --cflags mproc) -fsyntax-only "$work/all_headers.cpp"

echo "== a type without MPROC_MESSAGE is refused at compile time, in mproc's words"
cat >"$work/unregistered.cpp" <<'PROGRAM'
#include <mproc/runtime/node.hpp>
struct job { int id; };
int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  node.spawn_process("worker", {}, job{1});
}
PROGRAM
# shellcheck disable=SC2046
if c++ -std=c++20 $(pkg-config --cflags mproc) -fsyntax-only "$work/unregistered.cpp" \
     2>"$work/unregistered.log"; then
  echo "a struct without MPROC_MESSAGE compiled as an argument"
  exit 1
fi
grep -q "add MPROC_MESSAGE" "$work/unregistered.log" ||
  { echo "the error does not name MPROC_MESSAGE:"; head -20 "$work/unregistered.log"; exit 1; }
echo "refused, naming MPROC_MESSAGE"

check_run() {  # program: runs it, its output must be the expected line
  local out
  out=$("$1")
  [ "$out" = "$expected" ] || { echo "$1 printed '$out', not '$expected'"; exit 1; }
  echo "$1: $out"
}

echo "== meson project, pkg-config"
mkdir "$work/meson"
cp "$here/meson/meson.build" "$here/main.cpp" "$work/meson/"
meson setup "$work/meson-build" "$work/meson" >"$work/meson.log"
ninja -C "$work/meson-build" >>"$work/meson.log"
check_run "$work/meson-build/consumer"

echo "== CMake project, find_package(mproc)"
mkdir "$work/cmake"
cp "$here/cmake/CMakeLists.txt" "$here/main.cpp" "$work/cmake/"
cmake -S "$work/cmake" -B "$work/cmake-build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >"$work/cmake.log"
cmake --build "$work/cmake-build" >>"$work/cmake.log"
check_run "$work/cmake-build/consumer"

echo "== meson subproject"
mkdir -p "$work/sub/subprojects"
cp "$here/subproject/meson.build" "$here/main.cpp" "$work/sub/"
ln -s "$src" "$work/sub/subprojects/mproc"
# Not the installed copy: the subproject, whatever pkg-config could find.
env -u PKG_CONFIG_PATH meson setup --force-fallback-for=mproc "$work/sub-build" "$work/sub" >"$work/sub.log"
targets=$(meson introspect "$work/sub-build" --targets |
          python3 -c "import json,sys; print(' '.join(sorted(t['name'] for t in json.load(sys.stdin))))")
echo "targets: $targets"
[[ " $targets " == *" consumer "* ]] || { echo "the consumer is not a target"; exit 1; }
[[ " $targets " == *" mproc_runtime "* ]] || { echo "mproc is not built as a subproject"; exit 1; }
for own in hello_process producer_consumer test_node bench_transport; do
  [[ " $targets " != *" $own "* ]] || { echo "mproc's $own is built as a subproject"; exit 1; }
done
echo "all consumers passed"
