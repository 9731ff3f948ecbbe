# chorus_add_plugin(<target> ID <plugin-id> SOURCES <src>... [OUTPUT_DIRECTORY <dir>]
#                   [INSTALL_DIR <dir> | INSTALL])
#
# Builds a chorus-agent plugin: a MODULE library named chorus-<id>.so that exports nothing but
# chorus_plugin_entry_v1, keeps every other symbol (its own and those of static dependencies) hidden,
# and has no undefined references outside the libraries it links (-z defs). In-tree plugins and
# third-party plugins use this same function (the installed CMake package ChorusPlugin ships it).
#
# INSTALL_DIR <dir> adds an install rule for the plugin; INSTALL is short for
# INSTALL_DIR ${CHORUS_PLUGIN_INSTALL_DIR}, the agent's plugin directory relative to the install
# prefix (<libdir>/chorus/plugins, set by the SDK, in tree and in the installed package alike).
include_guard(GLOBAL)
function(chorus_add_plugin target)
  set(_CHORUS_PLUGIN_MAP "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/chorus-plugin.map")
  cmake_parse_arguments(ARG "INSTALL" "ID;OUTPUT_DIRECTORY;INSTALL_DIR" "SOURCES" ${ARGN})
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "chorus_add_plugin(${target}): unknown arguments: ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(ARG_INSTALL)
    if(ARG_INSTALL_DIR)
      message(FATAL_ERROR "chorus_add_plugin(${target}): give either INSTALL or INSTALL_DIR, not both")
    endif()
    if(NOT CHORUS_PLUGIN_INSTALL_DIR)
      message(FATAL_ERROR "chorus_add_plugin(${target}): INSTALL needs CHORUS_PLUGIN_INSTALL_DIR "
                          "(set by find_package(ChorusPlugin)); use INSTALL_DIR <dir> instead")
    endif()
    set(ARG_INSTALL_DIR "${CHORUS_PLUGIN_INSTALL_DIR}")
  endif()
  if(NOT ARG_ID)
    message(FATAL_ERROR "chorus_add_plugin(${target}): ID is required")
  endif()
  if(NOT ARG_ID MATCHES "^[a-z0-9][a-z0-9._-]*$")
    message(FATAL_ERROR "chorus_add_plugin(${target}): '${ARG_ID}' is not a valid plugin id")
  endif()
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE Chorus::plugin_api)
  target_compile_features(${target} PRIVATE cxx_std_20)
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME "chorus-${ARG_ID}"
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LINK_DEPENDS "${_CHORUS_PLUGIN_MAP}")
  target_link_options(${target} PRIVATE
    "LINKER:--version-script=${_CHORUS_PLUGIN_MAP}"
    "LINKER:-z,defs" "LINKER:--exclude-libs,ALL" "LINKER:--as-needed")
  # Keep the plugin unloadable in principle: no STB_GNU_UNIQUE symbols pinning the image.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE -fno-gnu-unique)
  endif()
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
  elseif(DEFINED CHORUS_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${CHORUS_PLUGIN_OUTPUT_DIR}")
  endif()
  if(ARG_INSTALL_DIR)
    install(TARGETS ${target} LIBRARY DESTINATION "${ARG_INSTALL_DIR}")
  endif()
endfunction()
