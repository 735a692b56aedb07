# What chanc's libraries export (test framework.symbols): every defined
# GLOBAL symbol of DEFAULT visibility in each archive must be public API,
# named chanc_ but not chanc__ (the framework-private prefix, compiled
# hidden; see chanc/export.h). Catches a helper without `static`, a
# private function marked CHANC_API, and a library built without
# -fvisibility=hidden.
#   cmake -DREADELF=readelf -DLIBS="libchanc.a;libchanc_server.a" -P check_symbols.cmake
if(NOT READELF OR NOT LIBS)
  message(FATAL_ERROR "usage: cmake -DREADELF=... -DLIBS=lib1;lib2 -P check_symbols.cmake")
endif()
set(bad "")
foreach(lib IN LISTS LIBS)
  execute_process(COMMAND ${READELF} -sW ${lib} OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${READELF} -sW ${lib} failed (${rc})")
  endif()
  string(REPLACE "\n" ";" lines "${out}")
  set(exported 0)
  foreach(line IN LISTS lines)
    # Num: Value Size Type Bind Vis Ndx Name
    if(line MATCHES "^ *[0-9]+: +[0-9a-f]+ +[0-9]+ +[A-Z_]+ +GLOBAL +DEFAULT +([0-9]+|COM|ABS) +([^ ]+)$")
      set(name "${CMAKE_MATCH_2}")
      math(EXPR exported "${exported} + 1")
      if(NOT name MATCHES "^chanc_" OR name MATCHES "^chanc__")
        get_filename_component(base ${lib} NAME)
        list(APPEND bad "${base}: ${name}")
      endif()
    endif()
  endforeach()
  if(exported EQUAL 0)
    message(FATAL_ERROR "${lib}: no exported symbol found (readelf's format?)")
  endif()
  message(STATUS "${lib}: ${exported} exported symbols")
endforeach()
if(bad)
  list(JOIN bad "\n  " text)
  message(FATAL_ERROR "exported symbols outside the chanc_ API:\n  ${text}")
endif()
