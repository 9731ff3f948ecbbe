# The plugin proper (included from CMakeLists.txt once the layers exist).
p2p_static_library(p2p_core src/settings.cpp src/node.cpp src/connection.cpp)
target_include_directories(p2p_core PUBLIC src)
target_link_libraries(p2p_core PUBLIC p2p_wire p2p_noise p2p_yamux Chorus::plugin_api Boost::headers
                      nlohmann_json::nlohmann_json PkgConfig::SODIUM Threads::Threads)

chorus_add_plugin(chorus_plugin_p2p ID p2p SOURCES src/plugin.cpp INSTALL_DIR ${CHORUS_INSTALL_PLUGINDIR})
target_link_libraries(chorus_plugin_p2p PRIVATE p2p_core)

if(CHORUS_BUILD_TESTS)
  add_subdirectory(tests)
endif()
