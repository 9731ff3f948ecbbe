# Build helpers for code inside this repository (not part of the installed SDK; third-party plugins
# use chorus_add_plugin from plugin-api/cmake/ChorusPluginFunctions.cmake alone).

# chorus_static_library(<name> <sources>...)
# A static library compiled once and linked into one or more plugins, their tests and fuzzers. Built
# the way a plugin's own code is: position-independent, hidden visibility, and (GCC) no STB_GNU_UNIQUE
# symbols, so each plugin that links it keeps a private copy (chorus_add_plugin also passes
# --exclude-libs,ALL) and two plugins never share or pin each other's copy.
function(chorus_static_library name)
  add_library(${name} STATIC ${ARGN})
  target_compile_features(${name} PUBLIC cxx_std_20)
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON CXX_VISIBILITY_PRESET hidden
                        VISIBILITY_INLINES_HIDDEN ON)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${name} PRIVATE -fno-gnu-unique)
  endif()
endfunction()

# chorus_fuzzer(<name> SOURCE <file> LIBS <targets>...)
# A libFuzzer target <name>_fuzz in <build>/fuzz/, registered with the chorus_fuzzers target that
# scripts/fuzz.sh builds. Only with CHORUS_FUZZ=ON (clang); scripts/fuzz.sh also adds
# -fsanitize=fuzzer-no-link to CMAKE_CXX_FLAGS so the libraries under test carry coverage too.
function(chorus_fuzzer name)
  cmake_parse_arguments(ARG "" "SOURCE" "LIBS" ${ARGN})
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "CHORUS_FUZZ=ON needs clang (configure with CC=clang CXX=clang++)")
  endif()
  add_executable(${name}_fuzz ${ARG_SOURCE})
  target_compile_options(${name}_fuzz PRIVATE -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer)
  target_link_options(${name}_fuzz PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(${name}_fuzz PRIVATE ${ARG_LIBS})
  set_target_properties(${name}_fuzz PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/fuzz")
  if(NOT TARGET chorus_fuzzers)
    add_custom_target(chorus_fuzzers)
  endif()
  add_dependencies(chorus_fuzzers ${name}_fuzz)
endfunction()
