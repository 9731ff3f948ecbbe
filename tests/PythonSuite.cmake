# chorus_python_suite(<name> MODULE <test module> DIRECTORY <dir> [ENVIRONMENT <VAR=value>...]
#                     [TIMEOUT <s>] [LABELS <label>...] [RUN_SERIAL])
# Registers a Python unittest suite with ctest through tests/run_suite.py, which exits 77 when a test
# could not run for a missing prerequisite: SKIP_RETURN_CODE makes ctest report the suite as Skipped,
# never as Passed (and with CI set, a missing js-libp2p, netns or NATS prerequisite fails it instead).
# Agent output is kept per agent in <build>/test-logs/<name>/ (the harness scans it for sanitizer
# reports). Every Python suite is registered this way; do not call add_test for one directly.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
set(CHORUS_RUN_SUITE "${CMAKE_CURRENT_LIST_DIR}/run_suite.py")

function(chorus_python_suite name)
  cmake_parse_arguments(ARG "RUN_SERIAL" "MODULE;DIRECTORY;TIMEOUT" "ENVIRONMENT;LABELS" ${ARGN})
  if(NOT ARG_MODULE OR NOT ARG_DIRECTORY)
    message(FATAL_ERROR "chorus_python_suite(${name}): MODULE and DIRECTORY are required")
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_test(NAME ${name} COMMAND ${Python3_EXECUTABLE} ${CHORUS_RUN_SUITE} ${ARG_MODULE}
           WORKING_DIRECTORY ${ARG_DIRECTORY})
  set(env ${ARG_ENVIRONMENT} "CHORUS_TEST_LOG_DIR=${CMAKE_BINARY_DIR}/test-logs/${name}")
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${env}" TIMEOUT ${ARG_TIMEOUT} SKIP_RETURN_CODE 77)
  if(ARG_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}")
  endif()
  if(ARG_RUN_SERIAL)
    set_tests_properties(${name} PROPERTIES RUN_SERIAL TRUE)
  endif()
endfunction()
