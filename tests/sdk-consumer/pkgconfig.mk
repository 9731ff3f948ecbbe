# The same plugin built without CMake, from the installed chorus-plugin.pc only:
#
#   PKG_CONFIG_PATH=<prefix>/<libdir>/pkgconfig make -f tests/sdk-consumer/pkgconfig.mk OUT=/tmp/out
#
# builds $(OUT)/chorus-acme.hello-pc.so serving GET /acme/hello-pc (PLUGIN_ID= and PLUGIN_ROUTE=
# change them). The flags below are what chorus_add_plugin() sets in CMake; a plugin built without
# CMake needs all of them.
PKG_CONFIG ?= pkg-config
CXX ?= c++
CXXFLAGS ?= -O2 -g
OUT ?= .
PLUGIN_ID ?= acme.hello-pc
PLUGIN_ROUTE ?= /acme/hello-pc

SRC := $(dir $(lastword $(MAKEFILE_LIST)))hello.cpp

CHORUS_CFLAGS := $(shell $(PKG_CONFIG) --cflags chorus-plugin nlohmann_json)
CHORUS_MAPFILE := $(shell $(PKG_CONFIG) --variable=mapfile chorus-plugin)
ifeq ($(CHORUS_MAPFILE),)
$(error pkg-config does not find chorus-plugin: set PKG_CONFIG_PATH to <prefix>/<libdir>/pkgconfig)
endif
# -fno-gnu-unique is GCC-only (keeps the plugin unloadable); clang does not emit STB_GNU_UNIQUE.
NO_GNU_UNIQUE := $(shell $(CXX) -fno-gnu-unique -x c++ -fsyntax-only /dev/null >/dev/null 2>&1 && echo -fno-gnu-unique)

PLUGIN_CXXFLAGS := -std=c++20 -fPIC -fvisibility=hidden -fvisibility-inlines-hidden $(NO_GNU_UNIQUE)
PLUGIN_LDFLAGS := -shared -Wl,--version-script=$(CHORUS_MAPFILE) -Wl,-z,defs -Wl,--exclude-libs,ALL -Wl,--as-needed

$(OUT)/chorus-$(PLUGIN_ID).so: $(SRC) $(CHORUS_MAPFILE)
	$(CXX) $(CXXFLAGS) $(PLUGIN_CXXFLAGS) $(CHORUS_CFLAGS) \
	  -DACME_HELLO_ID='"$(PLUGIN_ID)"' -DACME_HELLO_ROUTE='"$(PLUGIN_ROUTE)"' \
	  -o $@ $(SRC) $(LDFLAGS) $(PLUGIN_LDFLAGS)
