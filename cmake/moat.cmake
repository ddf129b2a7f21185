# Project helpers. Every folder of src/ is one library; its sources are globbed so that adding a
# file needs no CMake edit. Dependencies are declared explicitly: a wrong include fails to link.

function(moat_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
    -Wcast-align -Wunused -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough -Werror)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # gcc 12 false positives at -O2/-O3: maybe-uninitialized on std::optional and aggregate
    # temporaries, and -Wrestrict on string concatenation (GCC bug 105651). clang checks both.
    # -Wnull-dereference also fires inside Asio's headers once inlined at -O2, and
    # -Wmismatched-new-delete on Asio's coroutine frames (their operator new/delete pair).
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized -Wno-restrict
      -Wno-null-dereference -Wno-mismatched-new-delete)
  endif()
endfunction()

# moat_library(NAME DIR [DEPS ...]): a static library from DIR/*.cpp, headers included as
# "core/base/result.hpp" relative to src/.
function(moat_library name dir)
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${dir}/*.cpp)
  if(NOT sources)
    # A folder whose first source is still being written: keep the build graph valid.
    set(sources ${PROJECT_SOURCE_DIR}/cmake/empty.cpp)
  endif()
  add_library(${name} STATIC ${sources})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARGN})
  moat_warnings(${name})
endfunction()
