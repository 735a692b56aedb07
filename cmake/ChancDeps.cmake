# Find chanc's dependencies; a missing one stops configuration with the
# Debian package that provides it.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: apt-get install pkg-config (or run scripts/deps)")
endif()

function(chanc_require_pkg prefix module debian_pkg)
  pkg_check_modules(${prefix} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT ${prefix}_FOUND)
    message(FATAL_ERROR "${module} not found: apt-get install ${debian_pkg} (or run scripts/deps)")
  endif()
endfunction()

chanc_require_pkg(JANSSON "jansson>=2.13" libjansson-dev)
chanc_require_pkg(LIBUV "libuv>=1.40" libuv1-dev)
chanc_require_pkg(CMOCKA "cmocka>=1.1" libcmocka-dev)
chanc_require_pkg(SODIUM "libsodium>=1.0.18" libsodium-dev)
chanc_require_pkg(LWS "libwebsockets>=4.1" libwebsockets-dev)
chanc_require_pkg(LIBPQ "libpq>=13" libpq-dev)
chanc_require_pkg(HIREDIS "hiredis>=0.14" libhiredis-dev)

find_package(SQLite3 QUIET)
if(NOT SQLite3_FOUND)
  message(FATAL_ERROR "SQLite3 not found: apt-get install libsqlite3-dev (or run scripts/deps)")
endif()
